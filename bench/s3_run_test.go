package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunS3: the S3 rows capture every user and restore the first through
// a store on the SeaweedFS the bench starts, verified, with the ratio to
// the local rows measured before; the weed process is stopped and its data
// removed. Without the binary the rows are skipped with the reason
// (unless SMP_S3_REQUIRED is set: then the test fails).
func TestRunS3(t *testing.T) {
	if testing.Short() {
		t.Skip("builds smp and starts SeaweedFS")
	}
	if _, err := findWeed(); err != nil {
		if os.Getenv("SMP_S3_REQUIRED") != "" {
			t.Fatalf("SMP_S3_REQUIRED is set: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	bin := buildSMP(t)
	work := t.TempDir()
	corpus := filepath.Join(work, "corpus")
	if out, err := exec.Command(bin, "bench", "corpus", "--out", corpus, "--users", "2", "--size", "12MiB", "--seed", "4").CombinedOutput(); err != nil {
		t.Fatalf("smp bench corpus: %v\n%s", err, out)
	}
	var log bytes.Buffer
	env, err := smpEnv(work)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{opts: RunOptions{Bin: bin, Corpus: corpus}, log: &log, work: work, tools: map[string]string{}, env: env}
	r.rep = &Report{Corpus: CorpusReport{}}
	ctx := context.Background()
	help, _ := r.combined(ctx, bin, "capture", "--help")
	r.smpHasHardlink = strings.Contains(help, "--hardlink")
	if err := r.prepareCorpus(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.smpCapture(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.smpRestore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.smpS3(ctx); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Logf("\n%s", log.String())
	c, ok := r.rep.Row(ToolSMPS3, ScenarioCapture)
	if !ok || !c.OK() || c.Runs != 2 || c.LogicalBytes != r.logical || c.MBps <= 0 || !strings.Contains(c.Note, "the wall time of the local store") {
		t.Fatalf("S3 capture row: %+v", c)
	}
	rs, ok := r.rep.Row(ToolSMPS3, ScenarioRestore)
	if !ok || !rs.OK() || rs.Verified == nil || !*rs.Verified || !strings.Contains(rs.Note, "the wall time of the local store") {
		t.Fatalf("S3 restore row: %+v", rs)
	}
	if _, err := os.Stat(filepath.Join(work, "weed")); !os.IsNotExist(err) {
		t.Errorf("the SeaweedFS data was left behind: %v", err)
	}
}
