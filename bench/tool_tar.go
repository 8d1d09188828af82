package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// tarPipe runs script under bash with pipefail, so the child's rusage
// covers both tar and zstd.
func (r *runner) tarPipe(ctx context.Context, script string, args ...string) (child, error) {
	return r.exec(ctx, execSpec{name: r.tools["bash"], args: append([]string{"-c", "set -o pipefail; " + script, "bash"}, args...)})
}

const tarCreate = `tar -C "$1" --listed-incremental="$2" -cf - "$3" | zstd -T0 -3 -q -o "$4"`

func (r *runner) tarArchive(level, i int) (archive, snar string) {
	base := filepath.Join(r.tarDir, r.computers[i])
	return fmt.Sprintf("%s.%d.tar.zst", base, level), fmt.Sprintf("%s.%d.snar", base, level)
}

func (r *runner) tarCapture(ctx context.Context) {
	if r.missing(ToolTar, ScenarioCapture, "tar", "zstd", "bash") {
		return
	}
	r.tarDir = filepath.Join(r.work, "tar")
	if err := os.Mkdir(r.tarDir, 0o755); err != nil {
		r.fail(ToolTar, ScenarioCapture, err)
		return
	}
	if err := r.settle(r.root); err != nil {
		r.fail(ToolTar, ScenarioCapture, err)
		return
	}
	var a agg
	var stored int64
	for i, u := range r.users {
		arch, snar := r.tarArchive(0, i)
		c, err := r.tarPipe(ctx, tarCreate, r.root, snar, "home/"+u, arch)
		if err != nil {
			r.fail(ToolTar, ScenarioCapture, err)
			r.tarDir = ""
			return
		}
		a.add(c)
		stored += fileSize(arch)
	}
	row := a.row(ToolTar, ScenarioCapture, r.logical)
	row.StoredBytes = stored
	row.DiskBytes = du(r.tarDir)
	row.DedupeRatio = ratio(r.logical, stored)
	row.Note = "one tar --listed-incremental archive per user, zstd -T0 -3"
	r.add(row)
}

func (r *runner) tarRestore(ctx context.Context) {
	if r.tarDir == "" {
		if r.tools["zstd"] != "" && r.tools["tar"] != "" {
			r.add(Row{Tool: ToolTar, Scenario: ScenarioRestore, Status: StatusSkipped, Note: "no capture"})
		} else {
			r.missing(ToolTar, ScenarioRestore, "tar", "zstd", "bash")
		}
		return
	}
	u := r.users[0]
	target := filepath.Join(r.work, "restore-tar")
	defer removeAll(target)
	if err := os.Mkdir(target, 0o755); err != nil {
		r.fail(ToolTar, ScenarioRestore, err)
		return
	}
	arch, _ := r.tarArchive(0, 0)
	if err := r.settle(arch); err != nil {
		r.fail(ToolTar, ScenarioRestore, err)
		return
	}
	c, err := r.tarPipe(ctx, `zstd -dc -q "$1" | tar -C "$2" -xf -`, arch, target)
	if err != nil {
		r.fail(ToolTar, ScenarioRestore, err)
		return
	}
	var a agg
	a.add(c)
	row, _ := r.verifyRestore(a, ToolTar, u, filepath.Join(target, "home", u))
	r.add(row)
}

func (r *runner) tarIncremental(ctx context.Context) {
	if r.tarDir == "" {
		if r.tools["zstd"] != "" && r.tools["tar"] != "" {
			r.add(Row{Tool: ToolTar, Scenario: ScenarioIncremental, Status: StatusSkipped, Note: "no capture"})
		} else {
			r.missing(ToolTar, ScenarioIncremental, "tar", "zstd", "bash")
		}
		return
	}
	// Level 1 starts from a copy of level 0's snapshot file (not timed).
	for i := range r.users {
		_, snar0 := r.tarArchive(0, i)
		_, snar1 := r.tarArchive(1, i)
		if err := copySmallFile(snar0, snar1); err != nil {
			r.fail(ToolTar, ScenarioIncremental, err)
			return
		}
	}
	if err := r.settle(r.root); err != nil {
		r.fail(ToolTar, ScenarioIncremental, err)
		return
	}
	var a agg
	var stored int64
	for i, u := range r.users {
		arch, snar := r.tarArchive(1, i)
		c, err := r.tarPipe(ctx, tarCreate, r.root, snar, "home/"+u, arch)
		if err != nil {
			r.fail(ToolTar, ScenarioIncremental, err)
			return
		}
		a.add(c)
		stored += fileSize(arch)
	}
	row := a.row(ToolTar, ScenarioIncremental, r.logical)
	row.StoredBytes = stored
	row.DiskBytes = du(r.tarDir)
	row.Note = "GNU tar level-1 --listed-incremental archives"
	r.add(row)
}
