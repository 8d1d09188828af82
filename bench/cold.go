package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
)

// Cold-cache scenarios: smp's capture, restore and incremental with the
// page cache dropped right before (the first migration of a machine reads
// a cold disk), next to the disk's floors measured in the same run, so
// that each cold row has a ratio to what the disk allows.
const (
	ScenarioCaptureCold     = "capture-cold"     // every user captured into a fresh store, page cache dropped first
	ScenarioRestoreCold     = "restore-cold"     // the first user restored from that store, page cache dropped first
	ScenarioIncrementalCold = "incremental-cold" // re-capture of every user into it after corpus.MutateOrg, page cache dropped first
	ScenarioFloorRead       = "floor-read"       // every corpus file read once by floorReaders parallel readers, cold
	ScenarioFloorWalk       = "floor-walk"       // walk and lstat of every corpus entry, cold
)

// ToolFloor is the tool of the floor rows: the bench process itself.
const ToolFloor = "floor"

// floorReaders is how many goroutines read the corpus in the cold-read
// floor.
const floorReaders = 4

// ColdReport holds the cold rows' ratios to the floors.
type ColdReport struct {
	Skipped                  string  `json:"skipped,omitempty"` // why there are no cold rows
	ReadFloorSeconds         float64 `json:"read_floor_seconds,omitempty"`
	ReadFloorCPUSeconds      float64 `json:"read_floor_cpu_seconds,omitempty"` // user+system of the floor's readers
	WalkFloorSeconds         float64 `json:"walk_floor_seconds,omitempty"`
	WalkFloorCPUSeconds      float64 `json:"walk_floor_cpu_seconds,omitempty"`      // user+system of the floor's walk
	CaptureOverReadFloor     float64 `json:"capture_over_read_floor,omitempty"`     // capture-cold wall / floor-read wall
	IncrementalOverWalkFloor float64 `json:"incremental_over_walk_floor,omitempty"` // incremental-cold wall / floor-walk wall
}

// Summary is the report's line about the cold rows.
func (c *ColdReport) Summary() string {
	if c.Skipped != "" {
		return "skipped: " + c.Skipped
	}
	s := fmt.Sprintf("capture %.2fx the cold-read floor (%.2f s, %.1f CPU-s)", c.CaptureOverReadFloor, c.ReadFloorSeconds, c.ReadFloorCPUSeconds)
	if c.IncrementalOverWalkFloor > 0 {
		s += fmt.Sprintf("; incremental %.2fx the cold-walk floor (%.2f s, %.1f CPU-s)", c.IncrementalOverWalkFloor, c.WalkFloorSeconds, c.WalkFloorCPUSeconds)
	}
	return s
}

// canDropCaches reports whether coldCheck found that this run can drop
// the page cache.
func (r *runner) canDropCaches() bool { return r.rep.Cold != nil && r.rep.Cold.Skipped == "" }

// coldCheck finds out whether this run can drop the page cache (root on
// Linux) and records why not.
func (r *runner) coldCheck() {
	r.rep.Cold = &ColdReport{}
	var why string
	if os.Geteuid() != 0 {
		why = "not root: dropping the page cache (/proc/sys/vm/drop_caches) needs root; run as root for the cold rows"
	} else if err := dropCaches(); err != nil {
		why = "cannot drop the page cache: " + err.Error()
	}
	if why != "" {
		r.rep.Cold.Skipped = why
		r.logf("note: cold rows skipped: %s", why)
		return
	}
	r.note("cold rows (capture-cold, restore-cold, incremental-cold) run right after sync and echo 3 > /proc/sys/vm/drop_caches: smp's capture-cold (into a fresh store each round) and incremental-cold (into a copy of the last capture-cold store each round) on the default store (%s), each in as many rounds as the capture, alternating with its floor (floor-read, floor-walk), each keeping its median round, the ratio being of the medians; tar|zstd's, restic's and borg's capture-cold once each into a fresh repository (removed afterwards); restore-cold of the first user by every tool from its capture (smp: from that cold store and from the unencrypted store), verified byte for byte, in as many rounds (every tool once a round, the order rotated by one each round; the row is the median round); floor-read reads every corpus file once with %d parallel readers, floor-walk walks and lstats every entry in one thread, each right after dropping the page cache, in the bench process",
		r.coldVariant().tool, floorReaders)
}

// coldVariant is the store of the cold rows: the default one smp init
// makes (encrypted when this build can).
func (r *runner) coldVariant() variant {
	v := variant{tool: ToolSMP, store: filepath.Join(r.work, "smp-cold-store")}
	if r.smpHasEncrypt {
		v.tool, v.keyFile = ToolSMPEncrypted, filepath.Join(r.work, "smp-cold.key")
	}
	return v
}

// skipCold adds skipped rows of the default store's smp for scenarios
// (of the bench itself for the floors) when the cold rows cannot run,
// and reports whether it did.
func (r *runner) skipCold(scenarios ...string) bool {
	if r.rep.Cold.Skipped == "" {
		return false
	}
	for _, sc := range scenarios {
		tool := r.coldVariant().tool
		if sc == ScenarioFloorRead || sc == ScenarioFloorWalk {
			tool = ToolFloor
		}
		r.coldSkipped(sc, tool)
	}
	return true
}

// coldSkipped adds a skipped row of scenario for each of tools when the
// cold rows cannot run, and reports whether it did.
func (r *runner) coldSkipped(scenario string, tools ...string) bool {
	why := r.rep.Cold.Skipped
	if why == "" {
		return false
	}
	for _, tool := range tools {
		r.add(Row{Tool: tool, Scenario: scenario, Status: StatusSkipped, Note: why})
	}
	return true
}

// coldCapture measures the cold-read floor and captures every user into
// a fresh store of the default kind with the page cache dropped first, in
// rounds (the floor and the capture in turn, each keeping its median
// round: one sample of either follows the disk's state of the moment), and
// keeps the last round's store for restore-cold and incremental-cold;
// then each baseline's cold capture once.
func (r *runner) coldCapture(ctx context.Context) error {
	if r.skipCold(ScenarioFloorRead, ScenarioCaptureCold) {
		r.coldSkipped(ScenarioCaptureCold, ToolTar, ToolRestic, ToolBorg)
		return nil
	}
	v := r.coldVariant()
	steps := []func() error{
		func() error { return r.addFloor(ctx, r.floorRead, "cold-read floor") },
		func() error {
			if err := removeAll(v.store); err != nil {
				return err
			}
			if err := r.smpInit(ctx, v.store, v.keyFile); err != nil {
				return err
			}
			return r.addColdCapture(ctx, v, ScenarioCaptureCold)
		},
	}
	floor, row, err := r.againstFloor(steps, v.tool, "cold-read")
	if err != nil {
		return err
	}
	r.rep.Cold.ReadFloorSeconds, r.rep.Cold.ReadFloorCPUSeconds = floor.WallSeconds, floor.CPUSeconds
	r.rep.Cold.CaptureOverReadFloor = row.WallSeconds / floor.WallSeconds
	r.coldCaptureBaselines(ctx)
	return nil
}

// addFloor measures a floor and adds its row.
func (r *runner) addFloor(ctx context.Context, floor func(context.Context) (Row, error), what string) error {
	row, err := floor(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	r.add(row)
	return nil
}

// addColdCapture runs coldCaptureAll and adds its row.
func (r *runner) addColdCapture(ctx context.Context, v variant, scenario string) error {
	row, err := r.coldCaptureAll(ctx, v, scenario)
	if err != nil {
		return err
	}
	r.add(row)
	return nil
}

// coldCaptureAll drops the page cache and captures every user into v's
// store, one child per user, and returns the row of scenario.
func (r *runner) coldCaptureAll(ctx context.Context, v variant, scenario string) (Row, error) {
	if err := dropCaches(); err != nil {
		return Row{}, err
	}
	if r.coldRecords == nil {
		r.coldRecords = map[string]string{}
	}
	var files, unchanged, logical int64
	a, err := r.eachUser(func(i int, u string) (child, error) {
		c, out, err := r.smpCaptureOne(ctx, v.store, r.computers[i], u, append(r.chunked(), keyArgs(v.keyFile)...)...)
		files, unchanged, logical = files+out.Files, unchanged+out.UnchangedFiles, logical+out.Bytes
		r.coldRecords[u] = out.Record
		return c, err
	})
	if err != nil {
		r.add(Row{Tool: v.tool, Scenario: scenario, Status: StatusFailed, Note: err.Error()})
		return Row{}, fmt.Errorf("smp %s: %w", scenario, err)
	}
	row := a.row(v.tool, scenario, logical)
	row.Note = "page cache dropped first"
	if unchanged > 0 {
		row.Note += fmt.Sprintf("; %d of %d files unchanged, not read", unchanged, files)
	}
	return row, nil
}

// coldRestore restores the first user with the page cache dropped first
// and verifies it: smp from the cold store and from the capture
// scenario's unencrypted store, and every baseline from its capture. A
// cold restore of one profile is short, and one sample of it follows the
// host's state more than the tool: every tool runs rounds() times,
// the tools in a rotated order each round, and each keeps its median
// round (coldRounds).
func (r *runner) coldRestore(ctx context.Context) error {
	cold, plain := r.coldVariant(), r.variants()[0]
	smps := []string{cold.tool}
	if plain.tool != cold.tool {
		smps = append(smps, plain.tool)
	}
	if r.coldSkipped(ScenarioRestoreCold, append(smps, ToolCp, ToolTar, ToolRestic, ToolBorg)...) {
		return nil
	}
	steps := []func() error{func() error { return r.smpColdRestore(ctx, cold, r.coldRecords) }}
	if plain.tool != cold.tool {
		steps = append(steps, func() error { return r.smpColdRestore(ctx, plain, r.smpRecords) })
	}
	for _, baseline := range []func(context.Context, string){r.cpRestore, r.tarRestore, r.resticRestore, r.borgRestore} {
		steps = append(steps, func() error { baseline(ctx, ScenarioRestoreCold); return nil })
	}
	return r.coldRounds(steps, append(smps, ToolCp, ToolTar, ToolRestic, ToolBorg))
}

// coldRounds runs roundMedians and adds its rows.
func (r *runner) coldRounds(steps []func() error, tools []string) error {
	rows, err := r.roundMedians(steps, tools)
	for _, row := range rows {
		r.add(row)
	}
	return err
}

// roundMedians runs steps rounds() times, starting each round one step
// further along, and returns each tool's median-wall row, in the order of
// tools; after a failed step it returns each tool's first row instead
// (the failed one for the tool that failed) with the error.
func (r *runner) roundMedians(steps []func() error, tools []string) ([]Row, error) {
	r.roundRows = map[string][]Row{}
	rows := r.roundRows
	defer func() { r.roundRows = nil }()
	var out []Row
	for round := range r.rounds() {
		for i := range steps {
			if err := steps[(i+round)%len(steps)](); err != nil {
				for _, t := range tools {
					if len(rows[t]) > 0 {
						out = append(out, rows[t][len(rows[t])-1])
					}
				}
				return out, err
			}
		}
	}
	for _, t := range tools {
		if len(rows[t]) > 0 {
			out = append(out, medianRound(rows[t], "tools in turn"))
		}
	}
	return out, nil
}

// medianRound is the row of the round with the median wall time, noted
// with the rounds' range, or the first failed or skipped round's row.
func medianRound(rows []Row, how string) Row {
	walls := make([]float64, 0, len(rows))
	for _, row := range rows {
		if !row.OK() {
			return row
		}
		walls = append(walls, row.WallSeconds)
	}
	sorted := slices.SortedFunc(slices.Values(rows), func(a, b Row) int { return cmp.Compare(a.WallSeconds, b.WallSeconds) })
	row := sorted[(len(sorted)-1)/2]
	if note := roundsNote(walls, ""); note != "" {
		row.Note = strings.TrimSuffix(row.Note+"; "+note+", "+how, "; ")
	}
	return row
}

// smpColdRestore restores the first user's record (of records) from v's
// store into an empty directory with the page cache dropped first, and
// verifies it.
func (r *runner) smpColdRestore(ctx context.Context, v variant, records map[string]string) error {
	u := r.users[0]
	target := filepath.Join(r.work, "restore-cold")
	if err := os.Mkdir(target, 0o755); err != nil {
		return err
	}
	defer removeAll(target)
	if err := dropCaches(); err != nil {
		return err
	}
	args := append([]string{"restore", "--store", v.store, "--record", records[u], "--root", target, "--json"}, keyArgs(v.keyFile)...)
	c, err := r.exec(ctx, execSpec{name: r.opts.Bin, args: args})
	if err != nil {
		return r.restoreFailed(v, ScenarioRestoreCold, u, err)
	}
	var a agg
	a.add(c)
	row, err := r.verifyRestore(a, v.tool, ScenarioRestoreCold, u, filepath.Join(target, "home", u))
	if err != nil {
		return r.restoreFailed(v, ScenarioRestoreCold, u, fmt.Errorf("%w: %w", errRestoreDiffers, err))
	}
	r.add(row)
	return nil
}

// coldIncremental measures the cold-walk floor and re-captures every user
// into the cold store with the page cache dropped first, in rounds like
// coldCapture; each round starts from a copy of the store as capture-cold
// left it, so that every round does the same work. The store is removed
// afterwards.
func (r *runner) coldIncremental(ctx context.Context) error {
	v := r.coldVariant()
	base := v.store + "-base"
	defer removeAll(v.store)
	defer removeAll(base)
	if r.skipCold(ScenarioFloorWalk, ScenarioIncrementalCold) {
		return nil
	}
	if err := os.Rename(v.store, base); err != nil {
		return err
	}
	steps := []func() error{
		func() error { return r.addFloor(ctx, r.floorWalk, "cold-walk floor") },
		func() error {
			if err := removeAll(v.store); err != nil {
				return err
			}
			if _, err := r.output(ctx, "cp", "-a", base, v.store); err != nil {
				return fmt.Errorf("copy of the cold store: %w", err)
			}
			return r.addColdCapture(ctx, v, ScenarioIncrementalCold)
		},
	}
	floor, row, err := r.againstFloor(steps, v.tool, "cold-walk")
	if err != nil {
		return err
	}
	r.rep.Cold.WalkFloorSeconds, r.rep.Cold.WalkFloorCPUSeconds = floor.WallSeconds, floor.CPUSeconds
	r.rep.Cold.IncrementalOverWalkFloor = row.WallSeconds / floor.WallSeconds
	return nil
}

// againstFloor runs steps (a floor's and tool's cold scenario) in rounds
// and adds the floor's and tool's median rows, tool's noted with its
// ratio to the floor, and returns them.
func (r *runner) againstFloor(steps []func() error, tool, floorName string) (floor, row Row, err error) {
	rows, err := r.roundMedians(steps, []string{ToolFloor, tool})
	if err == nil {
		floor, row = rows[0], rows[1]
		row.Note = fmt.Sprintf("%.2fx the %s floor; ", row.WallSeconds/floor.WallSeconds, floorName) + row.Note
		rows[1] = row
	}
	for _, row := range rows {
		r.add(row)
	}
	return floor, row, err
}

// floorRead lists the corpus' regular files, drops the page cache and
// reads every file once with floorReaders goroutines.
func (r *runner) floorRead(ctx context.Context) (Row, error) {
	var paths []string
	var logical int64
	err := filepath.WalkDir(filepath.Join(r.root, "home"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		paths, logical = append(paths, p), logical+info.Size()
		return nil
	})
	if err != nil {
		return Row{}, err
	}
	if err := dropCaches(); err != nil {
		return Row{}, err
	}
	start, cpu0 := time.Now(), selfCPU()
	work := make(chan string)
	errs := make(chan error, floorReaders)
	var wg sync.WaitGroup
	for range floorReaders {
		wg.Go(func() {
			buf := make([]byte, 1<<20)
			var first error
			for p := range work {
				if first == nil {
					first = readAll(p, buf)
				}
			}
			errs <- first
		})
	}
	for _, p := range paths {
		if ctx.Err() != nil {
			break
		}
		work <- p
	}
	close(work)
	wg.Wait()
	wall, cpu := time.Since(start), selfCPU()-cpu0
	close(errs)
	for e := range errs {
		if e != nil {
			return Row{}, e
		}
	}
	row := floorRow(ScenarioFloorRead, wall, cpu, logical, int64(len(paths)))
	row.Note = fmt.Sprintf("every corpus file read once by %d parallel readers after dropping the page cache (%s)", floorReaders, humanize.IBytes(uint64(logical)))
	return row, ctx.Err()
}

func readAll(path string, buf []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
	return err
}

// floorWalk drops the page cache, then walks the corpus and lstats every
// entry in one goroutine.
func (r *runner) floorWalk(ctx context.Context) (Row, error) {
	if err := dropCaches(); err != nil {
		return Row{}, err
	}
	start, cpu0 := time.Now(), selfCPU()
	var files, entries int64
	err := filepath.WalkDir(filepath.Join(r.root, "home"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if _, err := d.Info(); err != nil {
			return err
		}
		entries++
		if d.Type().IsRegular() {
			files++
		}
		return ctx.Err()
	})
	wall, cpu := time.Since(start), selfCPU()-cpu0
	if err != nil {
		return Row{}, err
	}
	row := floorRow(ScenarioFloorWalk, wall, cpu, 0, files)
	row.Note = fmt.Sprintf("walk and lstat of every corpus entry (%d) in one thread after dropping the page cache", entries)
	return row, nil
}

// floorRow is a floor's row; cpu is the bench process's own CPU time
// (user and system, all threads) over the floor, which does nothing else
// meanwhile, so that a cold row's CPU can be set against the floor's.
func floorRow(scenario string, wall, cpu time.Duration, logical, files int64) Row {
	var a agg
	a.add(child{wall: wall, cpu: cpu})
	row := a.row(ToolFloor, scenario, logical)
	row.Files = files
	return row
}
