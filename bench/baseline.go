package bench

import (
	"context"
	"os"
	"path/filepath"
)

// The scaffolding the baseline tools' runners share: each measures its
// tool the way the smp rows are measured (one child per user, the corpus
// settled first), so that the rows compare like with like.

// missing adds a "not installed" row for tool in scenario when one of
// the programs it needs is not on PATH, and reports whether it did.
func (r *runner) missing(tool, scenario string, needs ...string) bool {
	for _, n := range needs {
		if r.tools[n] == "" {
			r.add(Row{Tool: tool, Scenario: scenario, Status: StatusNotInstalled, Note: n + ": not installed (install with bench/install-baselines.sh)"})
			return true
		}
	}
	return false
}

// noCapture adds the row of a scenario that needs the tool's capture,
// which did not happen: "not installed", or skipped.
func (r *runner) noCapture(tool, scenario string, needs ...string) {
	if !r.missing(tool, scenario, needs...) {
		r.add(Row{Tool: tool, Scenario: scenario, Status: StatusSkipped, Note: "no capture"})
	}
}

func (r *runner) fail(tool, scenario string, err error) {
	r.add(Row{Tool: tool, Scenario: scenario, Status: StatusFailed, Note: err.Error()})
}

// eachUser settles the warm paths, then runs step for every user in turn
// (user i as computer i) and sums the children. It stops at the first
// error.
func (r *runner) eachUser(step func(i int, user string) (child, error), warm ...string) (agg, error) {
	var a agg
	if err := r.settle(warm...); err != nil {
		return a, err
	}
	for i, u := range r.users {
		c, err := step(i, u)
		if err != nil {
			return a, err
		}
		a.add(c)
	}
	return a, nil
}

// restoreFirst times a baseline's restore of the first user in scenario
// (restore or restore-cold): run restores into target, an empty
// directory made before src is settled (restore) or the page cache
// dropped (restore-cold), and removed afterwards; the profile lands at
// profile(target). The row is verified against the corpus.
func (r *runner) restoreFirst(scenario, tool, target, src string, run func(target string) (child, error), profile func(target string) string) {
	defer removeAll(target)
	if err := os.Mkdir(target, 0o755); err != nil {
		r.fail(tool, scenario, err)
		return
	}
	prepare := func() error { return r.settleRestore(src) }
	if scenario == ScenarioRestoreCold {
		prepare = dropCaches
	}
	if err := prepare(); err != nil {
		r.fail(tool, scenario, err)
		return
	}
	c, err := run(target)
	if err != nil {
		r.fail(tool, scenario, err)
		return
	}
	var a agg
	a.add(c)
	row, _ := r.verifyRestore(a, tool, scenario, r.users[0], profile(target))
	r.add(row)
}

// homeOf is where a restore into target puts user's profile when the tool
// keeps paths relative to the corpus root.
func homeOf(user string) func(target string) string {
	return func(target string) string { return filepath.Join(target, "home", user) }
}

// capturedRow is a baseline capture's row: what the tool stored is what
// dir takes on disk.
func (r *runner) capturedRow(a agg, tool, dir string) Row {
	row := a.row(tool, ScenarioCapture, r.logical)
	row.StoredBytes = du(dir)
	row.DiskBytes = row.StoredBytes
	row.DedupeRatio = ratio(r.logical, row.StoredBytes)
	return row
}

// incrementalRow is a baseline incremental capture's row: what it stored
// is how much dir grew from before.
func (r *runner) incrementalRow(a agg, tool, dir string, before int64, note string) Row {
	row := a.row(tool, ScenarioIncremental, r.logical)
	row.DiskBytes = du(dir)
	row.StoredBytes = max(row.DiskBytes-before, 0)
	row.Note = note
	return row
}

// runChild is r.exec of a command line, for eachUser and restoreFirst.
func (r *runner) runChild(ctx context.Context, name string, args ...string) (child, error) {
	return r.exec(ctx, execSpec{name: name, args: args})
}
