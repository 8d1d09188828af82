package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"smp/bench/corpus"
)

func (r *runner) findTools(ctx context.Context) {
	for _, t := range []string{"cp", "tar", "zstd", "bash", "restic", "borg", "taskset"} {
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
	version("borg", "--version")
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
		r.logf("generating corpus: %d users, %s, seed %d, shape %v (smp bench corpus, not timed)", r.opts.Users, humanize.IBytes(uint64(r.opts.Size)), r.opts.Seed, r.opts.Shape)
		// In a child process: the generator's source material would
		// otherwise stay in this process's peak RSS and, through the
		// charge at exec, in every child's.
		start := time.Now()
		out, err := r.output(ctx, r.opts.Bin, "bench", "corpus", "--out", dir, "--users", strconv.Itoa(r.opts.Users),
			"--size", strconv.FormatInt(r.opts.Size, 10), "--seed", strconv.FormatUint(r.opts.Seed, 10), "--shape", r.opts.Shape.String(), "--json")
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
	files, bytes, err := r.countFiles()
	if err != nil {
		return err
	}
	r.logical = bytes
	if !cr.Generated {
		cr.Info.Users, cr.Info.Files, cr.Info.Bytes = r.users, files, bytes
	}
	return nil
}

// countFiles counts every profile's regular files into r.userFiles and
// returns the corpus' files and bytes.
func (r *runner) countFiles() (files int, bytes int64, err error) {
	if r.userFiles == nil {
		r.userFiles = map[string]int64{}
	}
	for _, u := range r.users {
		n, b, err := treeSize(filepath.Join(r.root, "home", u))
		if err != nil {
			return 0, 0, err
		}
		r.userFiles[u] = int64(n)
		files, bytes = files+n, bytes+b
	}
	return files, bytes, nil
}

// mutate applies corpus.MutateOrg in a child process; it returns why the
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
	info.Changes = nil // the report keeps the counts, not every path
	r.rep.Corpus.Mutated = &info
	_, bytes, err := r.countFiles()
	if err != nil {
		return err.Error()
	}
	r.logical = bytes
	return ""
}

// pinned is the execSpec that runs name with args, under `taskset -c cpus`
// when cpus is set.
func (r *runner) pinned(cpus, name string, args ...string) execSpec {
	if cpus == "" {
		return execSpec{name: name, args: args}
	}
	return execSpec{name: r.tools["taskset"], args: append([]string{"-c", cpus, name}, args...)}
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

// checkBin checks that bin, the smp binary an options struct names in its
// Bin field, is set and exists.
func checkBin(bin, options string) error {
	if bin == "" {
		return fmt.Errorf("bench: %s.Bin (the smp binary) is required", options)
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("bench: smp binary: %w", err)
	}
	return nil
}

// scratchDir makes a new scratch directory under parent (created if
// missing; "" is the temporary directory).
func scratchDir(parent, prefix string) (string, error) {
	if parent != "" {
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return "", err
		}
	}
	return os.MkdirTemp(parent, prefix)
}

// smpEnv is the environment of a run's children: this process's without
// the variables that would change what smp measures or which keys it
// uses (its store, its profiling, the key sources of the user's own
// stores) nor those starting with one of drop, and with a private user
// config directory under work, where smp init keeps the key files of the
// run's encrypted stores (not in the user's own, and removed with work).
func smpEnv(work string, drop ...string) ([]string, error) {
	cfg := filepath.Join(work, "config")
	if err := os.MkdirAll(cfg, 0o700); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	env := childEnv(append([]string{"SMP_STORE=", "SMP_CPUPROFILE=", "SMP_TRACE=", "SMP_KEY_FILE=", "SMP_PASSPHRASE_FILE=", "CREDENTIALS_DIRECTORY=", "XDG_CONFIG_HOME="}, drop...)...)
	return append(env, "XDG_CONFIG_HOME="+cfg), nil
}

// childEnv is this process's environment without the variables that
// start with one of drop, which would change what a child measures (its
// store, its profiling, a baseline's repository).
func childEnv(drop ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !slices.ContainsFunc(drop, func(p string) bool { return strings.HasPrefix(kv, p) }) {
			env = append(env, kv)
		}
	}
	return env
}
