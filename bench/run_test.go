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

// TestRunServe runs both serve scenarios with the real binary on a small
// generated corpus, after the local capture they are compared with.
func TestRunServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds smp and runs 16 clients")
	}
	bin := buildSMP(t)
	work := t.TempDir()
	corpus := filepath.Join(work, "corpus")
	if out, err := exec.Command(bin, "bench", "corpus", "--out", corpus, "--users", "3", "--size", "12MiB", "--seed", "3").CombinedOutput(); err != nil {
		t.Fatalf("smp bench corpus: %v\n%s", err, out)
	}
	var log bytes.Buffer
	env, err := smpEnv(work) // as Run: the stores' key files stay under work
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{opts: RunOptions{Bin: bin, Corpus: corpus}, log: &log, work: work, tools: map[string]string{}, env: env}
	r.rep = &Report{Corpus: CorpusReport{}}
	ctx := context.Background()
	help, _ := r.combined(ctx, bin, "capture", "--help")
	r.smpHasHardlink = strings.Contains(help, "--hardlink") // the local capture chunks, as in Run
	if err := r.prepareCorpus(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.smpCapture(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.smpServeScenarios(ctx); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Logf("\n%s", log.String())
	local, _ := r.rep.Row(ToolSMP, ScenarioCapture)
	serve, ok := r.rep.Row(ToolSMP, ScenarioServe)
	if !ok || !serve.OK() || serve.Runs != 3 || serve.LogicalBytes != r.logical || serve.MBps <= 0 || serve.StoredBytes <= 0 {
		t.Fatalf("serve row: %+v", serve)
	}
	// The server's CPU is added: more CPU per byte than the local capture.
	if serve.CPUSeconds <= local.CPUSeconds*0.8 || !strings.Contains(serve.Note, "of local capture throughput") || !strings.Contains(serve.Note, "server CPU") {
		t.Errorf("serve row: %+v (local capture %+v)", serve, local)
	}
	load, ok := r.rep.Row(ToolSMP, ScenarioServeLoad)
	if !ok || !load.OK() || load.Runs != 16 || load.Verified == nil || !*load.Verified || load.MBps <= 0 {
		t.Fatalf("serve-16 row: %+v", load)
	}
	// 16 clients over 3 users: users 0 captured 6 times, 1 and 2 five times.
	if _, user0, _ := treeSize(filepath.Join(corpus, "home", r.users[0])); load.LogicalBytes != 5*r.logical+user0 {
		t.Errorf("serve-16 captured %d bytes, want %d", load.LogicalBytes, 5*r.logical+user0)
	}
	if !strings.Contains(load.Note, "16 records verified byte-identical, chunks stored once (") {
		t.Errorf("serve-16 note: %q", load.Note)
	}
	// One serve-16 wall second holds several clients' work.
	if load.WallSeconds <= 0 || load.CPUSeconds <= 0 {
		t.Errorf("serve-16 row: %+v", load)
	}
	// A store whose chunk set differs from the sequential one fails the
	// scenario, saying why.
	err = r.smpServeLoad(ctx, smpStatsOut{Chunks: 1, UniqueBytes: 1})
	last := r.rep.Rows[len(r.rep.Rows)-1]
	if err == nil || last.Scenario != ScenarioServeLoad || last.Status != StatusFailed ||
		!strings.Contains(last.Note, "16 records verified byte-identical, but the chunks are not stored once") {
		t.Errorf("serve-16 against a wrong chunk count: %v; row %+v", err, last)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 3 { // corpus, config, smp-store
		t.Errorf("scratch left behind: %v", ents)
	}
}

// TestRunServeUnavailable: a build without smp serve gives rows that say
// so, and no error.
func TestRunServeUnavailable(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "smp")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'smp: unknown command' >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &runner{opts: RunOptions{Bin: bin}, log: &bytes.Buffer{}, rep: &Report{}, env: os.Environ()}
	if err := r.smpServeScenarios(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, sc := range []string{ScenarioServe, ScenarioServeLoad} {
		if row, ok := r.rep.Row(ToolSMP, sc); !ok || row.Status != StatusUnavailable {
			t.Errorf("%s: %+v", sc, row)
		}
	}
}
