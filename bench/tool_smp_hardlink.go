package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// hardlinkRounds is how many times the one-process hard-link scenarios
// run, interleaved with cp -al. Each takes a fraction of a second, where a
// single run on a shared host measures the host more than the tool; their
// rows report the median run, and the note gives the range.
const hardlinkRounds = 5

// hardlinkMachine measures a refresh of one machine: every profile
// captured by one `smp capture --hardlink always` (the per-user hardlink
// scenario pays smp's fixed start-up cost once per user), that record
// restored to an empty root on the same filesystem, where every file is
// linked into place, and `cp -al` of every profile in one process. Each
// round makes a new store, target and copy; the three take turns going
// first. Every restore is verified by identity: each restored regular file
// must be the corpus file's own inode, so its bytes cannot differ;
// symlinks must point where the corpus' do.
func (r *runner) hardlinkMachine(ctx context.Context) error {
	h := &hardlinkRun{r: r, withSMP: r.smpHasHardlink,
		store:  filepath.Join(r.work, "smp-hardlink-machine-store"),
		target: filepath.Join(r.work, "restore-hardlink-machine"),
		cpDir:  filepath.Join(r.work, "cp-al-machine"),
	}
	if !h.withSMP {
		for _, sc := range []string{ScenarioHardlinkAll, ScenarioHardlinkRestore} {
			r.add(Row{Tool: ToolSMP, Scenario: sc, Status: StatusUnavailable, Note: "not available in this build (smp capture has no --hardlink)"})
		}
	}
	h.withCp = !r.missing(ToolCpLink, ScenarioHardlinkAll, "cp")
	if !h.withSMP && !h.withCp {
		return nil
	}
	defer removeAll(h.store)
	defer removeAll(h.target)
	defer removeAll(h.cpDir)
	// The corpus is read into the page cache once; before each timed run
	// only a sync, so no run pays for the previous one's writes.
	if err := r.settle(r.root); err != nil {
		return h.fail(ScenarioHardlinkAll, err)
	}
	for round := range hardlinkRounds {
		order := []func(ctx context.Context, round int) error{h.cpRound, h.smpRound}
		if round%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, step := range order {
			if err := step(ctx, round); err != nil {
				return err
			}
		}
	}
	h.addRows()
	return nil
}

// hardlinkRun is one hardlinkMachine: where its rounds write and what
// they measured.
type hardlinkRun struct {
	r               *runner
	withSMP, withCp bool
	store, target   string
	cpDir           string

	capRuns, restoreRuns, cpRuns []child
	capStored, cpStored          int64         // on disk, measured in the first round
	out                          smpCaptureOut // the last capture's output
	linked, cloned               int64         // files the last restore linked or cloned
}

func (h *hardlinkRun) fail(sc string, err error) error {
	h.r.add(Row{Tool: ToolSMP, Scenario: sc, Status: StatusFailed, Note: err.Error()})
	return fmt.Errorf("smp %s: %w", sc, err)
}

// smpRound captures the machine into a new store and restores it; an
// error fails the run.
func (h *hardlinkRun) smpRound(ctx context.Context, round int) error {
	if !h.withSMP {
		return nil
	}
	if err := h.capture(ctx, round); err != nil {
		return h.fail(ScenarioHardlinkAll, err)
	}
	if err := h.restore(ctx); err != nil {
		return h.fail(ScenarioHardlinkRestore, err)
	}
	return nil
}

// cpRound runs cp -al of every profile into a new directory; a failure
// drops cp -al from the remaining rounds, not the run.
func (h *hardlinkRun) cpRound(ctx context.Context, round int) error {
	if !h.withCp {
		return nil
	}
	r := h.r
	err := func() error {
		removeAll(h.cpDir)
		if err := r.settle(); err != nil {
			return err
		}
		c, err := r.runChild(ctx, r.tools["cp"], "-al", filepath.Join(r.root, "home"), h.cpDir)
		if err != nil {
			return err
		}
		h.cpRuns = append(h.cpRuns, c)
		if round == 0 {
			h.cpStored = diskUsage(r.root, h.cpDir)[1]
		}
		return nil
	}()
	if err != nil {
		r.fail(ToolCpLink, ScenarioHardlinkAll, err)
		h.withCp, h.cpRuns = false, nil
	}
	return nil
}

func (h *hardlinkRun) capture(ctx context.Context, round int) error {
	r := h.r
	removeAll(h.store)
	if _, err := r.output(ctx, r.opts.Bin, initArgs(h.store, true)...); err != nil {
		return err
	}
	if err := r.settle(); err != nil {
		return err
	}
	c, err := r.runChild(ctx, r.opts.Bin, "capture", "--store", h.store, "--computer", "machine", "--root", r.root, "--hardlink", "always", "--json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(c.stdout, &h.out); err != nil {
		return fmt.Errorf("smp capture output: %w: %q", err, c.stdout)
	}
	if h.out.Errors > 0 {
		return fmt.Errorf("%d errors: %s", h.out.Errors, strings.Join(h.out.Problems, "; "))
	}
	h.capRuns = append(h.capRuns, c)
	if round == 0 {
		h.capStored = diskUsage(r.root, h.store)[1]
	}
	return nil
}

func (h *hardlinkRun) restore(ctx context.Context) error {
	r := h.r
	removeAll(h.target)
	if err := os.Mkdir(h.target, 0o755); err != nil {
		return err
	}
	if err := r.settle(); err != nil {
		return err
	}
	// --allow-system: the corpus is root's, and a restore that gave its
	// files to their profiles' users would copy them (a link would change
	// the corpus files' owner), which is not the fast path measured here.
	c, err := r.runChild(ctx, r.opts.Bin, "restore", "--store", h.store, "--record", h.out.Record, "--root", h.target, "--keep", "--allow-system", "--json")
	if err != nil {
		return err
	}
	var res struct {
		Errors int64 `json:"errors"`
		Linked int64 `json:"linked_files"`
		Cloned int64 `json:"cloned_files"`
	}
	if err := json.Unmarshal(c.stdout, &res); err != nil {
		return fmt.Errorf("smp restore output: %w: %q", err, c.stdout)
	}
	if res.Errors > 0 {
		return fmt.Errorf("smp restore: %d errors", res.Errors)
	}
	files, err := compareLinkedTrees(filepath.Join(r.root, "home"), filepath.Join(h.target, "home"), res.Cloned > 0)
	if err != nil {
		return fmt.Errorf("restored tree differs from the corpus: %w", err)
	}
	if res.Linked+res.Cloned != files {
		return fmt.Errorf("%d files linked or cloned, the corpus holds %d", res.Linked+res.Cloned, files)
	}
	h.linked, h.cloned = res.Linked, res.Cloned
	h.restoreRuns = append(h.restoreRuns, c)
	return nil
}

// addRows adds the median rows of the rounds.
func (h *hardlinkRun) addRows() {
	r := h.r
	if h.withSMP {
		row := medianRow(h.capRuns, ToolSMP, ScenarioHardlinkAll, h.out.Bytes)
		row.StoredBytes, row.DiskBytes = h.capStored, h.capStored
		row.DedupeRatio = ratio(h.out.Bytes, row.StoredBytes)
		row.Note = fmt.Sprintf("one process, %d users; --hardlink always; %s", len(r.users), row.Note)
		if chunked, ok := r.rep.Row(ToolSMP, ScenarioCapture); ok && chunked.OK() && row.WallSeconds > 0 {
			row.Note += fmt.Sprintf("; %.0fx faster than the chunked capture", chunked.WallSeconds/row.WallSeconds)
		}
		r.add(row)
		rrow := medianRow(h.restoreRuns, ToolSMP, ScenarioHardlinkRestore, h.out.Bytes)
		yes := true
		rrow.Verified = &yes
		rrow.Note = fmt.Sprintf("%d files linked, %d cloned into place, every one checked to be the corpus file itself; %s", h.linked, h.cloned, rrow.Note)
		r.add(rrow)
	}
	if h.withCp && len(h.cpRuns) > 0 {
		row := medianRow(h.cpRuns, ToolCpLink, ScenarioHardlinkAll, r.logical)
		row.StoredBytes, row.DiskBytes = h.cpStored, h.cpStored
		row.DedupeRatio = ratio(r.logical, row.StoredBytes)
		r.add(row)
	}
}
