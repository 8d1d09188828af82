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
// incremental rows with their files per second and ratios to the floors,
// and the baselines' cold capture and restore rows beside smp's (each
// baseline on PATH measured, each one missing a "not installed" row);
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
	r.rep = &Report{Corpus: CorpusReport{}, ToolVersions: map[string]string{}}
	ctx := context.Background()
	initHelp, _ := r.combined(ctx, bin, "init", "--help")
	r.smpHasEncrypt = strings.Contains(initHelp, "--key-file")
	r.findTools(ctx)
	r.coldCheck()
	if err := r.prepareCorpus(ctx); err != nil {
		t.Fatal(err)
	}
	// The warm captures the cold restores restore from.
	if err := r.smpCapture(ctx); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	r.cpCapture(ctx)
	r.tarCapture(ctx)
	r.resticCapture(ctx)
	r.borgCapture(ctx)
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
		checkColdSkipped(t, r.rep)
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
	checkColdBaselines(t, r, before, before0)
}

// checkColdBaselines checks the baselines' cold rows of TestRunCold (and
// smp's restore-cold from the unencrypted store): measured when the tool
// is on PATH, "not installed" otherwise; the cold capture's repository
// removed afterwards.
func checkColdBaselines(t *testing.T, r *runner, files, files0 int64) {
	t.Helper()
	if r.coldVariant().tool != ToolSMP {
		row, ok := r.rep.Row(ToolSMP, ScenarioRestoreCold)
		if !ok || !row.OK() || row.Files != files0 || row.Verified == nil || !*row.Verified || !strings.Contains(row.Note, "page cache dropped first, verified byte for byte") {
			t.Errorf("smp restore-cold from the unencrypted store: %+v", row)
		}
	}
	needs := map[string][]string{ToolCp: {"cp"}, ToolTar: {"tar", "zstd", "bash"}, ToolRestic: {"restic"}, ToolBorg: {"borg"}}
	for _, tool := range []string{ToolCp, ToolTar, ToolRestic, ToolBorg} {
		installed := true
		for _, n := range needs[tool] {
			installed = installed && r.tools[n] != ""
		}
		scenarios := []string{ScenarioRestoreCold}
		if tool != ToolCp {
			scenarios = append(scenarios, ScenarioCaptureCold)
		}
		for _, sc := range scenarios {
			row, ok := r.rep.Row(tool, sc)
			switch {
			case !installed:
				if !ok || row.Status != StatusNotInstalled {
					t.Errorf("%s %s without the tool: %+v", tool, sc, row)
				}
			case sc == ScenarioCaptureCold:
				if !ok || !row.OK() || row.Files != files || row.WallSeconds <= 0 || row.LogicalBytes != r.rep.Corpus.Info.Bytes ||
					!strings.Contains(row.Note, "x the cold-read floor; page cache dropped first; ") {
					t.Errorf("%s %s: %+v", tool, sc, row)
				}
			default:
				if !ok || !row.OK() || row.Files != files0 || row.Verified == nil || !*row.Verified ||
					row.Note != "restore of "+r.users[0]+", page cache dropped first, verified byte for byte" {
					t.Errorf("%s %s: %+v", tool, sc, row)
				}
			}
		}
	}
	for _, dir := range []string{"tar-cold", "restic-cold-repo", "borg-cold-repo", "restore-cold"} {
		if _, err := os.Stat(filepath.Join(r.work, dir)); !os.IsNotExist(err) {
			t.Errorf("%s is left behind: %v", dir, err)
		}
	}
}

// checkColdSkipped checks that the baselines' cold rows (and smp's
// restore-cold from the unencrypted store) say why they were skipped.
func checkColdSkipped(t *testing.T, rep *Report) {
	t.Helper()
	for _, c := range []struct {
		scenario string
		tools    []string
	}{
		{ScenarioCaptureCold, []string{ToolTar, ToolRestic, ToolBorg}},
		{ScenarioRestoreCold, []string{ToolSMP, ToolCp, ToolTar, ToolRestic, ToolBorg}},
	} {
		for _, tool := range c.tools {
			if row, ok := rep.Row(tool, c.scenario); !ok || row.Status != StatusSkipped || !strings.Contains(row.Note, "not root") {
				t.Errorf("%s %s: %+v; want skipped, not root", tool, c.scenario, row)
			}
		}
	}
}

// TestColdSkipped: when the page cache cannot be dropped, every cold row,
// smp's and the baselines', says why, and nothing runs.
func TestColdSkipped(t *testing.T) {
	r := &runner{log: &bytes.Buffer{}, work: t.TempDir(), smpHasEncrypt: true, rep: &Report{Cold: &ColdReport{Skipped: "not root: run as root for the cold rows"}}}
	ctx := context.Background()
	if err := r.coldCapture(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.coldRestore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.coldIncremental(ctx); err != nil {
		t.Fatal(err)
	}
	checkColdSkipped(t, r.rep)
	for _, sc := range []string{ScenarioCaptureCold, ScenarioRestoreCold, ScenarioIncrementalCold} {
		if row, ok := r.rep.Row(ToolSMPEncrypted, sc); !ok || row.Status != StatusSkipped {
			t.Errorf("smp encrypted %s: %+v", sc, row)
		}
	}
	for _, sc := range []string{ScenarioFloorRead, ScenarioFloorWalk} {
		if row, ok := r.rep.Row(ToolFloor, sc); !ok || row.Status != StatusSkipped {
			t.Errorf("floor %s: %+v", sc, row)
		}
	}
	if len(r.rep.Rows) != 5+6+2 {
		t.Errorf("%d rows: %+v", len(r.rep.Rows), r.rep.Rows)
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
