package bench

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"smp/bench/corpus"
	"smp/internal/seaweedtest"
)

// Environment:
//
//	SMP_BENCH_SIZE      tree size of the in-process benchmarks (default 512MiB)
//	SMP_BENCH_RSS_SIZE  tree size of BenchmarkCaptureRSS (default 0: skipped)
//	SMP_BENCH_SEED      generator seed (default 1)
//	SMP_BENCH_DIR       keep generated trees here and reuse them across runs
//	                    (default: a temporary directory removed at exit)
//
// Stores, restore targets and the smp binary always live in a temporary
// directory that TestMain removes.

func TestMain(m *testing.M) {
	if os.Getenv(launcherEnv) != "" {
		os.Exit(launcherMain())
	}
	cfg, err := isolateConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	code := m.Run()
	seaweedtest.StopShared()
	os.RemoveAll(cfg)
	if workDir != "" {
		os.RemoveAll(workDir)
	}
	os.Exit(code)
}

// isolateConfig gives this test process, and every smp it starts, a
// private user config directory, removed at exit: smp init keeps the key
// files of encrypted stores there, and a test that starts smp without
// smpEnv must not leave them in the real user's. The go command keeps
// reading the caller's go env file.
func isolateConfig() (string, error) {
	if os.Getenv("GOENV") == "" {
		if d, err := os.UserConfigDir(); err == nil {
			os.Setenv("GOENV", filepath.Join(d, "go", "env"))
		}
	}
	dir, err := os.MkdirTemp("", "smp-bench-config-")
	if err != nil {
		return "", err
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	return dir, nil
}

var (
	workOnce sync.Once
	workDir  string
	workErr  error
)

// work returns the per-process scratch directory.
func work(b testing.TB) string {
	workOnce.Do(func() { workDir, workErr = os.MkdirTemp("", "smp-bench-") })
	if workErr != nil {
		b.Fatal(workErr)
	}
	return workDir
}

func envSize(b testing.TB, name string, def int64) int64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := humanize.ParseBytes(s)
	if err != nil {
		b.Fatalf("%s=%q: %v", name, s, err)
	}
	return int64(n)
}

func benchSeed(b testing.TB) uint64 {
	s := os.Getenv("SMP_BENCH_SEED")
	if s == "" {
		return 1
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		b.Fatalf("SMP_BENCH_SEED=%q: %v", s, err)
	}
	return n
}

// tree is a generated source root: root/home/alice holds the generated
// files and, when copied, root/home/bob an identical copy (new inodes).
type tree struct {
	root  string
	size  int64
	ratio corpus.Ratio // also counts the files
}

func (t *tree) alice() string { return filepath.Join(t.root, "home", "alice") }
func (t *tree) bob() string   { return filepath.Join(t.root, "home", "bob") }

var (
	treesMu sync.Mutex
	trees   = map[string]*tree{}
)

// getTree generates (once per process, or once per SMP_BENCH_DIR) a tree of
// size bytes, with bob's copy when withCopy. Generating and copying leave
// the files in the page cache, so the benchmarks measure a warm cache:
// dropping caches needs root and /proc/sys/vm/drop_caches, which this
// machine does not offer. Reading the tree for the zstd ratio re-warms it
// when it was reused from SMP_BENCH_DIR.
func getTree(b testing.TB, size int64, withCopy bool) *tree {
	treesMu.Lock()
	defer treesMu.Unlock()
	seed := benchSeed(b)
	base := os.Getenv("SMP_BENCH_DIR")
	if base == "" {
		base = work(b)
	}
	name := fmt.Sprintf("tree-%d-s%d", size, seed)
	t := trees[name]
	if t == nil {
		t = &tree{root: filepath.Join(base, name), size: size}
		marker := filepath.Join(t.root, ".complete")
		if _, err := os.Stat(marker); err != nil {
			os.RemoveAll(t.root)
			start := time.Now()
			st, err := corpus.GenerateTree(t.alice(), size, seed)
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("generated %s: %s in %.1fs", t.alice(), st, time.Since(start).Seconds())
			if err := os.WriteFile(marker, []byte(st.String()+"\n"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		start := time.Now()
		var err error
		if t.ratio, err = corpus.MeasureRatio(t.alice(), 0); err != nil {
			b.Fatal(err)
		}
		b.Logf("tree %s: %d files, %s (measured in %.1fs; this read also warms the page cache)", t.alice(), t.ratio.Files, t.ratio, time.Since(start).Seconds())
		trees[name] = t
	}
	if withCopy {
		marker := filepath.Join(t.root, ".copied")
		if _, err := os.Stat(marker); err != nil {
			os.RemoveAll(t.bob())
			start := time.Now()
			if err := corpus.CopyTree(t.alice(), t.bob()); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(marker, nil, 0o644); err != nil {
				b.Fatal(err)
			}
			b.Logf("copied to %s in %.1fs", t.bob(), time.Since(start).Seconds())
		} else {
			warm(b, t.bob())
		}
	}
	return t
}

// warm reads every file under dir into the page cache.
func warm(b testing.TB, dir string) {
	if _, err := corpus.MeasureRatio(dir, 0); err != nil {
		b.Fatal(err)
	}
}

// usage is a snapshot of this process's CPU time and GC counters, and of
// the whole machine's busy CPU time.
type usage struct {
	wall    time.Time
	cpu     time.Duration
	machine time.Duration
	numGC   uint32
	pauseNs uint64
}

// machineBusy returns the CPU time all processes and the kernel have used
// since boot (the non-idle fields of /proc/stat's cpu line).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	var busy int64
	for i, f := range fields[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		if i != 3 && i != 4 && i < 8 { // skip idle, iowait; guest time is inside user
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

func tv(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }

func snapshot() usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{wall: time.Now(), cpu: tv(ru.Utime) + tv(ru.Stime), machine: machineBusy(), numGC: ms.NumGC, pauseNs: ms.PauseTotalNs}
}

// meter accumulates CPU time and GC work over the timed parts of a
// benchmark, to report alongside ns/op: with 2 cores, cpu-util near 2 means
// CPU bound, well below means waiting (I/O, fsync, a serial stage). Other
// processes on the machine slow wall time but not MB/cpu-s.
type meter struct {
	wall, cpu, machine time.Duration
	gcs                uint32
	pause              time.Duration
	start              usage
}

func (m *meter) begin() { m.start = snapshot() }

func (m *meter) end() {
	u := snapshot()
	m.wall += u.wall.Sub(m.start.wall)
	m.cpu += u.cpu - m.start.cpu
	m.machine += u.machine - m.start.machine
	m.gcs += u.numGC - m.start.numGC
	m.pause += time.Duration(u.pauseNs - m.start.pauseNs)
}

func (m *meter) report(b *testing.B, bytesPerOp int64) {
	n := float64(b.N)
	b.ReportMetric(m.cpu.Seconds()/n, "cpu-s/op")
	b.ReportMetric(m.cpu.Seconds()/m.wall.Seconds(), "cpu-util")
	b.ReportMetric(float64(bytesPerOp)*n/1e6/m.cpu.Seconds(), "MB/cpu-s")
	b.ReportMetric(float64(m.gcs)/n, "gc/op")
	// Cores used by everything else (other processes, kernel threads such
	// as writeback) while this ran: near 0 means the numbers are clean.
	b.ReportMetric(max(m.machine-m.cpu, 0).Seconds()/m.wall.Seconds(), "other-cpu")
}

// loadAvg returns the 1-minute load average, to show when other work
// competed for the 2 cores.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil || len(b) < 4 {
		return "?"
	}
	return string(b[:len(b)-1])
}

var (
	smpOnce sync.Once
	smpBin  string
	smpErr  error
)

// buildSMP builds cmd/smp once per process.
func buildSMP(b testing.TB) string {
	smpOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(corpus.GoRoot(), "bin", "go")
		}
		out := filepath.Join(work(b), "smp")
		cmd := exec.Command(goBin, "build", "-o", out, "smp/cmd/smp")
		// Build from the module root, also when the compiled test binary
		// runs elsewhere.
		if _, file, _, ok := runtime.Caller(0); ok {
			if _, err := os.Stat(filepath.Join(filepath.Dir(file), "..", "go.mod")); err == nil {
				cmd.Dir = filepath.Join(filepath.Dir(file), "..")
			}
		}
		if msg, err := cmd.CombinedOutput(); err != nil {
			smpErr = fmt.Errorf("go build smp/cmd/smp: %v\n%s", err, msg)
			return
		}
		smpBin = out
	})
	if smpErr != nil {
		b.Fatal(smpErr)
	}
	return smpBin
}

// cachedFraction returns the fraction of the bytes of the regular files
// under dir that are in the page cache (mincore). This machine's DAMON
// "pageout" scheme evicts pages not touched for about a minute, so a warm
// cache is checked rather than assumed.
func cachedFraction(b testing.TB, dir string) float64 {
	var total, resident int64
	page := int64(os.Getpagesize())
	var vec []byte
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || st.Size() == 0 {
			return err
		}
		m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return err
		}
		defer unix.Munmap(m)
		pages := (st.Size() + page - 1) / page
		if int64(cap(vec)) < pages {
			vec = make([]byte, pages)
		}
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			return e
		}
		for _, v := range vec[:pages] {
			if v&1 != 0 {
				resident++
			}
		}
		total += pages
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return float64(resident) / float64(max(total, 1))
}
