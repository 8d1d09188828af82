package bench

import (
	"context"
	"path/filepath"
)

func (r *runner) restic(ctx context.Context, args ...string) (child, error) {
	return r.resticAt(ctx, r.resticRepo, args...)
}

// resticAt runs restic on repo with the run's restic environment.
func (r *runner) resticAt(ctx context.Context, repo string, args ...string) (child, error) {
	env := []string{"RESTIC_PASSWORD=smp-bench", "RESTIC_CACHE_DIR=" + filepath.Join(r.work, "restic-cache")}
	return r.exec(ctx, execSpec{name: r.tools["restic"], args: append([]string{"--repo", repo}, args...), env: env})
}

// resticBackups backs up every profile into repo, user i as host
// computer i, one child per user, after settling the warm paths; a later
// run finds its parent snapshot by host and path.
func (r *runner) resticBackups(ctx context.Context, repo string, warm ...string) (agg, error) {
	return r.eachUser(func(i int, u string) (child, error) {
		return r.resticAt(ctx, repo, "backup", "--quiet", "--host", r.computers[i], filepath.Join(r.root, "home", u))
	}, warm...)
}

func (r *runner) resticCapture(ctx context.Context) {
	if r.missing(ToolRestic, ScenarioCapture, "restic") {
		return
	}
	r.resticRepo = filepath.Join(r.work, "restic-repo")
	if _, err := r.restic(ctx, "init", "--quiet"); err != nil {
		r.fail(ToolRestic, ScenarioCapture, err)
		r.resticRepo = ""
		return
	}
	a, err := r.resticBackups(ctx, r.resticRepo, r.root)
	if err != nil {
		r.fail(ToolRestic, ScenarioCapture, err)
		r.resticRepo = ""
		return
	}
	row := r.capturedRow(a, ToolRestic, r.resticRepo)
	row.Note = "repository v2, compression auto; stored = du of the repository"
	r.add(row)
}

// resticRestore restores the first user from the capture's repository;
// scenario is restore or restore-cold.
func (r *runner) resticRestore(ctx context.Context, scenario string) {
	if r.resticRepo == "" {
		r.noCapture(ToolRestic, scenario, "restic")
		return
	}
	u := r.users[0]
	r.restoreFirst(scenario, ToolRestic, filepath.Join(r.work, "restore-restic"), r.resticRepo, func(target string) (child, error) {
		return r.restic(ctx, "restore", "latest", "--host", r.computers[0], "--target", target)
	}, func(target string) string {
		// restic restores the absolute path it backed up below the target.
		return filepath.Join(target, r.root, "home", u)
	})
}

func (r *runner) resticIncremental(ctx context.Context) {
	if r.resticRepo == "" {
		r.noCapture(ToolRestic, ScenarioIncremental, "restic")
		return
	}
	before := du(r.resticRepo)
	a, err := r.resticBackups(ctx, r.resticRepo, r.root)
	if err != nil {
		r.fail(ToolRestic, ScenarioIncremental, err)
		return
	}
	r.add(r.incrementalRow(a, ToolRestic, r.resticRepo, before, "parent snapshot: same host and path"))
}
