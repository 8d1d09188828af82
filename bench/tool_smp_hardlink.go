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
	withSMP := r.smpHasHardlink
	if !withSMP {
		for _, sc := range []string{ScenarioHardlinkAll, ScenarioHardlinkRestore} {
			r.add(Row{Tool: ToolSMP, Scenario: sc, Status: StatusUnavailable, Note: "not available in this build (smp capture has no --hardlink)"})
		}
	}
	withCp := !r.missing(ToolCpLink, ScenarioHardlinkAll, "cp")
	if !withSMP && !withCp {
		return nil
	}
	store := filepath.Join(r.work, "smp-hardlink-machine-store")
	target := filepath.Join(r.work, "restore-hardlink-machine")
	cpDir := filepath.Join(r.work, "cp-al-machine")
	defer removeAll(store)
	defer removeAll(target)
	defer removeAll(cpDir)
	fail := func(sc string, err error) error {
		r.add(Row{Tool: ToolSMP, Scenario: sc, Status: StatusFailed, Note: err.Error()})
		return fmt.Errorf("smp %s: %w", sc, err)
	}
	// The corpus is read into the page cache once; before each timed run
	// only a sync, so no run pays for the previous one's writes.
	if err := r.settle(r.root); err != nil {
		return fail(ScenarioHardlinkAll, err)
	}
	var capRuns, restoreRuns, cpRuns []child
	var capStored, cpStored int64
	var out smpCaptureOut
	var linked, cloned int64
	cpRound := func(round int) error {
		removeAll(cpDir)
		if err := r.settle(); err != nil {
			return err
		}
		c, err := r.exec(ctx, execSpec{name: r.tools["cp"], args: []string{"-al", filepath.Join(r.root, "home"), cpDir}})
		if err != nil {
			return err
		}
		cpRuns = append(cpRuns, c)
		if round == 0 {
			cpStored = diskUsage(r.root, cpDir)[1]
		}
		return nil
	}
	captureRound := func(round int) error {
		removeAll(store)
		if _, err := r.output(ctx, r.opts.Bin, "init", "--store", store); err != nil {
			return err
		}
		if err := r.settle(); err != nil {
			return err
		}
		c, err := r.exec(ctx, execSpec{name: r.opts.Bin, args: []string{"capture", "--store", store, "--computer", "machine", "--root", r.root, "--hardlink", "always", "--json"}})
		if err != nil {
			return err
		}
		if err := json.Unmarshal(c.stdout, &out); err != nil {
			return fmt.Errorf("smp capture output: %w: %q", err, c.stdout)
		}
		if out.Errors > 0 {
			return fmt.Errorf("%d errors: %s", out.Errors, strings.Join(out.Problems, "; "))
		}
		capRuns = append(capRuns, c)
		if round == 0 {
			capStored = diskUsage(r.root, store)[1]
		}
		return nil
	}
	restoreRound := func() error {
		removeAll(target)
		if err := os.Mkdir(target, 0o755); err != nil {
			return err
		}
		if err := r.settle(); err != nil {
			return err
		}
		c, err := r.exec(ctx, execSpec{name: r.opts.Bin, args: []string{"restore", "--store", store, "--record", out.Record, "--root", target, "--keep", "--json"}})
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
		files, err := compareLinkedTrees(filepath.Join(r.root, "home"), filepath.Join(target, "home"), res.Cloned > 0)
		if err != nil {
			return fmt.Errorf("restored tree differs from the corpus: %w", err)
		}
		if res.Linked+res.Cloned != files {
			return fmt.Errorf("%d files linked or cloned, the corpus holds %d", res.Linked+res.Cloned, files)
		}
		linked, cloned = res.Linked, res.Cloned
		restoreRuns = append(restoreRuns, c)
		return nil
	}
	for round := range hardlinkRounds {
		smpRound := func() error {
			if !withSMP {
				return nil
			}
			if err := captureRound(round); err != nil {
				return fail(ScenarioHardlinkAll, err)
			}
			if err := restoreRound(); err != nil {
				return fail(ScenarioHardlinkRestore, err)
			}
			return nil
		}
		cp := func() error {
			if !withCp {
				return nil
			}
			if err := cpRound(round); err != nil {
				r.fail(ToolCpLink, ScenarioHardlinkAll, err)
				withCp, cpRuns = false, nil
			}
			return nil
		}
		order := []func() error{cp, smpRound}
		if round%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, step := range order {
			if err := step(); err != nil {
				return err
			}
		}
	}
	if withSMP {
		row := medianRow(capRuns, ToolSMP, ScenarioHardlinkAll, out.Bytes)
		row.StoredBytes, row.DiskBytes = capStored, capStored
		row.DedupeRatio = ratio(out.Bytes, row.StoredBytes)
		row.Note = fmt.Sprintf("one process, %d users; --hardlink always; %s", len(r.users), row.Note)
		if chunked, ok := r.rep.Row(ToolSMP, ScenarioCapture); ok && chunked.OK() && row.WallSeconds > 0 {
			row.Note += fmt.Sprintf("; %.0fx faster than the chunked capture", chunked.WallSeconds/row.WallSeconds)
		}
		r.add(row)
		rrow := medianRow(restoreRuns, ToolSMP, ScenarioHardlinkRestore, out.Bytes)
		yes := true
		rrow.Verified = &yes
		rrow.Note = fmt.Sprintf("%d files linked, %d cloned into place, every one checked to be the corpus file itself; %s", linked, cloned, rrow.Note)
		r.add(rrow)
	}
	if withCp && len(cpRuns) > 0 {
		row := medianRow(cpRuns, ToolCpLink, ScenarioHardlinkAll, r.logical)
		row.StoredBytes, row.DiskBytes = cpStored, cpStored
		row.DedupeRatio = ratio(r.logical, row.StoredBytes)
		r.add(row)
	}
	return nil
}
