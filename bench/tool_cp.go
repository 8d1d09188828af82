package bench

import (
	"context"
	"os"
	"path/filepath"
)

// cpCapture copies every profile with cp -a, one child per user.
func (r *runner) cpCapture(ctx context.Context) {
	if r.missing(ToolCp, ScenarioCapture, "cp") {
		return
	}
	r.cpDir = filepath.Join(r.work, "cp")
	if err := os.Mkdir(r.cpDir, 0o755); err != nil {
		r.fail(ToolCp, ScenarioCapture, err)
		r.cpDir = ""
		return
	}
	a, err := r.eachUser(func(i int, u string) (child, error) {
		return r.runChild(ctx, r.tools["cp"], "-a", filepath.Join(r.root, "home", u), filepath.Join(r.cpDir, r.computers[i]))
	}, r.root)
	if err != nil {
		r.fail(ToolCp, ScenarioCapture, err)
		r.cpDir = ""
		return
	}
	r.add(r.capturedRow(a, ToolCp, r.cpDir))
}

// cpRestore copies the first user's copy back with cp -a; scenario is
// restore or restore-cold.
func (r *runner) cpRestore(ctx context.Context, scenario string) {
	if r.cpDir == "" {
		r.noCapture(ToolCp, scenario, "cp")
		return
	}
	u := r.users[0]
	src := filepath.Join(r.cpDir, r.computers[0])
	r.restoreFirst(scenario, ToolCp, filepath.Join(r.work, "restore-cp"), src, func(target string) (child, error) {
		if err := os.Mkdir(filepath.Join(target, "home"), 0o755); err != nil {
			return child{}, err
		}
		return r.runChild(ctx, r.tools["cp"], "-a", src, filepath.Join(target, "home", u))
	}, homeOf(u))
}

// cpIncremental copies what changed into the first copy with cp -a -u
// (files newer than the copy's); deletions are not carried over.
func (r *runner) cpIncremental(ctx context.Context) {
	if r.cpDir == "" {
		r.noCapture(ToolCp, ScenarioIncremental, "cp")
		return
	}
	before := du(r.cpDir)
	a, err := r.eachUser(func(i int, u string) (child, error) {
		return r.runChild(ctx, r.tools["cp"], "-a", "-u", "-T", filepath.Join(r.root, "home", u), filepath.Join(r.cpDir, r.computers[i]))
	}, r.root)
	if err != nil {
		r.fail(ToolCp, ScenarioIncremental, err)
		return
	}
	r.add(r.incrementalRow(a, ToolCp, r.cpDir, before, "cp -a -u: copies files newer than the copy; deletions not carried over"))
}

// cpLink is the hard-link baseline: cp -al of every profile; stored bytes
// are what the links add on disk (directories), the files' inodes being
// the corpus'.
func (r *runner) cpLink(ctx context.Context) {
	if r.missing(ToolCpLink, ScenarioHardlink, "cp") {
		return
	}
	dir := filepath.Join(r.work, "cp-al")
	defer removeAll(dir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		r.fail(ToolCpLink, ScenarioHardlink, err)
		return
	}
	a, err := r.eachUser(func(i int, u string) (child, error) {
		return r.runChild(ctx, r.tools["cp"], "-al", filepath.Join(r.root, "home", u), filepath.Join(dir, r.computers[i]))
	})
	if err != nil {
		r.fail(ToolCpLink, ScenarioHardlink, err)
		return
	}
	row := a.row(ToolCpLink, ScenarioHardlink, r.logical)
	usage := diskUsage(r.root, dir)
	row.StoredBytes, row.DiskBytes = usage[1], usage[1]
	row.DedupeRatio = ratio(r.logical, row.StoredBytes)
	r.add(row)
}
