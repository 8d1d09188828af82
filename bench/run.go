package bench

// Run drives the real smp binary and baseline tools (cp, tar | zstd,
// restic, borg) as child processes on one generated organisation corpus, so that
// wall time, CPU time and peak RSS come from each child's rusage. Run and
// the files it uses (tool_*.go, child.go, environment.go, verify.go,
// disk.go) must not import smp's capture, restore or repo packages: they
// measure the binary, not the library.

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"smp/bench/corpus"
)

// Scenarios, in the order Run measures them.
const (
	ScenarioCapture         = "capture"          // every user captured in turn into one fresh store (smp s3: on S3)
	ScenarioRestore         = "restore"          // the first user's capture restored to an empty root
	ScenarioRestoreAll      = "restore-all"      // every user's capture restored in turn, unencrypted and encrypted store
	ScenarioHardlink        = "hardlink"         // capture by hard-linking on the same filesystem
	ScenarioServe           = "serve"            // every user captured in turn through `smp serve` on loopback
	ScenarioServeLoad       = "serve-16"         // 16 clients capturing at once through one `smp serve`
	ScenarioHardlinkAll     = "hardlink-machine" // every user in one hard-link capture: a refresh of one machine
	ScenarioHardlinkRestore = "hardlink-restore" // that record restored by linking into place
	ScenarioCapture1CPU     = "capture-1cpu"     // every user captured into a local store, smp pinned to one CPU
	ScenarioServeSplit      = "serve-split"      // the same through `smp serve`: client pinned to that CPU, server to another
	ScenarioIncremental     = "incremental"      // re-capture of every user after corpus.MutateOrg
)

// Tools.
const (
	ToolSMP    = "smp"
	ToolCp     = "cp -a"
	ToolTar    = "tar|zstd"
	ToolCpLink = "cp -al"
	ToolRestic = "restic"
	ToolBorg   = "borg"
)

// RunOptions configure Run.
type RunOptions struct {
	Bin    string       // the smp binary to drive (required)
	Corpus string       // an existing corpus (DIR holding home/USER); "" generates one with `smp bench corpus`
	Users  int          // generated corpus: number of users
	Size   int64        // generated corpus: total bytes
	Seed   uint64       // generated corpus and mutation seed
	Shape  corpus.Shape // generated corpus: how its bytes are spread over files
	Quick  bool         // recorded in the report only
	Work   string       // parent of the scratch directory (default os.TempDir()); the scratch directory is removed at the end
	Keep   bool         // keep the scratch directory
	// Rounds is how many times the capture, restore, restore-all and
	// cold scenarios (with their floors) run, capture and restore-all
	// alternating the unencrypted and the encrypted store; their rows are
	// the median rounds (0 is 1).
	Rounds int
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
	if err := checkBin(opts.Bin, "RunOptions"); err != nil {
		return nil, err
	}
	if opts.Corpus == "" && (opts.Users < 1 || opts.Size <= 0) {
		return nil, fmt.Errorf("bench: need at least 1 user and a positive size (got %d users, %d bytes)", opts.Users, opts.Size)
	}
	work, err := scratchDir(opts.Work, "smp-bench-")
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
	r := &runner{opts: opts, log: log, work: work, tools: map[string]string{}, coldRecords: map[string]string{}, userFiles: map[string]int64{}}
	r.rep = &Report{
		Date:         time.Now().UTC().Format(time.RFC3339),
		Quick:        opts.Quick,
		Machine:      machineInfo(),
		Corpus:       CorpusReport{Seed: opts.Seed},
		ToolVersions: map[string]string{},
		Rows:         []Row{},
		Ratios:       []Comparison{},
		Criteria:     []Criterion{},
		Phases:       []Phase{},
	}
	err = r.run(ctx)
	r.phase("")
	r.rep.Ratios = r.rep.Compare()
	r.rep.Criteria = r.rep.CheckCriteria()
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
	smpHasEncrypt  bool // smp init makes encrypted stores with --key-file
	smpStore       string
	smpRecords     map[string]string // user -> record ID
	smpEncRecords  map[string]string // the same in the encrypted store
	cpDir          string
	tarDir         string
	resticRepo     string
	borgRepo       string
	borgEnv        []string
	serveTemplate  string            // the store every serve scenario's store copies ("": smp init each)
	coldRecords    map[string]string // user -> record ID in the cold rows' store
	userFiles      map[string]int64  // user -> regular files in the profile now
	cur            phaseClock        // the phase under way
	roundRows      map[string][]Row  // when set, add keeps each tool's rows here (coldRestore's rounds)

	trace func(event string) // when set, told of every settle and child (tests)
}

func (r *runner) logf(format string, args ...any) { fmt.Fprintf(r.log, format+"\n", args...) }

func (r *runner) add(row Row) {
	if r.roundRows != nil {
		r.roundRows[row.Tool] = append(r.roundRows[row.Tool], row)
		return
	}
	if row.OK() && row.Files == 0 {
		row.Files = r.scenarioFiles(row.Scenario)
	}
	if row.Files > 0 && row.WallSeconds > 0 {
		row.FilesPerSec = float64(row.Files) / row.WallSeconds
	}
	r.rep.Rows = append(r.rep.Rows, row)
	switch row.Status {
	case StatusOK:
		line := fmt.Sprintf("[%s] %s: %s, %d files in %.1fs (%.0f MB/s, %.0f files/s), CPU %.1fs, peak RSS %.0f MiB", row.Scenario, row.Tool,
			humanize.IBytes(uint64(row.LogicalBytes)), row.Files, row.WallSeconds, row.MBps, row.FilesPerSec, row.CPUSeconds, row.PeakRSSMiB)
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

// scenarioFiles is how many regular files a row of scenario covers, as
// the corpus is now: the first user's profile for the restores of one
// user, every client's profile for serve-16, the whole corpus otherwise
// (hardlink-restore restores every user).
func (r *runner) scenarioFiles(scenario string) int64 {
	switch scenario {
	case ScenarioRestore, ScenarioRestoreCold:
		if len(r.users) == 0 {
			return 0
		}
		return r.userFiles[r.users[0]]
	case ScenarioServeLoad:
		var n int64
		for i := range serveClients {
			if len(r.users) > 0 {
				n += r.userFiles[r.users[i%len(r.users)]]
			}
		}
		return n
	}
	var n int64
	for _, f := range r.userFiles {
		n += f
	}
	return n
}

func (r *runner) note(format string, args ...any) {
	r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(format, args...))
}

func (r *runner) run(ctx context.Context) error {
	env, err := smpEnv(r.work, "RESTIC_", "BORG_")
	if err != nil {
		return err
	}
	r.env = env
	r.phase("setup and corpus")
	if v, err := r.output(ctx, r.opts.Bin, "version"); err == nil {
		r.rep.Machine.SMPVersion = strings.TrimSpace(v)
	}
	r.findTools(ctx)
	help, _ := r.combined(ctx, r.opts.Bin, "capture", "--help")
	r.smpHasHardlink = strings.Contains(help, "--hardlink")
	initHelp, _ := r.combined(ctx, r.opts.Bin, "init", "--help")
	r.smpHasEncrypt = strings.Contains(initHelp, "--key-file")
	r.measureFloor(ctx)
	r.coldCheck()
	if err := r.prepareCorpus(ctx); err != nil {
		return err
	}
	r.logf("corpus %s: %d users, %d files, %s", r.root, len(r.users), r.rep.Corpus.Info.Files, humanize.IBytes(uint64(r.logical)))

	// 1. Organisation capture: every tool on the unchanged corpus.
	r.phase(ScenarioCapture)
	if err := r.smpCapture(ctx); err != nil {
		return err
	}
	r.cpCapture(ctx)
	r.tarCapture(ctx)
	r.resticCapture(ctx)
	r.borgCapture(ctx)
	r.phase(ScenarioCaptureCold)
	if err := r.coldCapture(ctx); err != nil {
		return err
	}

	// 2. Restore of the first user from those captures, verified.
	r.phase(ScenarioRestore)
	if err := r.smpRestore(ctx); err != nil {
		return err
	}
	r.cpRestore(ctx, ScenarioRestore)
	r.tarRestore(ctx, ScenarioRestore)
	r.resticRestore(ctx, ScenarioRestore)
	r.borgRestore(ctx, ScenarioRestore)
	r.phase(ScenarioRestoreCold)
	if err := r.coldRestore(ctx); err != nil {
		return err
	}
	r.phase(ScenarioRestoreAll)
	if err := r.smpRestoreAll(ctx); err != nil {
		return err
	}

	// 2b. smp's capture and restore through a store on S3 (loopback).
	r.phase("s3")
	if err := r.smpS3(ctx); err != nil {
		return err
	}

	// 3. Incremental re-capture after a week's changes.
	r.phase(ScenarioIncremental)
	if reason := r.mutate(ctx); reason != "" {
		for _, tool := range []string{ToolSMP, ToolCp, ToolTar, ToolRestic, ToolBorg} {
			r.add(Row{Tool: tool, Scenario: ScenarioIncremental, Status: StatusSkipped, Note: reason})
		}
		removeAll(r.coldVariant().store)
	} else {
		if err := r.smpIncremental(ctx); err != nil {
			return err
		}
		r.cpIncremental(ctx)
		r.tarIncremental(ctx)
		r.resticIncremental(ctx)
		r.borgIncremental(ctx)
		r.phase(ScenarioIncrementalCold)
		if err := r.coldIncremental(ctx); err != nil {
			return err
		}
	}

	// 4. Hard-link capture, last: a hard link changes the ctime of the
	// file it links, which would make every file look changed to the
	// incremental scenario's change detection.
	r.phase(ScenarioHardlink)
	r.smpHardlink(ctx)
	r.cpLink(ctx)
	if err := r.hardlinkMachine(ctx); err != nil {
		return err
	}

	// 5. smp serve: the same captures through the server, one client at
	// a time and then 16 at once.
	r.phase(ScenarioServe)
	if err := r.smpServeScenarios(ctx); err != nil {
		return err
	}
	return ctx.Err()
}
