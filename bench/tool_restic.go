package bench

import (
	"context"
	"os"
	"path/filepath"
)

func (r *runner) restic(ctx context.Context, args ...string) (child, error) {
	return r.exec(ctx, execSpec{name: r.tools["restic"], args: append([]string{"--repo", r.resticRepo}, args...), env: r.resticEnv})
}

func (r *runner) resticCapture(ctx context.Context) {
	if r.missing(ToolRestic, ScenarioCapture, "restic") {
		return
	}
	r.resticRepo = filepath.Join(r.work, "restic-repo")
	r.resticEnv = []string{"RESTIC_PASSWORD=smp-bench", "RESTIC_CACHE_DIR=" + filepath.Join(r.work, "restic-cache")}
	if _, err := r.restic(ctx, "init", "--quiet"); err != nil {
		r.fail(ToolRestic, ScenarioCapture, err)
		r.resticRepo = ""
		return
	}
	if err := r.settle(r.root); err != nil {
		r.fail(ToolRestic, ScenarioCapture, err)
		return
	}
	var a agg
	for i, u := range r.users {
		c, err := r.restic(ctx, "backup", "--quiet", "--host", r.computers[i], filepath.Join(r.root, "home", u))
		if err != nil {
			r.fail(ToolRestic, ScenarioCapture, err)
			r.resticRepo = ""
			return
		}
		a.add(c)
	}
	row := a.row(ToolRestic, ScenarioCapture, r.logical)
	row.StoredBytes = du(r.resticRepo)
	row.DiskBytes = row.StoredBytes
	row.DedupeRatio = ratio(r.logical, row.StoredBytes)
	row.Note = "repository v2, compression auto; stored = du of the repository"
	r.add(row)
}

func (r *runner) resticRestore(ctx context.Context) {
	if r.resticRepo == "" {
		if !r.missing(ToolRestic, ScenarioRestore, "restic") {
			r.add(Row{Tool: ToolRestic, Scenario: ScenarioRestore, Status: StatusSkipped, Note: "no capture"})
		}
		return
	}
	u := r.users[0]
	target := filepath.Join(r.work, "restore-restic")
	defer removeAll(target)
	if err := os.Mkdir(target, 0o755); err != nil {
		r.fail(ToolRestic, ScenarioRestore, err)
		return
	}
	if err := r.settle(r.resticRepo); err != nil {
		r.fail(ToolRestic, ScenarioRestore, err)
		return
	}
	c, err := r.restic(ctx, "restore", "latest", "--host", r.computers[0], "--target", target)
	if err != nil {
		r.fail(ToolRestic, ScenarioRestore, err)
		return
	}
	var a agg
	a.add(c)
	// restic restores the absolute path it backed up below the target.
	row, _ := r.verifyRestore(a, ToolRestic, u, filepath.Join(target, r.root, "home", u))
	r.add(row)
}

func (r *runner) resticIncremental(ctx context.Context) {
	if r.resticRepo == "" {
		if !r.missing(ToolRestic, ScenarioIncremental, "restic") {
			r.add(Row{Tool: ToolRestic, Scenario: ScenarioIncremental, Status: StatusSkipped, Note: "no capture"})
		}
		return
	}
	before := du(r.resticRepo)
	if err := r.settle(r.root); err != nil {
		r.fail(ToolRestic, ScenarioIncremental, err)
		return
	}
	var a agg
	for i, u := range r.users {
		c, err := r.restic(ctx, "backup", "--quiet", "--host", r.computers[i], filepath.Join(r.root, "home", u))
		if err != nil {
			r.fail(ToolRestic, ScenarioIncremental, err)
			return
		}
		a.add(c)
	}
	row := a.row(ToolRestic, ScenarioIncremental, r.logical)
	row.DiskBytes = du(r.resticRepo)
	row.StoredBytes = max(row.DiskBytes-before, 0)
	row.Note = "parent snapshot: same host and path"
	r.add(row)
}
