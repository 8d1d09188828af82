package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// The baselines' cold captures: each tool captures every user into a
// fresh repository (tar: a fresh directory of level-0 archives) with the
// page cache dropped first, as smp's capture-cold row does, so that the
// cold rows compare like with like. A fresh repository also means no
// files cache or parent snapshot from the warm capture: every file is
// read. The repository is removed afterwards (the baselines' restore and
// incremental rows use the warm capture's).

// coldBaseline is one baseline's cold capture.
type coldBaseline struct {
	tool  string
	needs []string                        // programs on PATH
	dir   string                          // the fresh repository or directory
	init  func(ctx context.Context) error // makes dir, untimed
	// capture captures every user into dir, one child per user, without
	// settling anything (the caller dropped the page cache).
	capture func(ctx context.Context) (agg, error)
	note    string
}

// coldCaptureBaselines runs tar|zstd's, restic's and borg's cold
// captures; when the cold rows cannot run, their rows say why.
func (r *runner) coldCaptureBaselines(ctx context.Context) {
	tarDir := filepath.Join(r.work, "tar-cold")
	resticRepo := filepath.Join(r.work, "restic-cold-repo")
	borgRepo := filepath.Join(r.work, "borg-cold-repo")
	for _, b := range []coldBaseline{{
		tool: ToolTar, needs: []string{"tar", "zstd", "bash"}, dir: tarDir,
		init: func(context.Context) error { return os.Mkdir(tarDir, 0o755) },
		capture: func(ctx context.Context) (agg, error) {
			a, _, err := r.tarLevel(ctx, tarDir, 0)
			return a, err
		},
		note: "level-0 archives into a fresh directory",
	}, {
		tool: ToolRestic, needs: []string{"restic"}, dir: resticRepo,
		init: func(ctx context.Context) error {
			_, err := r.resticAt(ctx, resticRepo, "init", "--quiet")
			return err
		},
		capture: func(ctx context.Context) (agg, error) { return r.resticBackups(ctx, resticRepo) },
		note:    "into a fresh repository",
	}, {
		tool: ToolBorg, needs: []string{"borg"}, dir: borgRepo,
		init:    func(ctx context.Context) error { return r.borgInit(ctx, borgRepo) },
		capture: func(ctx context.Context) (agg, error) { return r.borgBackups(ctx, borgRepo, 0) },
		note:    "into a fresh repository (its own files cache)",
	}} {
		if ctx.Err() != nil {
			return
		}
		r.coldCaptureBaseline(ctx, b)
	}
}

// coldCaptureBaseline makes b's fresh repository, drops the page cache,
// captures every user and adds the row; the repository is removed
// afterwards.
func (r *runner) coldCaptureBaseline(ctx context.Context, b coldBaseline) {
	if r.coldSkipped(ScenarioCaptureCold, b.tool) || r.missing(b.tool, ScenarioCaptureCold, b.needs...) {
		return
	}
	defer removeAll(b.dir)
	if err := b.init(ctx); err != nil {
		r.fail(b.tool, ScenarioCaptureCold, err)
		return
	}
	if err := dropCaches(); err != nil {
		r.fail(b.tool, ScenarioCaptureCold, err)
		return
	}
	a, err := b.capture(ctx)
	if err != nil {
		r.fail(b.tool, ScenarioCaptureCold, err)
		return
	}
	row := a.row(b.tool, ScenarioCaptureCold, r.logical)
	row.Note = "page cache dropped first; " + b.note
	if floor := r.rep.Cold.ReadFloorSeconds; floor > 0 && row.WallSeconds > 0 {
		row.Note = fmt.Sprintf("%.2fx the cold-read floor; ", row.WallSeconds/floor) + row.Note
	}
	r.add(row)
}
