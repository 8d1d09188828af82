package bench

import (
	"context"
	"os"
	"path/filepath"
)

func (r *runner) cpCapture(ctx context.Context) {
	if r.missing(ToolCp, ScenarioCapture, "cp") {
		return
	}
	r.cpDir = filepath.Join(r.work, "cp")
	if err := os.Mkdir(r.cpDir, 0o755); err != nil {
		r.fail(ToolCp, ScenarioCapture, err)
		return
	}
	if err := r.settle(r.root); err != nil {
		r.fail(ToolCp, ScenarioCapture, err)
		return
	}
	var a agg
	for i, u := range r.users {
		c, err := r.exec(ctx, execSpec{name: r.tools["cp"], args: []string{"-a", filepath.Join(r.root, "home", u), filepath.Join(r.cpDir, r.computers[i])}})
		if err != nil {
			r.fail(ToolCp, ScenarioCapture, err)
			r.cpDir = ""
			return
		}
		a.add(c)
	}
	row := a.row(ToolCp, ScenarioCapture, r.logical)
	row.StoredBytes = du(r.cpDir)
	row.DiskBytes = row.StoredBytes
	row.DedupeRatio = ratio(r.logical, row.StoredBytes)
	r.add(row)
}

func (r *runner) cpRestore(ctx context.Context) {
	if r.cpDir == "" {
		r.add(Row{Tool: ToolCp, Scenario: ScenarioRestore, Status: StatusSkipped, Note: "no capture"})
		return
	}
	u := r.users[0]
	target := filepath.Join(r.work, "restore-cp")
	defer removeAll(target)
	if err := os.MkdirAll(filepath.Join(target, "home"), 0o755); err != nil {
		r.fail(ToolCp, ScenarioRestore, err)
		return
	}
	src := filepath.Join(r.cpDir, r.computers[0])
	if err := r.settle(src); err != nil {
		r.fail(ToolCp, ScenarioRestore, err)
		return
	}
	c, err := r.exec(ctx, execSpec{name: r.tools["cp"], args: []string{"-a", src, filepath.Join(target, "home", u)}})
	if err != nil {
		r.fail(ToolCp, ScenarioRestore, err)
		return
	}
	var a agg
	a.add(c)
	row, _ := r.verifyRestore(a, ToolCp, u, filepath.Join(target, "home", u))
	r.add(row)
}

// cpIncremental copies what changed into the first copy with cp -a -u
// (files newer than the copy's); deletions are not carried over.
func (r *runner) cpIncremental(ctx context.Context) {
	if r.cpDir == "" {
		r.add(Row{Tool: ToolCp, Scenario: ScenarioIncremental, Status: StatusSkipped, Note: "no capture"})
		return
	}
	before := du(r.cpDir)
	if err := r.settle(r.root); err != nil {
		r.fail(ToolCp, ScenarioIncremental, err)
		return
	}
	var a agg
	for i, u := range r.users {
		c, err := r.exec(ctx, execSpec{name: r.tools["cp"], args: []string{"-a", "-u", "-T", filepath.Join(r.root, "home", u), filepath.Join(r.cpDir, r.computers[i])}})
		if err != nil {
			r.fail(ToolCp, ScenarioIncremental, err)
			return
		}
		a.add(c)
	}
	row := a.row(ToolCp, ScenarioIncremental, r.logical)
	row.DiskBytes = du(r.cpDir)
	row.StoredBytes = max(row.DiskBytes-before, 0)
	row.Note = "cp -a -u: copies files newer than the copy; deletions not carried over"
	r.add(row)
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
	if err := r.settle(); err != nil {
		r.fail(ToolCpLink, ScenarioHardlink, err)
		return
	}
	var a agg
	for i, u := range r.users {
		c, err := r.exec(ctx, execSpec{name: r.tools["cp"], args: []string{"-al", filepath.Join(r.root, "home", u), filepath.Join(dir, r.computers[i])}})
		if err != nil {
			r.fail(ToolCpLink, ScenarioHardlink, err)
			return
		}
		a.add(c)
	}
	row := a.row(ToolCpLink, ScenarioHardlink, r.logical)
	usage := diskUsage(r.root, dir)
	row.StoredBytes, row.DiskBytes = usage[1], usage[1]
	row.DedupeRatio = ratio(r.logical, row.StoredBytes)
	r.add(row)
}
