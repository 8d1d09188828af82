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

// TestRunCold runs the cold scenarios with the real binary on a small
// generated corpus: as root, the floors and the cold capture, restore and
// incremental rows with their files per second and ratios to the floors;
// otherwise rows that say why they were skipped.
func TestRunCold(t *testing.T) {
	if testing.Short() {
		t.Skip("builds smp and captures a corpus twice")
	}
	bin := buildSMP(t)
	work := t.TempDir()
	corpus := filepath.Join(work, "corpus")
	if out, err := exec.Command(bin, "bench", "corpus", "--out", corpus, "--users", "2", "--size", "8MiB", "--seed", "4").CombinedOutput(); err != nil {
		t.Fatalf("smp bench corpus: %v\n%s", err, out)
	}
	var log bytes.Buffer
	env, err := smpEnv(work)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{opts: RunOptions{Bin: bin, Corpus: corpus, Seed: 4}, log: &log, work: work, tools: map[string]string{}, env: env}
	r.rep = &Report{Corpus: CorpusReport{}}
	ctx := context.Background()
	initHelp, _ := r.combined(ctx, bin, "init", "--help")
	r.smpHasEncrypt = strings.Contains(initHelp, "--key-file")
	r.coldCheck()
	if err := r.prepareCorpus(ctx); err != nil {
		t.Fatal(err)
	}
	files := func() (total int64) {
		for _, n := range r.userFiles {
			total += n
		}
		return total
	}
	before, before0 := files(), r.userFiles[r.users[0]]
	if err := r.coldCapture(ctx); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if err := r.coldRestore(ctx); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if reason := r.mutate(ctx); reason != "" {
		t.Fatal(reason)
	}
	if err := r.coldIncremental(ctx); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Logf("\n%s", log.String())
	tool := r.coldVariant().tool
	if os.Geteuid() != 0 {
		for _, sc := range []string{ScenarioFloorRead, ScenarioCaptureCold, ScenarioRestoreCold, ScenarioFloorWalk, ScenarioIncrementalCold} {
			if !slicesHasRow(r.rep, sc, StatusSkipped, "not root") {
				t.Errorf("%s: no skipped row saying not root: %+v", sc, r.rep.Rows)
			}
		}
		return
	}
	after := files()
	check := func(tool, sc string, files int64, note string) Row {
		t.Helper()
		row, ok := r.rep.Row(tool, sc)
		if !ok || !row.OK() || row.WallSeconds <= 0 || row.Files != files || row.FilesPerSec <= 0 || !strings.Contains(row.Note, note) {
			t.Errorf("%s %s: %+v; want %d files, note with %q", tool, sc, row, files, note)
		}
		return row
	}
	read := check(ToolFloor, ScenarioFloorRead, before, "4 parallel readers")
	if read.LogicalBytes != r.rep.Corpus.Info.Bytes || read.MBps <= 0 || before == after {
		t.Errorf("floor-read: %+v, corpus %d bytes", read, r.rep.Corpus.Info.Bytes)
	}
	capt := check(tool, ScenarioCaptureCold, before, "x the cold-read floor; page cache dropped first")
	rest := check(tool, ScenarioRestoreCold, before0, "verified byte for byte")
	if rest.Verified == nil || !*rest.Verified {
		t.Errorf("restore-cold not verified: %+v", rest)
	}
	walk := check(ToolFloor, ScenarioFloorWalk, after, "walk and lstat")
	if read.CPUSeconds <= 0 || walk.CPUSeconds <= 0 {
		t.Errorf("the floors report no CPU time: read %+v, walk %+v", read, walk)
	}
	inc := check(tool, ScenarioIncrementalCold, after, "files unchanged, not read")
	c := r.rep.Cold
	if c.Skipped != "" || c.CaptureOverReadFloor != capt.WallSeconds/read.WallSeconds || c.IncrementalOverWalkFloor <= 0 ||
		c.ReadFloorCPUSeconds != read.CPUSeconds || c.WalkFloorCPUSeconds != walk.CPUSeconds ||
		!strings.Contains(c.Summary(), "capture ") || inc.WallSeconds <= 0 {
		t.Errorf("cold report %+v", c)
	}
	if _, err := os.Stat(r.coldVariant().store); !os.IsNotExist(err) {
		t.Errorf("the cold store is left behind: %v", err)
	}
}

func slicesHasRow(rep *Report, scenario, status, note string) bool {
	for _, row := range rep.Rows {
		if row.Scenario == scenario && row.Status == status && strings.Contains(row.Note, note) {
			return true
		}
	}
	return false
}

// TestRowFiles: every row gets the files its scenario covers and files
// per second.
func TestRowFiles(t *testing.T) {
	r := &runner{log: &bytes.Buffer{}, rep: &Report{}, users: []string{"user01", "user02", "user03"},
		userFiles: map[string]int64{"user01": 100, "user02": 20, "user03": 3}}
	for _, c := range []struct {
		scenario string
		files    int64
	}{
		{ScenarioCapture, 123}, {ScenarioRestore, 100}, {ScenarioRestoreCold, 100}, {ScenarioHardlinkRestore, 123},
		{ScenarioServeLoad, 6*100 + 5*20 + 5*3}, {ScenarioIncrementalCold, 123},
	} {
		r.add(Row{Tool: ToolSMP, Scenario: c.scenario, Status: StatusOK, WallSeconds: 2})
		row := r.rep.Rows[len(r.rep.Rows)-1]
		if row.Files != c.files || row.FilesPerSec != float64(c.files)/2 {
			t.Errorf("%s: %d files, %.1f files/s; want %d", c.scenario, row.Files, row.FilesPerSec, c.files)
		}
	}
	r.add(Row{Tool: ToolFloor, Scenario: ScenarioFloorWalk, Status: StatusOK, WallSeconds: 4, Files: 8})
	if row := r.rep.Rows[len(r.rep.Rows)-1]; row.Files != 8 || row.FilesPerSec != 2 {
		t.Errorf("a row's own file count was replaced: %+v", row)
	}
	r.add(Row{Tool: ToolSMP, Scenario: ScenarioCapture, Status: StatusSkipped})
	if row := r.rep.Rows[len(r.rep.Rows)-1]; row.Files != 0 || row.FilesPerSec != 0 {
		t.Errorf("a skipped row got files: %+v", row)
	}
}
