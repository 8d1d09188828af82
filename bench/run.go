package bench

// Run drives the real smp binary and baseline tools (cp, tar | zstd,
// restic) as child processes on one generated organisation corpus, so that
// wall time, CPU time and peak RSS come from each child's rusage. This file
// must not import smp's capture, restore or repo packages: it measures the
// binary, not the library.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"smp/bench/corpus"
)

// Scenarios, in the order Run measures them.
const (
	ScenarioCapture         = "capture"          // every user captured in turn into one fresh store
	ScenarioRestore         = "restore"          // the first user's capture restored to an empty root
	ScenarioHardlink        = "hardlink"         // capture by hard-linking on the same filesystem
	ScenarioServe           = "serve"            // every user captured in turn through `smp serve` on loopback
	ScenarioServeLoad       = "serve-16"         // 16 clients capturing at once through one `smp serve`
	ScenarioHardlinkAll     = "hardlink-machine" // every user in one hard-link capture: a refresh of one machine
	ScenarioHardlinkRestore = "hardlink-restore" // that record restored by linking into place
	ScenarioCapture1CPU     = "capture-1cpu"     // every user captured into a local store, smp pinned to one CPU
	ScenarioServeSplit      = "serve-split"      // the same through `smp serve`: client pinned to that CPU, server to another
	ScenarioIncremental     = "incremental"      // re-capture of every user after MutateCorpus
)

// Tools.
const (
	ToolSMP    = "smp"
	ToolCp     = "cp -a"
	ToolTar    = "tar|zstd"
	ToolCpLink = "cp -al"
	ToolRestic = "restic"
)

// Row statuses.
const (
	StatusOK           = "ok"
	StatusSkipped      = "skipped"
	StatusUnavailable  = "not available"
	StatusNotInstalled = "not installed"
	StatusFailed       = "failed"
)

// RunOptions configure Run.
type RunOptions struct {
	Bin    string // the smp binary to drive (required)
	Corpus string // an existing corpus (DIR holding home/USER); "" generates one with `smp bench corpus`
	Users  int    // generated corpus: number of users
	Size   int64  // generated corpus: total bytes
	Seed   uint64 // generated corpus and mutation seed
	Quick  bool   // recorded in the report only
	Work   string // parent of the scratch directory (default os.TempDir()); the scratch directory is removed at the end
	Keep   bool   // keep the scratch directory
}

// Report is the outcome of Run.
type Report struct {
	Date            string            `json:"date"`
	Quick           bool              `json:"quick"`
	Machine         Machine           `json:"machine"`
	Corpus          CorpusReport      `json:"corpus"`
	Rows            []Row             `json:"rows"`
	Ratios          []Comparison      `json:"ratios"`
	RestoreVerified bool              `json:"restore_verified"` // smp's restore matched the corpus byte for byte
	RSSFloorMiB     float64           `json:"rss_floor_mib"`    // peak RSS a trivial child reports (see Notes)
	ToolVersions    map[string]string `json:"tool_versions"`
	Notes           []string          `json:"notes"`
}

// Machine describes where the run happened.
type Machine struct {
	Cores      int    `json:"cores"`
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	GoVersion  string `json:"go_version"`
	CPU        string `json:"cpu,omitempty"`
	MemBytes   int64  `json:"mem_bytes,omitempty"`
	Kernel     string `json:"kernel,omitempty"`
	SMPVersion string `json:"smp_version,omitempty"`
}

// CorpusReport describes the corpus the scenarios ran on.
type CorpusReport struct {
	Generated   bool            `json:"generated"`
	Seed        uint64          `json:"seed"`
	Size        int64           `json:"requested_size,omitempty"`
	Info        *corpus.OrgInfo `json:"info"`
	Mutated     *corpus.OrgInfo `json:"mutated,omitempty"`
	MutateError string          `json:"mutate_error,omitempty"`
}

// Row is one tool's figures for one scenario.
type Row struct {
	Tool         string  `json:"tool"`
	Scenario     string  `json:"scenario"`
	Status       string  `json:"status"`
	Note         string  `json:"note,omitempty"`
	Runs         int     `json:"runs,omitempty"` // child processes timed
	WallSeconds  float64 `json:"wall_seconds"`
	MBps         float64 `json:"mb_per_s"` // logical bytes / wall, 10^6 bytes per second
	CPUSeconds   float64 `json:"cpu_seconds"`
	PeakRSSMiB   float64 `json:"peak_rss_mib"`
	LogicalBytes int64   `json:"logical_bytes"`
	StoredBytes  int64   `json:"stored_bytes"` // incremental: bytes added by it
	DiskBytes    int64   `json:"disk_bytes"`   // du of everything the tool wrote (indexes included)
	DedupeRatio  float64 `json:"dedupe_ratio,omitempty"`
	Verified     *bool   `json:"verified,omitempty"` // restore: matched the corpus
}

// OK reports whether the row holds measurements.
func (r Row) OK() bool { return r.Status == StatusOK }

// Comparison is one smp figure against one baseline in one scenario.
// Speedup is the baseline's wall time over smp's (above 1: smp is
// faster); the other ratios are smp's figure over the baseline's (below 1:
// smp uses less). Zero means not comparable.
type Comparison struct {
	Scenario    string  `json:"scenario"`
	Baseline    string  `json:"baseline"`
	Speedup     float64 `json:"speedup"`
	StoredRatio float64 `json:"stored_ratio,omitempty"`
	CPURatio    float64 `json:"cpu_ratio,omitempty"`
	RSSRatio    float64 `json:"rss_ratio,omitempty"`
	Text        string  `json:"text"`
}

// Row returns the row for tool and scenario.
func (r *Report) Row(tool, scenario string) (Row, bool) {
	for _, row := range r.Rows {
		if row.Tool == tool && row.Scenario == scenario {
			return row, true
		}
	}
	return Row{}, false
}

// Run generates (or uses) a corpus and measures every scenario, writing
// progress lines to log (nil: discarded). The report is returned also with
// an error, holding the rows measured so far. A baseline that fails or is
// missing becomes a row with that status; smp failing, or its restore not
// matching the corpus, fails the run.
func Run(ctx context.Context, opts RunOptions, log io.Writer) (rep *Report, err error) {
	if log == nil {
		log = io.Discard
	}
	if opts.Bin == "" {
		return nil, errors.New("bench: RunOptions.Bin (the smp binary) is required")
	}
	if _, err := os.Stat(opts.Bin); err != nil {
		return nil, fmt.Errorf("bench: smp binary: %w", err)
	}
	if opts.Corpus == "" && (opts.Users < 1 || opts.Size <= 0) {
		return nil, fmt.Errorf("bench: need at least 1 user and a positive size (got %d users, %d bytes)", opts.Users, opts.Size)
	}
	if opts.Work != "" {
		if err := os.MkdirAll(opts.Work, 0o755); err != nil {
			return nil, err
		}
	}
	work, err := os.MkdirTemp(opts.Work, "smp-bench-")
	if err != nil {
		return nil, err
	}
	if !opts.Keep {
		defer func() {
			if rerr := removeAll(work); rerr != nil && err == nil {
				err = fmt.Errorf("bench: removing %s: %w", work, rerr)
			}
		}()
	} else {
		fmt.Fprintf(log, "scratch directory kept: %s\n", work)
	}
	r := &runner{opts: opts, log: log, work: work, tools: map[string]string{}}
	r.rep = &Report{
		Date:         time.Now().UTC().Format(time.RFC3339),
		Quick:        opts.Quick,
		Machine:      machineInfo(),
		Corpus:       CorpusReport{Seed: opts.Seed},
		ToolVersions: map[string]string{},
		Rows:         []Row{},
		Ratios:       []Comparison{},
	}
	err = r.run(ctx)
	r.rep.Ratios = r.rep.Compare()
	return r.rep, err
}

type runner struct {
	opts  RunOptions
	log   io.Writer
	work  string
	rep   *Report
	tools map[string]string // name -> path, for the baselines found on PATH
	env   []string          // children's environment

	root      string   // corpus root (absolute)
	users     []string // user01, ...
	computers []string // pc01, ...
	logical   int64    // regular-file bytes of the corpus (walked)

	smpHasHardlink bool // smp capture has --hardlink auto|always|never
	smpStore       string
	smpRecords     map[string]string // user -> record ID
	cpDir          string
	tarDir         string
	resticRepo     string
	resticEnv      []string
}

func (r *runner) logf(format string, args ...any) { fmt.Fprintf(r.log, format+"\n", args...) }

func (r *runner) add(row Row) {
	r.rep.Rows = append(r.rep.Rows, row)
	switch row.Status {
	case StatusOK:
		line := fmt.Sprintf("[%s] %s: %s in %.1fs (%.0f MB/s), CPU %.1fs, peak RSS %.0f MiB", row.Scenario, row.Tool,
			humanize.IBytes(uint64(row.LogicalBytes)), row.WallSeconds, row.MBps, row.CPUSeconds, row.PeakRSSMiB)
		if row.StoredBytes > 0 {
			line += ", stored " + humanize.IBytes(uint64(row.StoredBytes))
		}
		if row.Note != "" {
			line += "; " + row.Note
		}
		r.logf("%s", line)
	default:
		r.logf("[%s] %s: %s: %s", row.Scenario, row.Tool, row.Status, row.Note)
	}
}

func (r *runner) note(format string, args ...any) {
	r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(format, args...))
}

func (r *runner) run(ctx context.Context) error {
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SMP_STORE=") && !strings.HasPrefix(kv, "SMP_CPUPROFILE=") && !strings.HasPrefix(kv, "RESTIC_") {
			r.env = append(r.env, kv)
		}
	}
	if v, err := r.output(ctx, r.opts.Bin, "version"); err == nil {
		r.rep.Machine.SMPVersion = strings.TrimSpace(v)
	}
	r.findTools(ctx)
	help, _ := r.combined(ctx, r.opts.Bin, "capture", "--help")
	r.smpHasHardlink = strings.Contains(help, "--hardlink")
	r.measureFloor(ctx)
	if err := r.prepareCorpus(ctx); err != nil {
		return err
	}
	r.logf("corpus %s: %d users, %d files, %s", r.root, len(r.users), r.rep.Corpus.Info.Files, humanize.IBytes(uint64(r.logical)))

	// 1. Organisation capture: every tool on the unchanged corpus.
	if err := r.smpCapture(ctx); err != nil {
		return err
	}
	r.cpCapture(ctx)
	r.tarCapture(ctx)
	r.resticCapture(ctx)

	// 2. Restore of the first user from those captures, verified.
	if err := r.smpRestore(ctx); err != nil {
		return err
	}
	r.cpRestore(ctx)
	r.tarRestore(ctx)
	r.resticRestore(ctx)

	// 3. Incremental re-capture after a week's changes.
	if reason := r.mutate(ctx); reason != "" {
		for _, tool := range []string{ToolSMP, ToolCp, ToolTar, ToolRestic} {
			r.add(Row{Tool: tool, Scenario: ScenarioIncremental, Status: StatusSkipped, Note: reason})
		}
	} else {
		if err := r.smpIncremental(ctx); err != nil {
			return err
		}
		r.cpIncremental(ctx)
		r.tarIncremental(ctx)
		r.resticIncremental(ctx)
	}

	// 4. Hard-link capture, last: a hard link changes the ctime of the
	// file it links, which would make every file look changed to the
	// incremental scenario's change detection.
	r.smpHardlink(ctx)
	r.cpLink(ctx)
	if err := r.hardlinkMachine(ctx); err != nil {
		return err
	}

	// 5. smp serve: the same captures through the server, one client at
	// a time and then 16 at once.
	if err := r.smpServeScenarios(ctx); err != nil {
		return err
	}
	return ctx.Err()
}

// ---- setup ----

func (r *runner) findTools(ctx context.Context) {
	for _, t := range []string{"cp", "tar", "zstd", "bash", "restic", "taskset"} {
		if p, err := exec.LookPath(t); err == nil {
			r.tools[t] = p
		}
	}
	version := func(name string, args ...string) {
		if p := r.tools[name]; p != "" {
			if out, err := r.output(ctx, p, args...); err == nil {
				line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
				r.rep.ToolVersions[name] = line
			}
		}
	}
	version("cp", "--version")
	version("tar", "--version")
	version("zstd", "--version")
	version("restic", "version")
	r.rep.ToolVersions["smp"] = r.rep.Machine.SMPVersion
}

// measureFloor runs a trivial child: Linux charges a child started with
// vfork (as Go does) the parent's peak RSS at exec, so this is the smallest
// peak RSS any row can show.
func (r *runner) measureFloor(ctx context.Context) {
	p, err := exec.LookPath("true")
	if err != nil {
		return
	}
	if c, err := r.exec(ctx, execSpec{name: p}); err == nil {
		r.rep.RSSFloorMiB = kibToMiB(c.maxRSS)
		r.note("smp fsyncs every pack before indexing it (its crash guarantee); cp -a and tar|zstd write without fsync, so part of their output may still be in the page cache when they exit")
		r.note("peak RSS is each child's ru_maxrss (for tar|zstd, the larger of tar and zstd); Linux charges a child the parent's own peak at exec, so no row can show less than %.1f MiB (what /bin/true reports here)", r.rep.RSSFloorMiB)
	}
}

func (r *runner) prepareCorpus(ctx context.Context) error {
	cr := &r.rep.Corpus
	if r.opts.Corpus == "" {
		dir := filepath.Join(r.work, "corpus")
		cr.Generated, cr.Size = true, r.opts.Size
		r.logf("generating corpus: %d users, %s, seed %d (smp bench corpus, not timed)", r.opts.Users, humanize.IBytes(uint64(r.opts.Size)), r.opts.Seed)
		// In a child process: the generator's source material would
		// otherwise stay in this process's peak RSS and, through the
		// charge at exec, in every child's.
		start := time.Now()
		out, err := r.output(ctx, r.opts.Bin, "bench", "corpus", "--out", dir, "--users", strconv.Itoa(r.opts.Users),
			"--size", strconv.FormatInt(r.opts.Size, 10), "--seed", strconv.FormatUint(r.opts.Seed, 10), "--json")
		if err != nil {
			return fmt.Errorf("generating corpus: %w", err)
		}
		var info corpus.OrgInfo
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			return fmt.Errorf("smp bench corpus output: %w: %q", err, out)
		}
		cr.Info = &info
		r.logf("generated in %.1fs", time.Since(start).Seconds())
		r.root = dir
	} else {
		abs, err := filepath.Abs(r.opts.Corpus)
		if err != nil {
			return err
		}
		r.root = abs
		cr.Info = &corpus.OrgInfo{Root: abs}
	}
	ents, err := os.ReadDir(filepath.Join(r.root, "home"))
	if err != nil {
		return fmt.Errorf("corpus: %w (want profiles in DIR/home/USER)", err)
	}
	for _, e := range ents {
		if e.IsDir() {
			r.users = append(r.users, e.Name())
		}
	}
	if len(r.users) == 0 {
		return fmt.Errorf("corpus %s: no profiles in home/", r.root)
	}
	slices.Sort(r.users)
	for i := range r.users {
		r.computers = append(r.computers, fmt.Sprintf("pc%02d", i+1))
	}
	files, bytes, err := treeSize(filepath.Join(r.root, "home"))
	if err != nil {
		return err
	}
	r.logical = bytes
	if !cr.Generated {
		cr.Info.Users, cr.Info.Files, cr.Info.Bytes = r.users, files, bytes
	}
	return nil
}

// mutate applies MutateCorpus in a child process; it returns why the
// incremental scenario is skipped, or "".
func (r *runner) mutate(ctx context.Context) string {
	if ctx.Err() != nil {
		return "interrupted"
	}
	r.logf("mutating corpus (smp bench corpus --mutate, not timed)")
	out, err := r.output(ctx, r.opts.Bin, "bench", "corpus", "--mutate", "--out", r.root, "--seed", strconv.FormatUint(r.opts.Seed, 10), "--json")
	if err != nil {
		r.rep.Corpus.MutateError = err.Error()
		var ce *childError
		if errors.As(err, &ce) && ce.stderr != "" {
			return "corpus mutation failed: " + strings.TrimPrefix(ce.stderr, "smp bench: ")
		}
		return "corpus mutation failed: " + err.Error()
	}
	var info corpus.OrgInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		r.rep.Corpus.MutateError = err.Error()
		return fmt.Sprintf("corpus mutation output: %v", err)
	}
	r.rep.Corpus.Mutated = &info
	_, bytes, err := treeSize(filepath.Join(r.root, "home"))
	if err != nil {
		return err.Error()
	}
	r.logical = bytes
	return ""
}

// ---- smp ----

type smpCaptureOut struct {
	Record         string   `json:"record"`
	Bytes          int64    `json:"bytes"`
	Files          int64    `json:"files"`
	StoredBytes    int64    `json:"stored_bytes"`
	UnchangedFiles int64    `json:"unchanged_files"`
	Errors         int64    `json:"errors"`
	Problems       []string `json:"problems"`
	UploadedBytes  int64    `json:"uploaded_bytes"`        // through smp serve: bytes sent
	HeldChunks     int64    `json:"chunks_already_on_smp"` // through smp serve: offered blobs the server held
}

type smpStatsOut struct {
	LogicalBytes int64   `json:"logical_bytes"`
	UniqueBytes  int64   `json:"unique_bytes"` // plaintext of the distinct data chunks
	StoredBytes  int64   `json:"stored_bytes"`
	Chunks       int64   `json:"chunks"` // distinct data chunks
	DedupeRatio  float64 `json:"dedupe_ratio"`
}

func (r *runner) smpStats(ctx context.Context, store string) (smpStatsOut, error) {
	var s smpStatsOut
	out, err := r.output(ctx, r.opts.Bin, "stats", "--store", store, "--json")
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal([]byte(out), &s)
}

// smpCaptureAll captures every user in turn into store (created when
// fresh) with extra capture flags, one child per user.
// It returns the children's usage, the bytes, files and unchanged files the
// captures report, and each user's record ID.
func (r *runner) smpCaptureAll(ctx context.Context, store string, fresh bool, extra ...string) (a agg, bytes, files, unchanged int64, records map[string]string, err error) {
	if fresh {
		if _, err := r.output(ctx, r.opts.Bin, "init", "--store", store); err != nil {
			return a, 0, 0, 0, nil, err
		}
	}
	a, outs, err := r.smpCaptureEach(ctx, store, func(int) []string { return extra })
	if err != nil {
		return a, 0, 0, 0, nil, err
	}
	records = map[string]string{}
	for i, out := range outs {
		records[r.users[i]] = out.Record
		bytes += out.Bytes
		files += out.Files
		unchanged += out.UnchangedFiles
	}
	return a, bytes, files, unchanged, records, nil
}

// smpCaptureEach captures every user in turn into store (a directory or
// an SMP's URL), one child per user, user i as computer i with the flags
// extra(i). It returns the children's usage and their --json outputs, in
// user order.
func (r *runner) smpCaptureEach(ctx context.Context, store string, extra func(i int) []string) (a agg, outs []smpCaptureOut, err error) {
	return r.smpCaptureEachOn(ctx, "", store, extra)
}

// smpCaptureEachOn is smpCaptureEach with every capture pinned to the CPUs
// in cpus (a taskset list; "" for no pinning).
func (r *runner) smpCaptureEachOn(ctx context.Context, cpus, store string, extra func(i int) []string) (a agg, outs []smpCaptureOut, err error) {
	if err := r.settle(r.root); err != nil {
		return a, nil, err
	}
	for i, u := range r.users {
		c, out, err := r.smpCaptureOneOn(ctx, cpus, store, r.computers[i], u, extra(i)...)
		if err != nil {
			return a, nil, err
		}
		a.add(c)
		outs = append(outs, out)
	}
	return a, outs, nil
}

// smpCaptureOne runs one `smp capture --json` of user as computer.
func (r *runner) smpCaptureOne(ctx context.Context, store, computer, user string, extra ...string) (child, smpCaptureOut, error) {
	return r.smpCaptureOneOn(ctx, "", store, computer, user, extra...)
}

// smpCaptureOneOn is smpCaptureOne pinned to cpus ("" for no pinning).
func (r *runner) smpCaptureOneOn(ctx context.Context, cpus, store, computer, user string, extra ...string) (child, smpCaptureOut, error) {
	var out smpCaptureOut
	args := append([]string{"capture", "--store", store, "--computer", computer, "--root", r.root, "--user", user, "--json"}, extra...)
	c, err := r.exec(ctx, r.pinned(cpus, r.opts.Bin, args...))
	if err != nil {
		return c, out, err
	}
	if err := json.Unmarshal(c.stdout, &out); err != nil {
		return c, out, fmt.Errorf("smp capture output: %w: %q", err, c.stdout)
	}
	if out.Errors > 0 {
		return c, out, fmt.Errorf("smp capture of %s as %s: %d errors: %s", user, computer, out.Errors, strings.Join(out.Problems, "; "))
	}
	return c, out, nil
}

func (r *runner) smpCapture(ctx context.Context) error {
	r.smpStore = filepath.Join(r.work, "smp-store")
	a, logical, _, _, records, err := r.smpCaptureAll(ctx, r.smpStore, true, r.chunked()...)
	if err != nil {
		r.add(Row{Tool: ToolSMP, Scenario: ScenarioCapture, Status: StatusFailed, Note: err.Error()})
		return fmt.Errorf("smp capture: %w", err)
	}
	r.smpRecords = records
	st, err := r.smpStats(ctx, r.smpStore)
	if err != nil {
		return fmt.Errorf("smp stats: %w", err)
	}
	row := a.row(ToolSMP, ScenarioCapture, logical)
	row.StoredBytes = st.StoredBytes
	row.DiskBytes = du(r.smpStore)
	row.DedupeRatio = ratio(logical, st.StoredBytes)
	if r.smpHasHardlink {
		row.Note = "--hardlink never: chunked, deduplicated, compressed store"
	}
	if logical != r.logical {
		row.Note = strings.TrimPrefix(row.Note+fmt.Sprintf("; captured %d bytes, corpus holds %d", logical, r.logical), "; ")
	}
	r.add(row)
	return nil
}

// chunked is the capture flag that makes smp chunk every file even when
// the store is on the corpus' filesystem, in builds with hard-link capture.
func (r *runner) chunked() []string {
	if r.smpHasHardlink {
		return []string{"--hardlink", "never"}
	}
	return nil
}

func (r *runner) smpRestore(ctx context.Context) error {
	u := r.users[0]
	target := filepath.Join(r.work, "restore-smp")
	if err := os.Mkdir(target, 0o755); err != nil {
		return err
	}
	defer removeAll(target)
	if err := r.settle(r.smpStore); err != nil {
		return err
	}
	c, err := r.exec(ctx, execSpec{name: r.opts.Bin, args: []string{"restore", "--store", r.smpStore, "--record", r.smpRecords[u], "--root", target, "--json"}})
	if err != nil {
		r.add(Row{Tool: ToolSMP, Scenario: ScenarioRestore, Status: StatusFailed, Note: err.Error()})
		return fmt.Errorf("smp restore: %w", err)
	}
	var a agg
	a.add(c)
	row, verr := r.verifyRestore(a, ToolSMP, u, filepath.Join(target, "home", u))
	r.add(row)
	r.rep.RestoreVerified = verr == nil
	if verr != nil {
		return fmt.Errorf("smp restore of %s differs from the corpus: %w", u, verr)
	}
	return nil
}

func (r *runner) smpIncremental(ctx context.Context) error {
	before, err := r.smpStats(ctx, r.smpStore)
	if err != nil {
		return fmt.Errorf("smp stats: %w", err)
	}
	a, logical, files, unchanged, _, err := r.smpCaptureAll(ctx, r.smpStore, false, r.chunked()...)
	if err != nil {
		r.add(Row{Tool: ToolSMP, Scenario: ScenarioIncremental, Status: StatusFailed, Note: err.Error()})
		return fmt.Errorf("smp incremental capture: %w", err)
	}
	after, err := r.smpStats(ctx, r.smpStore)
	if err != nil {
		return fmt.Errorf("smp stats: %w", err)
	}
	row := a.row(ToolSMP, ScenarioIncremental, logical)
	row.StoredBytes = max(after.StoredBytes-before.StoredBytes, 0)
	row.DiskBytes = du(r.smpStore)
	row.Note = fmt.Sprintf("%d of %d files unchanged, not read", unchanged, files)
	r.add(row)
	return nil
}

// smpHardlink runs the hard-link capture when this smp build has it.
func (r *runner) smpHardlink(ctx context.Context) {
	if !r.smpHasHardlink {
		r.add(Row{Tool: ToolSMP, Scenario: ScenarioHardlink, Status: StatusUnavailable, Note: "not available in this build (smp capture has no --hardlink)"})
		return
	}
	store := filepath.Join(r.work, "smp-hardlink-store")
	defer removeAll(store)
	a, logical, _, _, _, err := r.smpCaptureAll(ctx, store, true, "--hardlink", "always")
	if err != nil {
		r.add(Row{Tool: ToolSMP, Scenario: ScenarioHardlink, Status: StatusFailed, Note: err.Error()})
		return
	}
	row := a.row(ToolSMP, ScenarioHardlink, logical)
	usage := diskUsage(r.root, store)
	row.StoredBytes, row.DiskBytes = usage[1], usage[1]
	row.DedupeRatio = ratio(logical, row.StoredBytes)
	row.Note = "--hardlink always; stored = what the store adds on disk"
	r.add(row)
}

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

// medianRow makes a row of the run with the median wall time among runs
// (an odd number of them), noting how many there were and their range.
func medianRow(runs []child, tool, scenario string, logical int64) Row {
	sorted := slices.SortedFunc(slices.Values(runs), func(a, b child) int { return cmp.Compare(a.wall, b.wall) })
	var a agg
	a.add(sorted[len(sorted)/2])
	row := a.row(tool, scenario, logical)
	row.Note = fmt.Sprintf("median of %d runs (%.2f-%.2f s)", len(sorted), sorted[0].wall.Seconds(), sorted[len(sorted)-1].wall.Seconds())
	return row
}

// compareLinkedTrees checks that every regular file under src is the same
// file (inode) at the same place under dst (or, for clones, has the same
// size and bytes), that symlinks have the same targets and directories
// exist; it returns the number of regular files.
func compareLinkedTrees(src, dst string, clones bool) (int64, error) {
	var files int64
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		q := filepath.Join(dst, rel)
		si, err := os.Lstat(p)
		if err != nil {
			return err
		}
		di, err := os.Lstat(q)
		if err != nil {
			return err
		}
		if si.Mode().Type() != di.Mode().Type() {
			return fmt.Errorf("%s: type %v, corpus %v", rel, di.Mode().Type(), si.Mode().Type())
		}
		switch {
		case si.Mode().IsRegular():
			files++
			if os.SameFile(si, di) {
				return nil
			}
			if !clones || si.Size() != di.Size() {
				return fmt.Errorf("%s: not the corpus file (a different inode)", rel)
			}
			same, err := sameFile(p, q)
			if err == nil && !same {
				err = fmt.Errorf("%s: contents differ", rel)
			}
			return err
		case si.Mode()&fs.ModeSymlink != 0:
			a, err1 := os.Readlink(p)
			b, err2 := os.Readlink(q)
			if err := errors.Join(err1, err2); err != nil {
				return err
			}
			if a != b {
				return fmt.Errorf("%s: symlink to %q, corpus %q", rel, b, a)
			}
		}
		return nil
	})
	return files, err
}

// serveClients is the number of concurrent clients of ScenarioServeLoad.
const serveClients = 16

// smpServeScenarios measures capture through `smp serve`: every user in
// turn (ScenarioServe), then serveClients clients at once on overlapping
// users (ScenarioServeLoad), verified by restores through the server and
// by the store's chunk count. A build without serve gives rows that say
// so; smp failing fails the run.
func (r *runner) smpServeScenarios(ctx context.Context) error {
	if _, err := r.combined(ctx, r.opts.Bin, "serve", "--help"); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, sc := range []string{ScenarioServe, ScenarioServeLoad} {
			r.add(Row{Tool: ToolSMP, Scenario: sc, Status: StatusUnavailable, Note: "not available in this build (no smp serve)"})
		}
		return nil
	}
	r.note("serve: a fresh store served by `smp serve --insecure` on 127.0.0.1, one client token per computer; the captures are the capture scenario's (after the incremental scenario's changes to the corpus), sent through the server. CPU s adds the server's own CPU time (its rusage after SIGTERM) to the clients'; peak RSS is the largest client's, the server's is in the note")
	r.note("serve-16: another fresh store and server; %d capture clients run at once, client i capturing user (i mod users) as computer loadNN with its own token, so several computers send the same data concurrently. Wall is first start to last finish, MB/s the aggregate of all %d; every record is then restored through the server (restarted, not timed) and compared byte for byte with the corpus, and smp stats must show the serve scenario's chunk set", serveClients, serveClients)
	seq, err := r.smpServe(ctx)
	if err != nil {
		r.add(Row{Tool: ToolSMP, Scenario: ScenarioServeLoad, Status: StatusSkipped, Note: "the serve scenario failed"})
		return fmt.Errorf("smp capture through smp serve: %w", err)
	}
	if err := r.smpServeLoad(ctx, seq); err != nil {
		return fmt.Errorf("smp serve with %d concurrent clients: %w", serveClients, err)
	}
	if err := r.smpServeSplit(ctx); err != nil {
		return fmt.Errorf("smp serve, client and server on separate CPUs: %w", err)
	}
	return nil
}

// pinned is the execSpec that runs name with args, under `taskset -c cpus`
// when cpus is set.
func (r *runner) pinned(cpus, name string, args ...string) execSpec {
	if cpus == "" {
		return execSpec{name: name, args: args}
	}
	return execSpec{name: r.tools["taskset"], args: append([]string{"-c", cpus, name}, args...)}
}

// twoCPUs returns two CPUs this process may run on, or false.
func twoCPUs() (a, b string, ok bool) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return "", "", false
	}
	var cpus []string
	for i := 0; i < len(set)*64 && len(cpus) < 2; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, strconv.Itoa(i))
		}
	}
	if len(cpus) < 2 {
		return "", "", false
	}
	return cpus[0], cpus[1], true
}

// smpServeSplit measures what the serve scenario cannot on a small host.
// There the client and the server share the host's CPUs, so the server's
// work (decompressing and re-hashing every upload, writing packs) is taken
// from the client's. Here, as on two machines, the server runs on one CPU
// and the client on another; the baseline is the same captures into a
// local store by smp alone on the client's CPU.
func (r *runner) smpServeSplit(ctx context.Context) error {
	clientCPU, serverCPU, ok := twoCPUs()
	if !ok || r.tools["taskset"] == "" {
		for _, sc := range []string{ScenarioCapture1CPU, ScenarioServeSplit} {
			r.add(Row{Tool: ToolSMP, Scenario: sc, Status: StatusSkipped, Note: "needs two CPUs and taskset"})
		}
		return nil
	}
	r.note("capture-1cpu and serve-split: the capture scenario's captures (after the incremental scenario's changes) with smp pinned by taskset to CPU %s, into a fresh local store, then through `smp serve --insecure` on 127.0.0.1 pinned to CPU %s (client and server on separate CPUs, as on two machines; serve-split's CPU s includes the server's)", clientCPU, serverCPU)
	local := filepath.Join(r.work, "smp-1cpu-store")
	defer removeAll(local)
	if _, err := r.output(ctx, r.opts.Bin, "init", "--store", local); err != nil {
		return err
	}
	la, _, err := r.smpCaptureEachOn(ctx, clientCPU, local, func(int) []string { return r.chunked() })
	if err != nil {
		r.add(Row{Tool: ToolSMP, Scenario: ScenarioCapture1CPU, Status: StatusFailed, Note: err.Error()})
		return err
	}
	removeAll(local)
	store := filepath.Join(r.work, "smp-split-store")
	defer removeAll(store)
	fail := func(err error) error {
		r.add(Row{Tool: ToolSMP, Scenario: ScenarioServeSplit, Status: StatusFailed, Note: err.Error()})
		return err
	}
	tokens, err := r.serveStore(ctx, store, r.computers)
	if err != nil {
		return fail(err)
	}
	srv, err := r.startServeOn(ctx, serverCPU, store)
	if err != nil {
		return fail(err)
	}
	defer srv.stop()
	ra, outs, err := r.smpCaptureEachOn(ctx, clientCPU, srv.url, func(i int) []string { return []string{"--token", tokens[i]} })
	if err != nil {
		return fail(srv.clientError(err))
	}
	sc, err := srv.stop()
	if err != nil {
		return fail(err)
	}
	var logical int64
	for _, o := range outs {
		logical += o.Bytes
	}
	lrow := la.row(ToolSMP, ScenarioCapture1CPU, logical)
	lrow.Note = "local store, smp on CPU " + clientCPU
	r.add(lrow)
	row := ra.row(ToolSMP, ScenarioServeSplit, logical)
	row.CPUSeconds += sc.cpu.Seconds()
	row.Note = fmt.Sprintf("client on CPU %s, smp serve on CPU %s", clientCPU, serverCPU)
	if lrow.MBps > 0 {
		row.Note += fmt.Sprintf(": %.0f%% of capture-1cpu's throughput", 100*row.MBps/lrow.MBps)
	}
	row.Note += fmt.Sprintf("; server CPU %.1fs (included), peak RSS %.0f MiB", sc.cpu.Seconds(), kibToMiB(sc.maxRSS))
	r.add(row)
	return nil
}

// smpServe captures every user in turn through a server on a fresh store
// and returns that store's stats (taken after the server stopped).
func (r *runner) smpServe(ctx context.Context) (smpStatsOut, error) {
	store := filepath.Join(r.work, "smp-serve-store")
	defer removeAll(store)
	fail := func(err error) (smpStatsOut, error) {
		r.add(Row{Tool: ToolSMP, Scenario: ScenarioServe, Status: StatusFailed, Note: err.Error()})
		return smpStatsOut{}, err
	}
	tokens, err := r.serveStore(ctx, store, r.computers)
	if err != nil {
		return fail(err)
	}
	srv, err := r.startServe(ctx, store)
	if err != nil {
		return fail(err)
	}
	defer srv.stop()
	a, outs, err := r.smpCaptureEach(ctx, srv.url, func(i int) []string { return []string{"--token", tokens[i]} })
	if err != nil {
		return fail(srv.clientError(err))
	}
	sc, err := srv.stop()
	if err != nil {
		return fail(err)
	}
	st, err := r.smpStats(ctx, store)
	if err != nil {
		return fail(fmt.Errorf("smp stats: %w", err))
	}
	var logical, sent int64
	for _, o := range outs {
		logical += o.Bytes
		sent += o.UploadedBytes
	}
	row := a.row(ToolSMP, ScenarioServe, logical)
	row.CPUSeconds += sc.cpu.Seconds()
	row.StoredBytes = st.StoredBytes
	row.DiskBytes = du(store)
	row.DedupeRatio = ratio(logical, st.StoredBytes)
	row.Note = "through smp serve on loopback"
	if local, ok := r.rep.Row(ToolSMP, ScenarioCapture); ok && local.OK() && local.MBps > 0 {
		row.Note += fmt.Sprintf(": %.0f%% of local capture throughput", 100*row.MBps/local.MBps)
	}
	row.Note += fmt.Sprintf("; %s sent; server CPU %.1fs (included), peak RSS %.0f MiB",
		humanize.IBytes(uint64(sent)), sc.cpu.Seconds(), kibToMiB(sc.maxRSS))
	r.add(row)
	return st, nil
}

// smpServeLoad runs serveClients captures at once through one server on a
// fresh store, then checks that every record restores byte for byte and
// that the store holds the chunk set of the sequential serve store (seq):
// data sent by several computers at once is stored once.
func (r *runner) smpServeLoad(ctx context.Context, seq smpStatsOut) error {
	store := filepath.Join(r.work, "smp-serve16-store")
	defer removeAll(store)
	row := Row{Tool: ToolSMP, Scenario: ScenarioServeLoad, Status: StatusFailed}
	fail := func(err error) error {
		row.Status, row.Note = StatusFailed, err.Error()
		r.add(row)
		return err
	}
	computers := make([]string, serveClients)
	users := make([]string, serveClients)
	for i := range computers {
		computers[i] = fmt.Sprintf("load%02d", i)
		users[i] = r.users[i%len(r.users)]
	}
	tokens, err := r.serveStore(ctx, store, computers)
	if err != nil {
		return fail(err)
	}
	srv, err := r.startServe(ctx, store)
	if err != nil {
		return fail(err)
	}
	defer srv.stop()
	if err := r.settle(r.root); err != nil {
		return fail(err)
	}

	// The clients, all at once; the first failure stops the others.
	type result struct {
		c   child
		out smpCaptureOut
		err error
	}
	results := make([]result, serveClients)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i := range serveClients {
		wg.Go(func() {
			c, out, err := r.smpCaptureOne(cctx, srv.url, computers[i], users[i], "--token", tokens[i])
			if err != nil {
				cancel()
			}
			results[i] = result{c, out, err}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	var a agg
	var logical int64
	for i, res := range results {
		if res.err != nil && !errors.Is(res.err, context.Canceled) {
			return fail(srv.clientError(fmt.Errorf("client %s (%s): %w", computers[i], users[i], res.err)))
		}
	}
	for i, res := range results {
		if res.err != nil {
			return fail(fmt.Errorf("client %s (%s): %w", computers[i], users[i], res.err))
		}
		a.add(res.c)
		logical += res.out.Bytes
	}
	a.wall = wall // concurrent: first start to last finish, not the sum
	sc, err := srv.stop()
	if err != nil {
		return fail(err)
	}
	row = a.row(ToolSMP, ScenarioServeLoad, logical)
	row.CPUSeconds += sc.cpu.Seconds()
	server := fmt.Sprintf("server CPU %.1fs (included), peak RSS %.0f MiB", sc.cpu.Seconds(), kibToMiB(sc.maxRSS))

	// (a) Every record restores through the server, byte for byte; the
	// server is restarted so that serving the restores is not in its
	// figures above.
	verified := false
	row.Verified = &verified
	srv2, err := r.startServe(ctx, store)
	if err != nil {
		return fail(fmt.Errorf("restarting smp serve for the restores: %w", err))
	}
	defer srv2.stop()
	target := filepath.Join(r.work, "restore-serve16")
	for i, res := range results {
		if err := r.serveRestore(ctx, srv2.url, tokens[i], res.out.Record, users[i], target); err != nil {
			return fail(srv2.clientError(fmt.Errorf("record %d of %d (%s, %s): %w", i+1, serveClients, computers[i], users[i], err)))
		}
	}
	if _, err := srv2.stop(); err != nil {
		return fail(err)
	}
	verified = true

	// (b) The same corpus makes the same chunk set, however many computers
	// sent it at once: each shared chunk is stored once.
	st, err := r.smpStats(ctx, store)
	if err != nil {
		return fail(fmt.Errorf("smp stats: %w", err))
	}
	row.StoredBytes = st.StoredBytes
	row.DiskBytes = du(store)
	row.DedupeRatio = ratio(logical, st.StoredBytes)
	if len(r.users) > serveClients {
		// Not every user was captured: no chunk set to compare with.
		row.Note = fmt.Sprintf("%d concurrent clients, %d records verified byte-identical; %s; %d chunks (the chunk set is not compared: %d users, %d clients)",
			serveClients, serveClients, server, st.Chunks, len(r.users), serveClients)
		r.add(row)
		return nil
	}
	if st.Chunks != seq.Chunks || st.UniqueBytes != seq.UniqueBytes {
		return fail(fmt.Errorf("%d records verified byte-identical, but the chunks are not stored once: %d chunks of %d unique bytes, where one client at a time stored %d chunks of %d bytes",
			serveClients, st.Chunks, st.UniqueBytes, seq.Chunks, seq.UniqueBytes))
	}
	row.Note = fmt.Sprintf("%d concurrent clients, %d records verified byte-identical, chunks stored once (%d = %d); %s",
		serveClients, serveClients, st.Chunks, seq.Chunks, server)
	r.add(row)
	return nil
}

// serveStore makes a fresh store and a client token for each computer.
func (r *runner) serveStore(ctx context.Context, store string, computers []string) (tokens []string, err error) {
	if _, err := r.output(ctx, r.opts.Bin, "init", "--store", store); err != nil {
		return nil, err
	}
	for _, c := range computers {
		out, err := r.output(ctx, r.opts.Bin, "token", "create", "--store", store, "--computer", c)
		if err != nil {
			return nil, err
		}
		tok := strings.TrimSpace(out)
		if tok == "" || strings.ContainsAny(tok, " \n") {
			return nil, fmt.Errorf("smp token create printed %q, want one secret", out)
		}
		tokens = append(tokens, tok)
	}
	return tokens, nil
}

// serveRestore restores record through the SMP at url into an empty
// target, compares user's profile with the corpus' and removes target.
func (r *runner) serveRestore(ctx context.Context, url, token, record, user, target string) error {
	if err := os.Mkdir(target, 0o755); err != nil {
		return err
	}
	defer removeAll(target)
	c, err := r.exec(ctx, execSpec{name: r.opts.Bin, args: []string{"restore", "--store", url, "--token", token, "--record", record, "--root", target, "--keep", "--json"}})
	if err != nil {
		return err
	}
	var out struct {
		Errors int64 `json:"errors"`
	}
	if err := json.Unmarshal(c.stdout, &out); err != nil {
		return fmt.Errorf("smp restore output: %w: %q", err, c.stdout)
	}
	if out.Errors > 0 {
		return fmt.Errorf("smp restore: %d errors", out.Errors)
	}
	if err := compareTrees(filepath.Join(r.root, "home", user), filepath.Join(target, "home", user)); err != nil {
		return fmt.Errorf("restored tree differs from the corpus: %w", err)
	}
	return nil
}

// serveProc is a running `smp serve`.
type serveProc struct {
	cmd     *exec.Cmd
	url     string
	start   time.Time
	exited  chan error // Wait's result
	stderr  *bytes.Buffer
	warns   *warnLines // its log's warnings and errors
	stopped bool
	res     child
	err     error
}

// startServe runs `smp serve --insecure` on a free loopback port and
// waits until it listens.
func (r *runner) startServe(ctx context.Context, store string) (*serveProc, error) {
	return r.startServeOn(ctx, "", store)
}

// startServeOn is startServe with the server pinned to cpus ("" for no
// pinning).
func (r *runner) startServeOn(ctx context.Context, cpus, store string) (*serveProc, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := &serveProc{exited: make(chan error, 1), stderr: &bytes.Buffer{}, warns: &warnLines{}}
	spec := r.pinned(cpus, r.opts.Bin, "serve", "--store", store, "--listen", "127.0.0.1:0", "--insecure")
	p.cmd = exec.Command(spec.name, spec.args...)
	p.cmd.Env = r.env
	lw := &listenWatcher{found: make(chan string, 1)}
	// The request log goes to stderr: keep its tail, and its warnings
	// for a client's failure (a refused request may reach the client as a
	// reset connection only).
	p.cmd.Stdout, p.cmd.Stderr = lw, io.MultiWriter(&tailWriter{buf: p.stderr, max: 64 << 10}, p.warns)
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("smp serve: %w", err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	select {
	case p.url = <-lw.found:
		return p, nil
	case err := <-p.exited:
		return nil, &childError{cmd: "smp serve", err: fmt.Errorf("exited before listening: %v", err), stderr: tail(p.stderr)}
	case <-timeout.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		return nil, &childError{cmd: "smp serve", err: errors.New("not listening after 30 s"), stderr: tail(p.stderr)}
	case <-ctx.Done():
		_ = p.cmd.Process.Kill()
		<-p.exited
		return nil, ctx.Err()
	}
}

// stop sends SIGTERM, waits for a clean exit and returns the server's
// usage over its whole life; later calls return the same.
func (p *serveProc) stop() (child, error) {
	if p.stopped {
		return p.res, p.err
	}
	p.stopped = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timeout := time.NewTimer(2 * time.Minute)
	defer timeout.Stop()
	var err error
	select {
	case err = <-p.exited:
	case <-timeout.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		err = errors.New("did not stop within 2 minutes of SIGTERM")
	}
	p.res = child{wall: time.Since(p.start)}
	if ps := p.cmd.ProcessState; ps != nil {
		p.res.cpu = ps.UserTime() + ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			p.res.maxRSS = ru.Maxrss
		}
	}
	if err != nil {
		p.err = &childError{cmd: "smp serve", err: err, stderr: tail(p.stderr)}
	}
	return p.res, p.err
}

// clientError adds the server's last warnings to a client's error.
func (p *serveProc) clientError(err error) error {
	if w := p.warns.String(); w != "" {
		return fmt.Errorf("%w; smp serve logged: %s", err, w)
	}
	return err
}

// warnLines keeps the last few lines of a log that are warnings, errors
// or a panic, leaving out the expected "no record yet" answers.
type warnLines struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
}

func (w *warnLines) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		line, rest, ok := bytes.Cut(w.partial, []byte("\n"))
		if !ok {
			break
		}
		w.partial = rest
		l := string(line)
		if strings.Contains(l, "path=/v1/record status=404") {
			continue // a first capture's look-up of its parent record
		}
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.Contains(l, "panic") {
			if len(l) > 400 {
				l = l[:400] + "..."
			}
			w.lines = append(w.lines, l)
			if len(w.lines) > 3 {
				w.lines = w.lines[1:]
			}
		}
	}
	if len(w.partial) > 64<<10 {
		w.partial = nil
	}
	return len(p), nil
}

func (w *warnLines) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, " / ")
}

// tail is the last 600 bytes of a child's stderr.
func tail(b *bytes.Buffer) string {
	msg := strings.TrimSpace(b.String())
	if len(msg) > 600 {
		msg = "..." + msg[len(msg)-600:]
	}
	return msg
}

// listenWatcher is smp serve's stdout: it sends the URL of the
// "listening on URL" line to found, once.
type listenWatcher struct {
	mu    sync.Mutex
	buf   []byte
	found chan string
	done  bool
}

func (w *listenWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		line, rest, ok := bytes.Cut(w.buf, []byte("\n"))
		if !ok {
			break
		}
		w.buf = rest
		if _, url, ok := strings.Cut(string(line), "listening on "); ok {
			w.found <- strings.TrimSpace(url)
			w.done, w.buf = true, nil
			break
		}
	}
	if len(w.buf) > 64<<10 {
		w.buf = nil
	}
	return len(p), nil
}

// ---- cp -a ----

func (r *runner) missing(tool, scenario string, needs ...string) bool {
	for _, n := range needs {
		if r.tools[n] == "" {
			r.add(Row{Tool: tool, Scenario: scenario, Status: StatusNotInstalled, Note: n + ": not installed (install with bench/install-baselines.sh)"})
			return true
		}
	}
	return false
}

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

// ---- tar | zstd ----

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

// ---- restic ----

func (r *runner) restic(ctx context.Context, args ...string) (child, error) {
	return r.exec(ctx, execSpec{name: r.tools["restic"], args: append([]string{"--repo", r.resticRepo}, args...), env: r.resticEnv})
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
	if err := r.settle(r.root); err != nil {
		r.fail(ToolRestic, ScenarioCapture, err)
		return
	}
	var a agg
	for i, u := range r.users {
		c, err := r.restic(ctx, "backup", "--quiet", "--host", r.computers[i], filepath.Join(r.root, "home", u))
		if err != nil {
			r.fail(ToolRestic, ScenarioCapture, err)
			r.resticRepo = ""
			return
		}
		a.add(c)
	}
	row := a.row(ToolRestic, ScenarioCapture, r.logical)
	row.StoredBytes = du(r.resticRepo)
	row.DiskBytes = row.StoredBytes
	row.DedupeRatio = ratio(r.logical, row.StoredBytes)
	row.Note = "repository v2, compression auto; stored = du of the repository"
	r.add(row)
}

func (r *runner) resticRestore(ctx context.Context) {
	if r.resticRepo == "" {
		if !r.missing(ToolRestic, ScenarioRestore, "restic") {
			r.add(Row{Tool: ToolRestic, Scenario: ScenarioRestore, Status: StatusSkipped, Note: "no capture"})
		}
		return
	}
	u := r.users[0]
	target := filepath.Join(r.work, "restore-restic")
	defer removeAll(target)
	if err := os.Mkdir(target, 0o755); err != nil {
		r.fail(ToolRestic, ScenarioRestore, err)
		return
	}
	if err := r.settle(r.resticRepo); err != nil {
		r.fail(ToolRestic, ScenarioRestore, err)
		return
	}
	c, err := r.restic(ctx, "restore", "latest", "--host", r.computers[0], "--target", target)
	if err != nil {
		r.fail(ToolRestic, ScenarioRestore, err)
		return
	}
	var a agg
	a.add(c)
	// restic restores the absolute path it backed up below the target.
	row, _ := r.verifyRestore(a, ToolRestic, u, filepath.Join(target, r.root, "home", u))
	r.add(row)
}

func (r *runner) resticIncremental(ctx context.Context) {
	if r.resticRepo == "" {
		if !r.missing(ToolRestic, ScenarioIncremental, "restic") {
			r.add(Row{Tool: ToolRestic, Scenario: ScenarioIncremental, Status: StatusSkipped, Note: "no capture"})
		}
		return
	}
	before := du(r.resticRepo)
	if err := r.settle(r.root); err != nil {
		r.fail(ToolRestic, ScenarioIncremental, err)
		return
	}
	var a agg
	for i, u := range r.users {
		c, err := r.restic(ctx, "backup", "--quiet", "--host", r.computers[i], filepath.Join(r.root, "home", u))
		if err != nil {
			r.fail(ToolRestic, ScenarioIncremental, err)
			return
		}
		a.add(c)
	}
	row := a.row(ToolRestic, ScenarioIncremental, r.logical)
	row.DiskBytes = du(r.resticRepo)
	row.StoredBytes = max(row.DiskBytes-before, 0)
	row.Note = "parent snapshot: same host and path"
	r.add(row)
}

// ---- helpers ----

func (r *runner) fail(tool, scenario string, err error) {
	r.add(Row{Tool: tool, Scenario: scenario, Status: StatusFailed, Note: err.Error()})
}

// verifyRestore compares the restored profile with the corpus' and makes
// the restore row.
func (r *runner) verifyRestore(a agg, tool, user, restored string) (Row, error) {
	src := filepath.Join(r.root, "home", user)
	_, logical, _ := treeSize(src)
	row := a.row(tool, ScenarioRestore, logical)
	err := compareTrees(src, restored)
	ok := err == nil
	row.Verified = &ok
	if err != nil {
		row.Status = StatusFailed
		row.Note = "restored tree differs from the corpus: " + err.Error()
	} else {
		row.Note = "restore of " + user + ", verified byte for byte"
	}
	return row, err
}

// settle prepares a timed step: it flushes earlier steps' dirty pages so
// their writeback is not charged to this step, and reads paths so every
// tool starts from the same warm page cache (this machine evicts pages
// idle for about a minute).
func (r *runner) settle(paths ...string) error {
	syscall.Sync()
	buf := make([]byte, 1<<20)
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// child is one finished child process.
type child struct {
	wall, cpu time.Duration
	maxRSS    int64 // KiB
	stdout    []byte
}

type execSpec struct {
	name string
	args []string
	env  []string // added to the runner's environment
}

// exec runs a child to completion; a non-zero exit is an error carrying
// the tail of its stderr.
func (r *runner) exec(ctx context.Context, s execSpec) (child, error) {
	if err := ctx.Err(); err != nil {
		return child{}, err
	}
	cmd := exec.CommandContext(ctx, s.name, s.args...)
	cmd.Env = append(slices.Clip(r.env), s.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &tailWriter{buf: &stderr, max: 64 << 10}
	start := time.Now()
	err := cmd.Run()
	c := child{wall: time.Since(start), stdout: stdout.Bytes()}
	if ps := cmd.ProcessState; ps != nil {
		c.cpu = ps.UserTime() + ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			c.maxRSS = ru.Maxrss
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return c, ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 600 {
			msg = "..." + msg[len(msg)-600:]
		}
		return c, &childError{cmd: filepath.Base(s.name) + " " + strings.Join(s.args, " "), err: err, stderr: msg}
	}
	return c, nil
}

// childError is a child that failed: its command line, exit status and
// the tail of its stderr.
type childError struct {
	cmd    string
	err    error
	stderr string
}

func (e *childError) Error() string { return fmt.Sprintf("%s: %v: %s", e.cmd, e.err, e.stderr) }
func (e *childError) Unwrap() error { return e.err }

// output runs a child and returns its stdout.
func (r *runner) output(ctx context.Context, name string, args ...string) (string, error) {
	c, err := r.exec(ctx, execSpec{name: name, args: args})
	return string(c.stdout), err
}

// combined runs a child and returns stdout and stderr together.
func (r *runner) combined(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = r.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// tailWriter keeps at most about max bytes, the latest.
type tailWriter struct {
	buf *bytes.Buffer
	max int
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf.Write(p)
	if t.buf.Len() > 2*t.max {
		b := slices.Clone(t.buf.Bytes()[t.buf.Len()-t.max:])
		t.buf.Reset()
		t.buf.Write(b)
	}
	return len(p), nil
}

// agg sums the children of one scenario.
type agg struct {
	wall, cpu time.Duration
	maxRSS    int64 // KiB
	runs      int
}

func (a *agg) add(c child) {
	a.wall += c.wall
	a.cpu += c.cpu
	a.maxRSS = max(a.maxRSS, c.maxRSS)
	a.runs++
}

func (a agg) row(tool, scenario string, logical int64) Row {
	row := Row{
		Tool: tool, Scenario: scenario, Status: StatusOK, Runs: a.runs,
		WallSeconds: a.wall.Seconds(), CPUSeconds: a.cpu.Seconds(), PeakRSSMiB: kibToMiB(a.maxRSS),
		LogicalBytes: logical,
	}
	if a.wall > 0 {
		row.MBps = float64(logical) / 1e6 / a.wall.Seconds()
	}
	return row
}

func kibToMiB(k int64) float64 { return float64(k) / 1024 }

func ratio(a, b int64) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func copySmallFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

// treeSize counts the regular files under dir and their bytes.
func treeSize(dir string) (files int, bytes int64, err error) {
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files++
		bytes += info.Size()
		return nil
	})
	return files, bytes, err
}

func du(dir string) int64 { return diskUsage(dir)[0] }

// diskUsage returns the bytes allocated (st_blocks) to everything under
// each root, like du: an inode is counted once, under the first root
// holding it, so diskUsage(corpus, links)[1] is what hard links add.
func diskUsage(roots ...string) []int64 {
	seen := map[[2]uint64]bool{}
	out := make([]int64, len(roots))
	for i, root := range roots {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			st, ok := info.Sys().(*syscall.Stat_t)
			if !ok {
				out[i] += info.Size()
				return nil
			}
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if st.Nlink > 1 && !info.IsDir() {
				if seen[key] {
					return nil
				}
				seen[key] = true
			}
			out[i] += st.Blocks * 512
			return nil
		})
	}
	return out
}

// compareTrees checks that dst holds exactly what src holds: the same
// entries, types, permission bits, file contents and symlink targets.
func compareTrees(src, dst string) error {
	list := func(root string) (map[string]fs.FileInfo, error) {
		m := map[string]fs.FileInfo{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			m[rel] = info
			return nil
		})
		return m, err
	}
	a, err := list(src)
	if err != nil {
		return err
	}
	b, err := list(dst)
	if err != nil {
		return err
	}
	var diffs []string
	diff := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	paths := make([]string, 0, len(a))
	for p := range a {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for p := range b {
		if _, ok := a[p]; !ok {
			diff("%s: only in the restored tree", p)
		}
	}
	const bits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
	for _, p := range paths {
		ia, ib := a[p], b[p]
		switch {
		case ib == nil:
			diff("%s: missing", p)
			continue
		case ia.Mode().Type() != ib.Mode().Type():
			diff("%s: type %v, restored %v", p, ia.Mode().Type(), ib.Mode().Type())
			continue
		case ia.Mode()&fs.ModeSymlink == 0 && ia.Mode()&bits != ib.Mode()&bits:
			diff("%s: mode %v, restored %v", p, ia.Mode(), ib.Mode())
		}
		switch {
		case ia.Mode()&fs.ModeSymlink != 0:
			ta, err1 := os.Readlink(filepath.Join(src, p))
			tb, err2 := os.Readlink(filepath.Join(dst, p))
			if err1 != nil || err2 != nil || ta != tb {
				diff("%s: symlink target %q, restored %q", p, ta, tb)
			}
		case ia.Mode().IsRegular():
			if ia.Size() != ib.Size() {
				diff("%s: size %d, restored %d", p, ia.Size(), ib.Size())
			} else if same, err := sameFile(filepath.Join(src, p), filepath.Join(dst, p)); err != nil || !same {
				diff("%s: contents differ (%v)", p, err)
			}
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	n := len(diffs)
	if n > 10 {
		diffs = append(diffs[:10], "...")
	}
	return fmt.Errorf("%d differences: %s", n, strings.Join(diffs, "; "))
}

func sameFile(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea != nil || eb != nil {
			if (ea == io.EOF || ea == io.ErrUnexpectedEOF) && (eb == io.EOF || eb == io.ErrUnexpectedEOF) {
				return true, nil
			}
			return false, errors.Join(ea, eb)
		}
	}
}

// removeAll removes dir, first making read-only directories writable.
func removeAll(dir string) error {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

func machineInfo() Machine {
	m := Machine{Cores: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				m.MemBytes = kb << 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// ---- comparisons and the table ----

// baselines lists, per scenario, the baselines smp is compared with.
var baselines = map[string][]string{
	ScenarioCapture:     {ToolRestic, ToolTar, ToolCp},
	ScenarioIncremental: {ToolRestic, ToolTar, ToolCp},
	ScenarioRestore:     {ToolRestic, ToolTar, ToolCp},
	ScenarioHardlink:    {ToolCpLink},
	ScenarioHardlinkAll: {ToolCpLink},
}

// Compare computes smp's ratios to every baseline that ran. The serve
// scenarios have no baseline tool: serve is compared with smp's own local
// capture (Speedup is then the ratio of throughputs, the corpus having
// changed in between), serve-16 with serve.
func (r *Report) Compare() []Comparison {
	out := []Comparison{}
	for _, sc := range []string{ScenarioCapture, ScenarioIncremental, ScenarioRestore, ScenarioHardlink, ScenarioHardlinkAll} {
		s, ok := r.Row(ToolSMP, sc)
		if !ok || !s.OK() || s.WallSeconds <= 0 {
			continue
		}
		for _, tool := range baselines[sc] {
			b, ok := r.Row(tool, sc)
			if !ok || !b.OK() || b.WallSeconds <= 0 {
				continue
			}
			c := Comparison{Scenario: sc, Baseline: tool, Speedup: b.WallSeconds / s.WallSeconds}
			if s.StoredBytes > 0 && b.StoredBytes > 0 && sc != ScenarioRestore {
				c.StoredRatio = float64(s.StoredBytes) / float64(b.StoredBytes)
			}
			if s.CPUSeconds > 0 && b.CPUSeconds > 0 {
				c.CPURatio = s.CPUSeconds / b.CPUSeconds
			}
			if s.PeakRSSMiB > 0 && b.PeakRSSMiB > 0 {
				c.RSSRatio = s.PeakRSSMiB / b.PeakRSSMiB
			}
			c.Text = c.describe()
			out = append(out, c)
		}
	}
	// Restoring a hard-link record does what cp -al does: link every file
	// into a new tree.
	if s, ok := r.Row(ToolSMP, ScenarioHardlinkRestore); ok && s.OK() && s.WallSeconds > 0 {
		if b, ok := r.Row(ToolCpLink, ScenarioHardlinkAll); ok && b.OK() && b.WallSeconds > 0 {
			c := Comparison{Scenario: ScenarioHardlinkRestore, Baseline: ToolCpLink, Speedup: b.WallSeconds / s.WallSeconds}
			c.Text = c.describe()
			out = append(out, c)
		}
	}
	return append(out, r.compareServe()...)
}

// compareServe is "84% of local capture throughput" for serve and "16
// clients: 410 MB/s aggregate (1.1x one client at a time)" for serve-16.
func (r *Report) compareServe() []Comparison {
	var out []Comparison
	ok := func(row Row, found bool) bool { return found && row.OK() && row.MBps > 0 }
	local, localOK := r.Row(ToolSMP, ScenarioCapture)
	serve, serveOK := r.Row(ToolSMP, ScenarioServe)
	localOK, serveOK = ok(local, localOK), ok(serve, serveOK)
	if serveOK && localOK {
		c := Comparison{Scenario: ScenarioServe, Baseline: "smp capture (local)", Speedup: serve.MBps / local.MBps}
		if serve.CPUSeconds > 0 && local.CPUSeconds > 0 && serve.LogicalBytes > 0 && local.LogicalBytes > 0 {
			// Per logical byte: the corpus changed between the two.
			c.CPURatio = (serve.CPUSeconds / float64(serve.LogicalBytes)) / (local.CPUSeconds / float64(local.LogicalBytes))
		}
		if serve.PeakRSSMiB > 0 && local.PeakRSSMiB > 0 {
			c.RSSRatio = serve.PeakRSSMiB / local.PeakRSSMiB
		}
		c.Text = fmt.Sprintf("%.0f%% of local capture throughput", 100*c.Speedup)
		out = append(out, c)
	}
	if split, found := r.Row(ToolSMP, ScenarioServeSplit); ok(split, found) {
		if one, found := r.Row(ToolSMP, ScenarioCapture1CPU); ok(one, found) {
			c := Comparison{Scenario: ScenarioServeSplit, Baseline: "smp capture (local, same one CPU)", Speedup: split.MBps / one.MBps}
			c.Text = fmt.Sprintf("client and server on separate CPUs: %.0f%% of a local capture on the client's CPU", 100*c.Speedup)
			out = append(out, c)
		}
	}
	if load, found := r.Row(ToolSMP, ScenarioServeLoad); ok(load, found) {
		c := Comparison{Scenario: ScenarioServeLoad, Text: fmt.Sprintf("%d clients: %.0f MB/s aggregate", load.Runs, load.MBps)}
		if serveOK {
			c.Baseline, c.Speedup = "smp serve (one client at a time)", load.MBps/serve.MBps
			c.Text += fmt.Sprintf(" (%sx one client at a time)", FormatRatio(c.Speedup))
		}
		out = append(out, c)
	}
	return out
}

// describe is "2.7x faster than restic, 0.8x the stored bytes".
func (c Comparison) describe() string {
	var s string
	switch {
	case c.Speedup >= 1:
		s = fmt.Sprintf("%sx faster than %s", FormatRatio(c.Speedup), c.Baseline)
	case c.Speedup > 0:
		s = fmt.Sprintf("%sx slower than %s", FormatRatio(1/c.Speedup), c.Baseline)
	}
	if c.StoredRatio > 0 {
		what := "the stored bytes"
		if c.Scenario == ScenarioIncremental {
			what = "the new stored bytes"
		}
		s += fmt.Sprintf(", %sx %s", FormatRatio(c.StoredRatio), what)
	}
	return s
}

// FormatRatio prints a ratio with two significant digits (0.83, 2.7, 12,
// 140).
func FormatRatio(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "-"
	case v >= 9.95:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	case v >= 0.995:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
}

// Summary returns one line per scenario: "capture: 2.7x faster than
// restic, 0.8x the stored bytes; 1.3x faster than cp -a, ...".
func (r *Report) Summary() []string {
	var lines []string
	var cur string
	var parts []string
	flush := func() {
		if cur != "" {
			lines = append(lines, cur+": "+strings.Join(parts, "; "))
		}
	}
	for _, c := range r.Ratios {
		sc := c.Scenario
		if sc == ScenarioServeLoad || sc == ScenarioServeSplit {
			sc = ScenarioServe // one line: "serve: 84% ...; 16 clients: ...; separate CPUs: ..."
		}
		if sc != cur {
			flush()
			cur, parts = sc, nil
		}
		parts = append(parts, c.Text)
	}
	flush()
	return lines
}

// WriteMarkdown writes the report as a markdown table with the ratios and
// notes below it.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	title := "smp bench"
	if info := r.Corpus.Info; info != nil {
		title += fmt.Sprintf(": %d users, %s", len(info.Users), humanize.IBytes(uint64(info.Bytes)))
		if r.Corpus.Generated {
			title += fmt.Sprintf(" generated (seed %d)", r.Corpus.Seed)
		}
		if info.Files > 0 {
			title += fmt.Sprintf(", %d files", info.Files)
		}
		if info.ZstdRatio > 0 {
			title += fmt.Sprintf(", zstd ratio %.2f", info.ZstdRatio)
		}
	}
	m := r.Machine
	fmt.Fprintf(&b, "## %s\n\n%s; %d cores, %s/%s, %s", title, r.Date, m.Cores, m.GOOS, m.GOARCH, m.GoVersion)
	if m.SMPVersion != "" {
		fmt.Fprintf(&b, ", %s", m.SMPVersion)
	}
	if r.Quick {
		b.WriteString(" (--quick)")
	}
	b.WriteString("\n\n")
	b.WriteString("| tool | scenario | wall s | MB/s | CPU s | peak RSS MiB | stored | dedupe | notes |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|---|\n")
	for _, row := range r.Rows {
		if !row.OK() {
			fmt.Fprintf(&b, "| %s | %s | - | - | - | - | - | - | %s: %s |\n", mdCell(row.Tool), row.Scenario, row.Status, mdCell(row.Note))
			continue
		}
		stored, dedupe := "-", "-"
		if row.StoredBytes > 0 || row.Scenario == ScenarioIncremental {
			stored = humanize.IBytes(uint64(row.StoredBytes))
		}
		if row.DedupeRatio > 0 {
			dedupe = FormatRatio(row.DedupeRatio) + "x"
		}
		note := row.Note
		if row.DiskBytes > 0 && row.DiskBytes != row.StoredBytes && row.Scenario != ScenarioIncremental {
			note = strings.TrimPrefix(note+"; "+humanize.IBytes(uint64(row.DiskBytes))+" on disk", "; ")
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f | %.0f | %.2f | %.0f | %s | %s | %s |\n", mdCell(row.Tool), row.Scenario,
			row.WallSeconds, row.MBps, row.CPUSeconds, row.PeakRSSMiB, stored, dedupe, mdCell(note))
	}
	if lines := r.Summary(); len(lines) > 0 {
		b.WriteString("\nsmp compared with the baselines:\n\n")
		for _, l := range lines {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	b.WriteString("\nNotes:\n\n")
	b.WriteString("- MB/s is logical bytes (the corpus' file data) per wall second, 10^6 bytes; wall and CPU seconds are summed over the scenario's child processes; stored is what the tool keeps (smp: pack bytes from smp stats; restic: du of the repository; tar|zstd: archive sizes; incremental: bytes added)\n")
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mdCell makes s safe inside a markdown table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}
