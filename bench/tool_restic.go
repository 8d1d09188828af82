package bench

import (
	"context"
	"path/filepath"
)

func (r *runner) restic(ctx context.Context, args ...string) (child, error) {
	return r.exec(ctx, execSpec{name: r.tools["restic"], args: append([]string{"--repo", r.resticRepo}, args...), env: r.resticEnv})
}

// resticBackups backs up every profile, user i as host computer i, one
// child per user; a later run finds its parent snapshot by host and path.
func (r *runner) resticBackups(ctx context.Context) (agg, error) {
	return r.eachUser(func(i int, u string) (child, error) {
		return r.restic(ctx, "backup", "--quiet", "--host", r.computers[i], filepath.Join(r.root, "home", u))
	}, r.root)
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
	a, err := r.resticBackups(ctx)
	if err != nil {
		r.fail(ToolRestic, ScenarioCapture, err)
		r.resticRepo = ""
		return
	}
	row := r.capturedRow(a, ToolRestic, r.resticRepo)
	row.Note = "repository v2, compression auto; stored = du of the repository"
	r.add(row)
}

func (r *runner) resticRestore(ctx context.Context) {
	if r.resticRepo == "" {
		r.noCapture(ToolRestic, ScenarioRestore, "restic")
		return
	}
	u := r.users[0]
	r.restoreFirst(ToolRestic, filepath.Join(r.work, "restore-restic"), r.resticRepo, func(target string) (child, error) {
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
	a, err := r.resticBackups(ctx)
	if err != nil {
		r.fail(ToolRestic, ScenarioIncremental, err)
		return
	}
	r.add(r.incrementalRow(a, ToolRestic, r.resticRepo, before, "parent snapshot: same host and path"))
}
