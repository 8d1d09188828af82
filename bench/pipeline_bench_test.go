package bench

// End-to-end benchmarks of the store against the targets, in process
// (repo, capture and restore packages used directly), on a generated tree
// of SMP_BENCH_SIZE bytes (default 512MiB):
//
//	go test ./bench -run XXX -bench 'Capture|Restore' -benchtime 1x -count 3
//	SMP_BENCH_SIZE=2GiB go test ./bench -run XXX -bench 'Capture|Restore' -benchtime 1x -timeout 1h
//	SMP_BENCH_RSS_SIZE=5GiB go test ./bench -run XXX -bench CaptureRSS -benchtime 1x -timeout 2h
//	SMP_BENCH_SWEEP=1 go test ./bench -run XXX -bench Sweep -benchtime 1x   # file workers 1-8
//
// Targets (2 cores): CaptureNew >= 250 MB/s, CaptureDuplicate >= 600 MB/s,
// Restore >= 400 MB/s, CaptureRSS peak-RSS-MiB <= 300 for a 5 GB tree.
// MB/s in `go test` output is 10^6 bytes per second.
//
// Page cache: the tree is generated (and bob's copy made) just before the
// first benchmark, so source files are read from memory; this machine
// cannot drop caches. Stores are on the same disk; pack commits and Badger
// writes fsync, so capture timings include real disk flushes. Restore does
// not fsync, so BenchmarkRestore measures writing into the page cache;
// BenchmarkRestoreSynced adds a syncfs at the end. syscall.Sync runs before
// each timed section so earlier writes are not flushed during it, and every
// iteration gets a new store or target directory: they are all deleted only
// when the process ends. Deleting files right before a restore slows it
// badly on this machine: its ext4 has no journal, and without one ext4
// skips (after reading their inode-table blocks) every inode deleted in the
// last 60 s, or 360 s while that block is dirty, when it allocates a new
// inode (recently_deleted in fs/ext4/ialloc.c). So run restore benchmarks
// in a process started at least 6 minutes after the last mass delete
// (including the previous run's cleanup), and let -count repeat them within
// one process. src-cached-% reports how much of the data the timed section
// reads (source tree, or the store's packs for restore) was in the page
// cache just before it: this machine's DAMON pageout evicts pages unused
// for about a minute, so warmth is measured, not assumed.
//
// Besides MB/s every benchmark reports cpu-s/op and cpu-util (CPU seconds
// of this process per wall second: 2 means both cores busy), MB/cpu-s
// (throughput per CPU second, much less sensitive to other load on the
// machine), gc/op and other-cpu: the cores that everything else on the
// machine (other processes, kernel writeback threads) used meanwhile, from
// /proc/stat. The machine is shared: trust runs with other-cpu near 0, and
// compare MB/cpu-s otherwise.
//
// Timed sections carry the pprof label bench=<name>, so with -cpuprofile
// `go tool pprof -tagfocus bench=capture-new` keeps only the capture.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"smp/capture"
	"smp/cas"
	"smp/internal/keytest"
	"smp/keys"
	"smp/repo"
	"smp/restore"
)

const defaultBenchSize = 512 << 20

func benchTree(b *testing.B, withCopy bool) *tree {
	return getTree(b, envSize(b, "SMP_BENCH_SIZE", defaultBenchSize), withCopy)
}

var dirSeq atomic.Int64

// freshDir returns a new path under the work directory.
func freshDir(b *testing.B, prefix string) string {
	return filepath.Join(work(b), prefix+"-"+strconv.FormatInt(dirSeq.Add(1), 10))
}

// initStore creates an empty store at dir.
func initStore(b *testing.B, dir string) { initStoreEnc(b, dir, 0) }

// encryptedStores maps the directory of each encrypted bench store to
// its keyring.
var encryptedStores sync.Map

// initStoreEnc creates a bench store: in clear for a zero c, else
// encrypted, its packs sealed with c.
func initStoreEnc(b *testing.B, dir string, c cas.Cipher) {
	o := repo.InitOptions{Params: cas.DefaultChunkerParams(), Cipher: c}
	if c != 0 {
		u := keytest.New(b)
		o.Keys = u
	}
	if _, err := repo.InitWith(dir, o); err != nil {
		b.Fatal(err)
	}
	if c != 0 {
		encryptedStores.Store(dir, o.Keys.Keyring())
	}
}

// openStore opens a bench store, with its keyring when it is encrypted.
func openStore(dir string) (*repo.Repo, error) {
	if kr, ok := encryptedStores.Load(dir); ok {
		return repo.OpenWith(dir, repo.OpenOptions{Keyring: kr.(*keys.Keyring)})
	}
	return repo.OpenWith(dir, repo.OpenOptions{Transfers: transfers})
}

// transfers are the Transfers openStore opens a store with (the S3
// benchmarks set them around a capture).
var transfers repo.Transfers

func captureOptions(t *tree, computer, user string) capture.Options {
	return capture.Options{
		Computer: computer,
		Root:     t.root,
		Paths:    []string{"home/" + user},
		Version:  "bench",
	}
}

// timedCapture opens the store, captures and closes it (what `smp capture`
// does) with the timer running (when m is not nil), under a pprof label.
func timedCapture(b *testing.B, m *meter, label, dir string, opts capture.Options) *capture.Result {
	syscall.Sync()
	var res *capture.Result
	var err error
	pprof.Do(context.Background(), pprof.Labels("bench", label), func(ctx context.Context) {
		if m != nil {
			m.begin()
			b.StartTimer()
		}
		var r *repo.Repo
		r, err = openStore(dir)
		if err != nil {
			return
		}
		res, err = capture.Run(ctx, r, opts)
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if m != nil {
			b.StopTimer()
			m.end()
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	return res
}

func checkRecord(b *testing.B, t *tree, res *capture.Result) {
	rec := res.Record
	if rec.Errors != 0 || rec.Bytes != uint64(t.size) || rec.Files != uint64(t.ratio.Files) {
		b.Fatalf("capture: %d errors, %d bytes in %d files; want 0 errors, %d bytes in %d files", rec.Errors, rec.Bytes, rec.Files, t.size, t.ratio.Files)
	}
}

// BenchmarkCaptureNew captures the tree into an empty store: every chunk is
// new, so it is read, chunked, hashed, compressed and written.
func BenchmarkCaptureNew(b *testing.B) { benchCaptureNew(b, 0) }

// BenchmarkCaptureNewEncrypted is BenchmarkCaptureNew into an encrypted
// store (sealed packs, encrypted index, keyed gear table).
func BenchmarkCaptureNewEncrypted(b *testing.B) { benchCaptureNewEnc(b, 0, cas.DefaultCipher) }

func benchCaptureNew(b *testing.B, workers int) { benchCaptureNewEnc(b, workers, 0) }

func benchCaptureNewEnc(b *testing.B, workers int, enc cas.Cipher) {
	b.StopTimer() // setup (generating the tree) is not timed
	t := benchTree(b, false)
	benchBytes(b, t)
	var m meter
	var stored uint64
	var cached float64
	for i := 0; i < b.N; i++ {
		dir := freshDir(b, "store-new")
		initStoreEnc(b, dir, enc)
		cached += cachedFraction(b, t.alice())
		opts := captureOptions(t, "A", "alice")
		opts.Workers = workers
		res := timedCapture(b, &m, "capture-new", dir, opts)
		checkRecord(b, t, res)
		if res.Record.NewBytes < uint64(t.size)*9/10 {
			b.Fatalf("only %d of %d bytes were new", res.Record.NewBytes, t.size)
		}
		stored += res.Record.StoredBytes
	}
	m.report(b, t.size)
	b.ReportMetric(100*cached/float64(b.N), "src-cached-%")
	b.ReportMetric(float64(t.size)*float64(b.N)/float64(stored), "store-ratio")
}

var (
	storeAMu   sync.Mutex
	storeAPath = map[string]string{}
)

// storeWithA returns a store that holds t captured as computer A
// (home/alice), created once per tree and process.
func storeWithA(b *testing.B, t *tree) string { return storeWithAEnc(b, t, 0) }

func storeWithAEnc(b *testing.B, t *tree, enc cas.Cipher) string {
	storeAMu.Lock()
	defer storeAMu.Unlock()
	key := t.root + "|" + strconv.Itoa(int(enc))
	if dir, ok := storeAPath[key]; ok {
		return dir
	}
	dir := freshDir(b, "store-a")
	initStoreEnc(b, dir, enc)
	res := timedCapture(b, nil, "setup", dir, captureOptions(t, "A", "alice"))
	checkRecord(b, t, res)
	storeAPath[key] = dir
	return dir
}

// benchBytes reports the tree's bytes per operation, and allocations, and
// logs the load average the benchmark starts under.
func benchBytes(b *testing.B, t *tree) {
	b.SetBytes(t.size)
	b.ReportAllocs()
	b.Logf("loadavg %s", loadAvg())
}

// benchWithStore stops the timer and prepares a benchmark on the tree (with
// bob's copy when withCopy) and a store holding alice's capture.
func benchWithStore(b *testing.B, withCopy bool) (*tree, string) {
	b.StopTimer()
	t := benchTree(b, withCopy)
	dir := storeWithA(b, t)
	benchBytes(b, t)
	return t, dir
}

// BenchmarkCaptureDuplicate captures home/bob, a copy of home/alice (new
// inodes, other path, computer B without a parent record), into a store
// that already holds alice: every file is read, chunked and hashed, every
// chunk is found in the index and nothing but trees and a record is stored.
func BenchmarkCaptureDuplicate(b *testing.B) {
	t, dir := benchWithStore(b, true)
	var m meter
	var cached float64
	for i := 0; i < b.N; i++ {
		cached += cachedFraction(b, t.bob())
		res := timedCapture(b, &m, "capture-dup", dir, captureOptions(t, "B", "bob"))
		checkRecord(b, t, res)
		if res.Record.NewBytes != 0 {
			b.Fatalf("duplicate capture stored %d new bytes", res.Record.NewBytes)
		}
	}
	m.report(b, t.size)
	b.ReportMetric(100*cached/float64(b.N), "src-cached-%")
}

func benchRestore(b *testing.B, label string, synced bool, workers int) {
	benchRestoreEnc(b, label, synced, workers, 0)
}

func benchRestoreEnc(b *testing.B, label string, synced bool, workers int, enc cas.Cipher) {
	b.StopTimer()
	t := benchTree(b, false)
	dir := storeWithAEnc(b, t, enc)
	benchBytes(b, t)
	var m meter
	var cached float64
	for i := 0; i < b.N; i++ {
		target := freshDir(b, "restore")
		r, err := openStore(dir)
		if err != nil {
			b.Fatal(err)
		}
		rec, err := r.FindRecord("", "A")
		if err != nil {
			b.Fatal(err)
		}
		syscall.Sync()
		cached += cachedFraction(b, filepath.Join(dir, "packs"))
		var res *restore.Result
		pprof.Do(context.Background(), pprof.Labels("bench", label), func(ctx context.Context) {
			m.begin()
			b.StartTimer()
			res, err = restore.Run(ctx, r, rec.Record, restore.Options{Target: target, Workers: workers})
			if err == nil && synced {
				err = syncfs(target)
			}
			b.StopTimer()
			m.end()
		})
		r.Close()
		if err != nil {
			b.Fatal(err)
		}
		if res.Errors != 0 || res.Bytes != uint64(t.size) || res.Files != uint64(t.ratio.Files) {
			b.Fatalf("restore: %d errors, %d bytes in %d files; want 0, %d in %d", res.Errors, res.Bytes, res.Files, t.size, t.ratio.Files)
		}
	}
	m.report(b, t.size)
	b.ReportMetric(100*cached/float64(b.N), "src-cached-%")
}

func syncfs(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// BenchmarkRestore restores A's record into an empty directory. The
// restored files are left in the page cache (restore does not fsync).
func BenchmarkRestore(b *testing.B) { benchRestore(b, "restore", false, 0) }

// BenchmarkRestoreSynced is BenchmarkRestore including a syncfs of the
// target at the end: the time to have the files on disk.
func BenchmarkRestoreSynced(b *testing.B) { benchRestore(b, "restore-synced", true, 0) }

// BenchmarkRestoreEncrypted is BenchmarkRestore from an encrypted store
// (packs sealed with cas.DefaultCipher, as smp init makes them).
func BenchmarkRestoreEncrypted(b *testing.B) {
	benchRestoreEnc(b, "restore", false, 0, cas.DefaultCipher)
}

// BenchmarkRestoreEncryptedXChaCha is BenchmarkRestoreEncrypted from a
// store whose packs XChaCha20-Poly1305 seals (format version 2, as smp
// made encrypted stores before XAES-256-GCM).
func BenchmarkRestoreEncryptedXChaCha(b *testing.B) {
	benchRestoreEnc(b, "restore", false, 0, cas.CipherXChaCha20Poly1305)
}

// BenchmarkSweep runs CaptureNew and Restore with 1, 2, 4 and 8 file
// workers (the default is 2 x GOMAXPROCS), in one process so that no
// cleanup runs in between. Skipped unless SMP_BENCH_SWEEP is set.
func BenchmarkSweep(b *testing.B) {
	if os.Getenv("SMP_BENCH_SWEEP") == "" {
		b.Skip("set SMP_BENCH_SWEEP=1 to run")
	}
	for _, w := range []int{1, 2, 4, 8} {
		b.Run("restore-workers="+strconv.Itoa(w), func(b *testing.B) { benchRestore(b, "restore", false, w) })
	}
	for _, w := range []int{1, 2, 4, 8} {
		b.Run("capture-new-workers="+strconv.Itoa(w), func(b *testing.B) { benchCaptureNew(b, w) })
	}
}

// BenchmarkCaptureRSS runs the real smp binary (`smp capture`) on a tree of
// SMP_BENCH_RSS_SIZE bytes (skipped when unset) into an empty store and
// reports the child's peak RSS (getrusage ru_maxrss), plus the peaks of its
// anonymous (Go heap, stacks) and file-backed (executable, Badger's mmapped
// tables and vlog) resident memory sampled from /proc every 10ms. GOGC,
// GOMEMLIMIT and GODEBUG are passed through to the child from the
// environment.
//
// smp is started by a small launcher (this test binary re-executed, see
// launcherMain), not by the benchmark process itself: Go starts children
// with vfork semantics (CLONE_VM), and Linux charges the parent's peak RSS
// to the child's ru_maxrss at exec, so a child of this process (which holds
// the generator's corpus, ~300 MiB) would report at least that much.
func BenchmarkCaptureRSS(b *testing.B) {
	size := envSize(b, "SMP_BENCH_RSS_SIZE", 0)
	if size == 0 {
		b.Skip("set SMP_BENCH_RSS_SIZE (e.g. 5GiB) to run")
	}
	b.StopTimer()
	bin := buildSMP(b)
	t := getTree(b, size, false)
	usageFile := filepath.Join(work(b), "rss-usage.json")
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(t.size)
	b.Logf("loadavg %s", loadAvg())
	env, err := smpEnv(work(b)) // the store's key file stays under work
	if err != nil {
		b.Fatal(err)
	}
	var peak childUsage
	var cpu, wall, machine time.Duration
	var cached float64
	for i := 0; i < b.N; i++ {
		store := freshDir(b, "store-rss")
		initCmd := exec.Command(bin, initArgs(store, true)...)
		initCmd.Env = env
		if out, err := initCmd.CombinedOutput(); err != nil {
			b.Fatalf("smp init: %v\n%s", err, out)
		}
		syscall.Sync()
		cached += cachedFraction(b, t.alice())
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(self, bin, "capture", "--store", store, "--computer", "rss", "--hardlink", "never", "--root", t.root, "--json", "home/alice")
		cmd.Env = append(slices.Clip(env), launcherEnv+"="+usageFile)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start, busy := time.Now(), machineBusy()
		b.StartTimer()
		err := cmd.Run()
		b.StopTimer()
		wall += time.Since(start)
		machine += machineBusy() - busy
		if err != nil {
			b.Fatalf("smp capture: %v\n%s", err, stderr.Bytes())
		}
		var res struct {
			Files, Bytes uint64
			Errors       uint64
			Seconds      float64
		}
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			b.Fatalf("smp capture output: %v\n%s", err, stdout.Bytes())
		}
		if res.Errors != 0 || res.Bytes != uint64(t.size) {
			b.Fatalf("smp capture: %d errors, %d bytes; want 0 and %d", res.Errors, res.Bytes, t.size)
		}
		raw, err := os.ReadFile(usageFile)
		if err != nil {
			b.Fatal(err)
		}
		var u childUsage
		if err := json.Unmarshal(raw, &u); err != nil {
			b.Fatal(err)
		}
		peak.MaxRSS = max(peak.MaxRSS, u.MaxRSS)
		peak.Anon = max(peak.Anon, u.Anon)
		peak.File = max(peak.File, u.File)
		peak.HWM = max(peak.HWM, u.HWM)
		cpu += u.CPU
		b.Logf("smp capture: %d files, %.1f MiB in %.1fs; ru_maxrss %.0f MiB, sampled VmHWM %.0f MiB, RssAnon %.0f MiB, RssFile %.0f MiB",
			res.Files, float64(res.Bytes)/(1<<20), res.Seconds, kib(u.MaxRSS), kib(u.HWM), kib(u.Anon), kib(u.File))
	}
	b.ReportMetric(kib(peak.MaxRSS), "peak-RSS-MiB")
	b.ReportMetric(kib(peak.Anon), "peak-RssAnon-MiB")
	b.ReportMetric(kib(peak.File), "peak-RssFile-MiB")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpu-util")
	b.ReportMetric(float64(t.size)*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
	b.ReportMetric(100*cached/float64(b.N), "src-cached-%")
	b.ReportMetric(max(machine-cpu, 0).Seconds()/wall.Seconds(), "other-cpu")
}

func kib(n int64) float64 { return float64(n) / 1024 }

// launcherEnv, when set, makes the test binary a launcher: it runs its
// arguments as a command, samples the command's memory, and writes a
// childUsage as JSON to the file the variable names.
const launcherEnv = "SMP_BENCH_LAUNCHER_OUT"

// childUsage is what the launcher reports, memory in KiB.
type childUsage struct {
	MaxRSS int64         // ru_maxrss of the command
	HWM    int64         // last sampled VmHWM
	Anon   int64         // peak sampled RssAnon
	File   int64         // peak sampled RssFile
	CPU    time.Duration // user + system
}

func launcherMain() int {
	out := os.Getenv(launcherEnv)
	if len(os.Args) < 2 {
		return 2
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, launcherEnv+"=") })
	if err := cmd.Start(); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
	}
	done := make(chan struct{})
	sampled := make(chan childUsage)
	go func() { sampled <- samplePeak(cmd.Process.Pid, done) }()
	err := cmd.Wait()
	close(done)
	u := <-sampled
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.MaxRSS = ru.Maxrss
	}
	u.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if b, jerr := json.Marshal(u); jerr == nil {
		_ = os.WriteFile(out, b, 0o644)
	}
	if err != nil {
		return max(cmd.ProcessState.ExitCode(), 1)
	}
	return 0
}

// samplePeak polls /proc/pid/status until done is closed.
func samplePeak(pid int, done <-chan struct{}) childUsage {
	var u childUsage
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				k, v, ok := strings.Cut(line, ":")
				if !ok {
					continue
				}
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				switch k {
				case "RssAnon":
					u.Anon = max(u.Anon, n)
				case "RssFile":
					u.File = max(u.File, n)
				case "VmHWM":
					u.HWM = max(u.HWM, n)
				}
			}
		}
		select {
		case <-done:
			return u
		case <-tick.C:
		}
	}
}
