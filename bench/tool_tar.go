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

// tarArchive is the archive and snapshot file in dir of user i's
// level-th archive.
func (r *runner) tarArchive(dir string, level, i int) (archive, snar string) {
	base := filepath.Join(dir, r.computers[i])
	return fmt.Sprintf("%s.%d.tar.zst", base, level), fmt.Sprintf("%s.%d.snar", base, level)
}

// tarLevel archives every profile into dir at level (0: full, 1:
// changes since level 0), one child per user, after settling the warm
// paths, and returns the archives' total size.
func (r *runner) tarLevel(ctx context.Context, dir string, level int, warm ...string) (a agg, stored int64, err error) {
	a, err = r.eachUser(func(i int, u string) (child, error) {
		arch, snar := r.tarArchive(dir, level, i)
		c, err := r.tarPipe(ctx, tarCreate, r.root, snar, "home/"+u, arch)
		stored += fileSize(arch)
		return c, err
	}, warm...)
	return a, stored, err
}

func (r *runner) tarCapture(ctx context.Context) {
	if r.missing(ToolTar, ScenarioCapture, "tar", "zstd", "bash") {
		return
	}
	r.tarDir = filepath.Join(r.work, "tar")
	if err := os.Mkdir(r.tarDir, 0o755); err != nil {
		r.fail(ToolTar, ScenarioCapture, err)
		r.tarDir = ""
		return
	}
	a, stored, err := r.tarLevel(ctx, r.tarDir, 0, r.root)
	if err != nil {
		r.fail(ToolTar, ScenarioCapture, err)
		r.tarDir = ""
		return
	}
	row := a.row(ToolTar, ScenarioCapture, r.logical)
	row.StoredBytes = stored
	row.DiskBytes = du(r.tarDir)
	row.DedupeRatio = ratio(r.logical, stored)
	row.Note = "one tar --listed-incremental archive per user, zstd -T0 -3"
	r.add(row)
}

// tarRestore extracts the first user's archive; scenario is restore or
// restore-cold.
func (r *runner) tarRestore(ctx context.Context, scenario string) {
	if r.tarDir == "" {
		r.noCapture(ToolTar, scenario, "tar", "zstd", "bash")
		return
	}
	arch, _ := r.tarArchive(r.tarDir, 0, 0)
	r.restoreFirst(scenario, ToolTar, filepath.Join(r.work, "restore-tar"), arch, func(target string) (child, error) {
		return r.tarPipe(ctx, `zstd -dc -q "$1" | tar -C "$2" -xf -`, arch, target)
	}, homeOf(r.users[0]))
}

func (r *runner) tarIncremental(ctx context.Context) {
	if r.tarDir == "" {
		r.noCapture(ToolTar, ScenarioIncremental, "tar", "zstd", "bash")
		return
	}
	// Level 1 starts from a copy of level 0's snapshot file (not timed).
	for i := range r.users {
		_, snar0 := r.tarArchive(r.tarDir, 0, i)
		_, snar1 := r.tarArchive(r.tarDir, 1, i)
		if err := copySmallFile(snar0, snar1); err != nil {
			r.fail(ToolTar, ScenarioIncremental, err)
			return
		}
	}
	a, stored, err := r.tarLevel(ctx, r.tarDir, 1, r.root)
	if err != nil {
		r.fail(ToolTar, ScenarioIncremental, err)
		return
	}
	row := a.row(ToolTar, ScenarioIncremental, r.logical)
	row.StoredBytes = stored
	row.DiskBytes = du(r.tarDir)
	row.Note = "GNU tar level-1 --listed-incremental archives"
	r.add(row)
}
