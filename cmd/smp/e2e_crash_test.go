package main

// Crash safety (issue 7): a seeded, randomised SIGKILL harness on the real
// binary. Each scenario measures how long the uninterrupted operation takes,
// then kills it (or the server under it) at delays spread from 0 to that
// time, and checks after every kill that the store verifies with
// --read-data, that every committed record restores byte for byte, that no
// partial record became live and that a re-run finishes the job.
//
// SMP_CRASH_POINTS sets the kills per scenario (default 3; 2 under -race,
// as CI runs it);
// SMP_CRASH_SEED replays a campaign's delays.
// The full campaign:
//
//	SMP_CRASH_POINTS=50 go test ./cmd/smp -run Crash -v -timeout 60m

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashPoints is the number of kills per scenario.
func crashPoints(t *testing.T) int {
	t.Helper()
	s := os.Getenv("SMP_CRASH_POINTS")
	if s == "" && raceEnabled() {
		// The -race run (CI) shares the machine with every package's
		// race-instrumented tests: two points keep it short.
		return 2
	}
	if s == "" {
		return 3
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("SMP_CRASH_POINTS=%q: want a positive number", s)
	}
	return n
}

// crashRand returns the scenario's PRNG and logs its seed.
func crashRand(t *testing.T) (*rand.Rand, uint64) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SMP_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SMP_CRASH_SEED=%q: want an unsigned number", s)
		}
		seed = v
	}
	t.Logf("seed %d (replay the delays with SMP_CRASH_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seed
}

// killPlan spreads n delays over [0, total]: one uniformly drawn in each of n
// equal slices, in random order.
func killPlan(rng *rand.Rand, n int, total time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range n {
		out[i] = time.Duration((float64(i) + rng.Float64()) / float64(n) * float64(total))
	}
	rng.Shuffle(n, func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// crashTally is what a scenario logs at the end.
type crashTally struct {
	kills        int   // SIGKILLs that hit a running process
	late         int   // kills drawn after the process had already exited
	beforeCommit int   // killed before its record was committed
	afterCommit  int   // killed after its record was committed
	tmpLeft      int   // kills that left packs/tmp/*.tmp behind (all removed by the next open)
	records      int   // record restores compared with their source
	bytes        int64 // file bytes compared
}

func (c *crashTally) log(t *testing.T, seed uint64, what string) {
	commit := ""
	if c.beforeCommit+c.afterCommit > 0 {
		commit = fmt.Sprintf(" (%d before the record's commit, %d after)", c.beforeCommit, c.afterCommit)
	}
	t.Logf("RESULT %s: seed %d: %d kill points: %d SIGKILLs while the operation ran%s, %d landed after it had finished; %d kills left temporary packs, none survived the next open; %d record restores compared, %d bytes compared, 0 bytes lost",
		what, seed, c.kills+c.late, c.kills, commit, c.late, c.tmpLeft, c.records, c.bytes)
}

// ---- child processes that can be killed ----

// proc is an smp child process.
type proc struct {
	args           []string
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	start          time.Time
}

func startSMP(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{args: args, cmd: exec.Command(smpPath(t), args...)}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SMP_STORE=") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.start = time.Now()
	return p
}

// kill sends SIGKILL (a no-op when the process already exited).
func (p *proc) kill() { _ = p.cmd.Process.Signal(syscall.SIGKILL) }

// wait returns the result (code -1 when killed by a signal), whether it
// was killed and how long it ran.
func (p *proc) wait(t *testing.T) (result, bool, time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(3 * time.Minute):
		p.kill()
		<-done
		t.Fatalf("smp %s: still running after 3 minutes\nstderr:\n%s", strings.Join(p.args, " "), p.stderr.String())
	}
	elapsed := time.Since(p.start)
	r := result{args: p.args, stdout: p.stdout.String(), stderr: p.stderr.String()}
	if strings.Contains(r.stderr, "WARNING: DATA RACE") {
		t.Errorf("data race in smp %s:\n%s", strings.Join(p.args, " "), r.stderr)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return r, false, elapsed
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.code = -1
			return r, true, elapsed
		}
		r.code = ee.ExitCode()
		return r, false, elapsed
	default:
		t.Fatalf("smp %s: %v", strings.Join(p.args, " "), err)
		return r, false, elapsed
	}
}

// crashServer is an `smp serve` the test may SIGKILL (startServer requires
// a clean SIGTERM exit at cleanup, which a killed server cannot give).
type crashServer struct {
	*testServer
	exited bool
}

func startCrashServer(t *testing.T, store string) *crashServer {
	t.Helper()
	cs := &crashServer{testServer: launchServer(t, store)}
	t.Cleanup(func() {
		if !cs.exited {
			_ = cs.cmd.Process.Kill()
			_ = cs.cmd.Wait()
		}
	})
	return cs
}

// kill SIGKILLs the server and reaps it.
func (s *crashServer) kill() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.exited = true
}

// stop requires a clean exit on SIGTERM.
func (s *crashServer) stop(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		s.exited = true
		if err != nil {
			t.Fatalf("smp serve did not stop cleanly on SIGTERM: %v\n%s", err, s.logText())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("smp serve did not stop within 90 s of SIGTERM\n%s", s.logText())
	}
	if strings.Contains(s.logText(), "WARNING: DATA RACE") {
		t.Errorf("data race in smp serve:\n%s", s.logText())
	}
}

var (
	ackedBlobs = regexp.MustCompile(`path=/v1/captures/[0-9a-f]+/blobs status=200 .*bytes_in=(\d+)`)
	commitOK   = regexp.MustCompile(`path=/v1/captures/[0-9a-f]+/commit status=200 `)
)

// ackedBytes sums the upload bodies the server answered 200 in log.
func ackedBytes(log string) int64 {
	var n int64
	for _, m := range ackedBlobs.FindAllStringSubmatch(log, -1) {
		v, _ := strconv.ParseInt(m[1], 10, 64)
		n += v
	}
	return n
}

// ---- trees and stores ----

// crashScale sizes the trees and the store. The full size is the one the
// campaign runs; under -race (CI's run, sharing the machine with every
// package's race-instrumented tests) trees are an eighth of it (and
// chunks and packs smaller, so many chunks and pack commits still
// happen), so that run stays short.
type crashScale struct {
	mib      int    // a "MiB" of tree data
	small    int    // percentage of the small-file counts
	chunkAvg string // smp init --chunk-avg
	packSize int64  // config.json pack_size
}

func crashSize() crashScale {
	if raceEnabled() {
		return crashScale{mib: 128 << 10, small: 25, chunkAvg: "64KiB", packSize: 1 << 20}
	}
	return crashScale{mib: 1 << 20, small: 100, chunkAvg: "1MiB", packSize: 2 << 20}
}

// MiB returns n "MiB" of the scale in bytes.
func (c crashScale) MiB(n int) int { return n * c.mib }

// files scales a small-file count.
func (c crashScale) files(n int) int { return max(1, n*c.small/100) }

// crashOldTree writes a small committed profile under root/home/NAME; shared
// is a file every profile holds, so later captures deduplicate against it.
func crashOldTree(t *testing.T, root, name string, seed uint64, shared []byte) {
	t.Helper()
	home := filepath.Join(root, "home", name)
	sz := crashSize()
	for i := range 2 {
		writeFile(t, filepath.Join(home, "docs", fmt.Sprintf("r%d.bin", i)), rnd(seed+uint64(i), sz.MiB(1)), 0o644)
	}
	writeFile(t, filepath.Join(home, "shared.bin"), shared, 0o644)
	crashSmallFiles(t, filepath.Join(home, "small"), seed, sz.files(60))
	if err := os.Symlink("docs", filepath.Join(home, "link")); err != nil {
		t.Fatal(err)
	}
	stampTimes(t, root)
}

// crashText is source text for small files (tests here run one at a time).
var crashText []byte

// crashSmallFiles writes n files of 0 to 12 KiB, half source text, half
// random, spread over nested directories.
func crashSmallFiles(t *testing.T, dir string, seed uint64, n int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 17))
	if crashText == nil {
		crashText = goSource(t, 256<<10)
	}
	text := crashText
	for i := range n {
		size := r.IntN(12 << 10)
		var b []byte
		if i%2 == 0 {
			off := r.IntN(len(text) - size)
			b = text[off : off+size]
		} else {
			b = rnd(seed<<20+uint64(i), size)
		}
		mode := os.FileMode(0o644)
		if i%7 == 0 {
			mode = 0o600
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("d%02d", i%23), fmt.Sprintf("e%d", i%3), fmt.Sprintf("f%04d.txt", i)), b, mode)
	}
}

// crashNewTree writes the tree the killed captures take: several MiB of
// random files, many small files, a ~20 MiB file and a copy of shared
// (see crashScale for -race).
func crashNewTree(t *testing.T, root string, seed uint64, shared []byte) {
	t.Helper()
	home := filepath.Join(root, "home", "carol")
	sz := crashSize()
	for i := range 6 {
		writeFile(t, filepath.Join(home, "random", fmt.Sprintf("r%d.bin", i)), rnd(seed+uint64(i), sz.MiB(1)), 0o644)
	}
	crashSmallFiles(t, filepath.Join(home, "small"), seed+100, sz.files(400))
	writeFile(t, filepath.Join(home, "big.img"), rnd(seed+200, sz.MiB(20)), 0o640)
	writeFile(t, filepath.Join(home, "shared.bin"), shared, 0o644)
	writeFile(t, filepath.Join(home, "empty"), nil, 0o644)
	if err := os.Symlink("random/r0.bin", filepath.Join(home, "link")); err != nil {
		t.Fatal(err)
	}
	stampTimes(t, root)
}

// treeBytes sums the sizes of the regular files below root.
func treeBytes(t *testing.T, root string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newCrashStore initialises a store with small packs (2 MiB, see
// crashScale), so an operation commits many packs and a kill can land
// between any two of them.
func newCrashStore(t *testing.T, dir string) string {
	t.Helper()
	sz := crashSize()
	mustSMP(t, "init", "--store", dir, "--chunk-avg", sz.chunkAvg)
	path := filepath.Join(dir, "config.json")
	var m map[string]any
	if err := json.Unmarshal([]byte(readFile(t, path)), &m); err != nil {
		t.Fatal(err)
	}
	m["pack_size"] = sz.packSize
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// copyStore copies a store that no process holds.
func copyStore(t *testing.T, src, dst string) string {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v: %s", src, dst, err, out)
	}
	return dst
}

func tmpPacks(t *testing.T, store string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(store, "packs", "tmp", "*.tmp"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// recordComputers lists a store's records: ID -> computer.
func recordComputers(t *testing.T, store string, extra ...string) map[string]string {
	t.Helper()
	var recs recordsOut
	smpJSON(t, exitOK, &recs, append([]string{"records", "--store", store, "--json"}, extra...)...)
	out := map[string]string{}
	for _, r := range recs.Records {
		out[r.ID] = r.Computer
	}
	return out
}

// crashCheck holds what every check after a kill needs.
type crashCheck struct {
	t       *testing.T
	point   string           // names the kill in failure messages
	scratch string           // restores go below it
	sizes   map[string]int64 // source dir -> file bytes
	tally   *crashTally
}

// openedClean counts the temporary packs a kill left, lists the records
// (which opens the store) and requires that no temporary pack survived.
//
// The first open after a kill must succeed, also when the kill left a
// zero-length memtable or value log file (TestCrashEmptyIndexLogs).
func (c crashCheck) openedClean(store string) map[string]string {
	t := c.t
	t.Helper()
	if len(tmpPacks(t, store)) > 0 {
		c.tally.tmpLeft++
	}
	empty := emptyIndexFiles(t, store)
	r := smp(t, "records", "--store", store, "--json")
	if r.code != exitOK {
		t.Fatalf("%s: the first open after the kill failed (zero-length index files before it: %q)\n%s", c.point, empty, r)
	}
	var recs recordsOut
	if err := json.Unmarshal([]byte(r.stdout), &recs); err != nil {
		t.Fatalf("%s: records --json: %v\n%s", c.point, err, r)
	}
	if left := tmpPacks(t, store); len(left) > 0 {
		t.Fatalf("%s: temporary packs survived the next open: %q", c.point, left)
	}
	out := map[string]string{}
	for _, rec := range recs.Records {
		out[rec.ID] = rec.Computer
	}
	return out
}

// emptyIndexFiles lists zero-length Badger memtable and value-log files.
func emptyIndexFiles(t *testing.T, store string) []string {
	t.Helper()
	var out []string
	for _, pat := range []string{"*.mem", "*.vlog"} {
		m, err := filepath.Glob(filepath.Join(store, "index", pat))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			if st, err := os.Stat(p); err == nil && st.Size() == 0 {
				out = append(out, filepath.Base(p))
			}
		}
	}
	return out
}

// newRecords compares the records after a kill with the live set before
// it: none may be lost; it returns the new ones.
func (c crashCheck) newRecords(recs map[string]string, live map[string]string) []string {
	c.t.Helper()
	for id := range live {
		if _, ok := recs[id]; !ok {
			c.t.Fatalf("%s: committed record %s is gone; records now %v", c.point, id, recs)
		}
	}
	var added []string
	for id := range recs {
		if _, ok := live[id]; !ok {
			added = append(added, id)
		}
	}
	slices.Sort(added)
	return added
}

// verify requires smp verify --read-data to exit 0 on a local store.
func (c crashCheck) verify(store string) {
	c.t.Helper()
	if r := smp(c.t, "verify", "--store", store, "--read-data"); r.code != exitOK {
		c.t.Fatalf("%s: verify --read-data after the kill:\n%s", c.point, r)
	}
}

// restore restores record id (with --keep: no retention side effects)
// from store and compares it with src byte for byte.
func (c crashCheck) restore(store, id, src string, extra ...string) {
	t := c.t
	t.Helper()
	dst, err := os.MkdirTemp(c.scratch, "restore-")
	if err != nil {
		t.Fatal(err)
	}
	res, r := restoreJSON(t, exitOK, store, append([]string{"--record", id, "--root", dst, "--keep"}, extra...)...)
	if res.Errors != 0 {
		t.Fatalf("%s: restore of %s reported errors:\n%s", c.point, id, r)
	}
	compareTrees(t, src, dst, compareOpts{})
	if t.Failed() {
		t.Fatalf("%s: record %s does not restore identical to %s (differences above)", c.point, id, src)
	}
	n, ok := c.sizes[src]
	if !ok {
		n = treeBytes(t, src)
		c.sizes[src] = n
	}
	c.tally.records++
	c.tally.bytes += n
	if err := os.RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
}

// restoreAll checks every live record (ID -> source dir).
func (c crashCheck) restoreAll(store string, live map[string]string, extra ...string) {
	c.t.Helper()
	ids := make([]string, 0, len(live))
	for id := range live {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		c.restore(store, id, live[id], extra...)
	}
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// crashBase builds a store holding two committed records (their sources
// kept) and the tree the scenario's captures take.
func crashBase(t *testing.T, dir string) (store string, live map[string]string, newSrc string) {
	t.Helper()
	shared := rnd(777, crashSize().MiB(1))
	store = newCrashStore(t, filepath.Join(dir, "base-store"))
	live = map[string]string{}
	for i, name := range []string{"alice", "bob"} {
		src := filepath.Join(dir, "old-"+name)
		crashOldTree(t, src, name, uint64(1000*(i+1)), shared)
		out := doCapture(t, exitOK, store, "old"+strconv.Itoa(i), "--root", src, "home")
		live[out.Record] = src
	}
	newSrc = filepath.Join(dir, "new")
	crashNewTree(t, newSrc, 5000, shared)
	return store, live, newSrc
}

// ---- the test ----

// crashFixture is the store and trees the capture scenarios share.
type crashFixture struct {
	store        string            // holds two committed records; no process holds it
	live         map[string]string // its records: ID -> source tree
	newSrc       string            // the tree the killed captures take
	token, admin string            // client token of computer pcnew, admin token
}

func (f crashFixture) remoteArgs(url string) []string {
	return []string{"capture", "--store", url, "--token", f.token, "--computer", "pcnew", "--json", "--root", f.newSrc, "home"}
}

// TestCrash kills smp with SIGKILL at random points of a local capture, a
// remote capture (client or server killed) and gc. The four scenarios run
// in parallel, each measuring its own uninterrupted run first, so every
// kill delay is drawn against the load it lands in.
func TestCrash(t *testing.T) {
	t.Parallel()
	n := crashPoints(t)
	dir := tmpDir(t)
	var f crashFixture
	f.store, f.live, f.newSrc = crashBase(t, dir)
	f.token = newToken(t, f.store, "--computer", "pcnew")
	f.admin = newToken(t, f.store, "--role", "admin")
	gcStore, gcLive := crashGCBase(t, filepath.Join(dir, "gc"))
	t.Logf("%d kill points per scenario; capture tree %d bytes; gc store: %+v", n, treeBytes(t, f.newSrc), stats(t, gcStore))
	t.Run("LocalCapture", func(t *testing.T) { t.Parallel(); crashLocalCapture(t, n, f) })
	t.Run("RemoteKillClient", func(t *testing.T) { t.Parallel(); crashRemoteKillClient(t, n, f) })
	t.Run("RemoteKillServer", func(t *testing.T) { t.Parallel(); crashRemoteKillServer(t, n, f) })
	t.Run("GC", func(t *testing.T) { t.Parallel(); crashGC(t, n, gcStore, gcLive) })
}

// TestCrashEmptyIndexLogs makes deterministic what the random kills hit
// now and then: a SIGKILL between Badger creating the next memtable or
// value log file and sizing it (about 1% of kills within the first 120 ms
// of any smp command that opens a store writable) leaves index/NNNNN.mem
// or index/NNNNNN.vlog zero bytes long. Every record is intact, and the
// next command must open the store on its first try.
func TestCrashEmptyIndexLogs(t *testing.T) {
	t.Parallel()
	crashPoints(t)
	for _, name := range []string{"00001.mem", "000002.vlog"} {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join(tmpDir(t), "src")
			crashOldTree(t, src, "alice", 1, rnd(2, 1000))
			store := newStore(t)
			out := doCapture(t, exitOK, store, "pc", "--root", src, "home")
			if m, _ := filepath.Glob(filepath.Join(store, "index", "*.mem")); len(m) > 0 {
				t.Fatalf("a cleanly closed index holds memtable files %q", m)
			}
			next := filepath.Join(store, "index", name)
			if _, err := os.Stat(next); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s is not the next file Badger creates: %v", name, err)
			}
			// What the kill leaves: the next file, created, never sized.
			writeFile(t, next, nil, 0o644)
			for _, cmd := range [][]string{{"gc", "--store", store}, {"records", "--store", store}} {
				if r := smp(t, cmd...); r.code != exitOK {
					t.Fatalf("open after a kill left a zero-length %s:\n%s", name, r)
				}
			}
			dst := filepath.Join(tmpDir(t), "dst")
			restoreJSON(t, exitOK, store, "--record", out.Record, "--root", dst, "--keep")
			compareTrees(t, src, dst, compareOpts{})
		})
	}
}

// ---- scenario 1: local capture ----

func crashLocalCapture(t *testing.T, n int, base crashFixture) {
	rng, seed := crashRand(t)
	dir := tmpDir(t)
	live, newSrc := base.live, base.newSrc
	captureArgs := func(store string) []string {
		return []string{"capture", "--store", store, "--computer", "pcnew", "--hardlink", "never", "--json", "--root", newSrc, "home"}
	}
	tally := &crashTally{}
	sizes := map[string]int64{}

	// One uninterrupted capture sets the range of the delays.
	ref := copyStore(t, base.store, filepath.Join(dir, "ref-store"))
	r, killed, total := startSMP(t, captureArgs(ref)...).wait(t)
	if killed || r.code != exitOK {
		t.Fatalf("uninterrupted capture:\n%s", r)
	}
	if err := os.RemoveAll(ref); err != nil {
		t.Fatal(err)
	}
	t.Logf("uninterrupted capture of %d bytes: %v; %d kill points over [0, %v]", treeBytes(t, newSrc), total.Round(time.Millisecond), n, total.Round(time.Millisecond))

	for i, delay := range killPlan(rng, n, total) {
		pointDir, err := os.MkdirTemp(dir, "point-")
		if err != nil {
			t.Fatal(err)
		}
		c := crashCheck{t: t, point: fmt.Sprintf("kill %d/%d (seed %d, after %v)", i+1, n, seed, delay), scratch: pointDir, sizes: sizes, tally: tally}
		store := copyStore(t, base.store, filepath.Join(pointDir, "store"))
		p := startSMP(t, captureArgs(store)...)
		time.Sleep(delay)
		p.kill()
		r, killed, _ := p.wait(t)
		recs := c.openedClean(store)
		added := c.newRecords(recs, live)
		now := cloneMap(live)
		state := ""
		switch {
		case !killed && r.code != exitOK:
			t.Fatalf("%s: capture exited by itself with a failure:\n%s", c.point, r)
		case !killed:
			tally.late++
			state = "capture had finished"
			if len(added) != 1 {
				t.Fatalf("%s: finished capture left records %v", c.point, added)
			}
		case len(added) == 0:
			tally.kills++
			tally.beforeCommit++
			state = "before the commit: no record"
		case len(added) == 1:
			tally.kills++
			tally.afterCommit++
			state = "after the commit: record " + added[0][:12]
		default:
			t.Fatalf("%s: killed capture left %d new records: %v", c.point, len(added), added)
		}
		for _, id := range added {
			if recs[id] != "pcnew" {
				t.Fatalf("%s: new record %s of computer %q", c.point, id, recs[id])
			}
			now[id] = newSrc
		}
		c.verify(store)
		c.restoreAll(store, now)

		// The re-run completes and restores identical.
		out := doCapture(t, exitOK, store, "pcnew", "--root", newSrc, "home")
		c.restore(store, out.Record, newSrc)
		t.Logf("%s: %s; re-run %s", c.point, state, out.Record[:12])
		if err := os.RemoveAll(pointDir); err != nil {
			t.Fatal(err)
		}
	}
	tally.log(t, seed, "local capture")
}

// ---- scenario 2: remote capture through smp serve ----

// crashRemoteRef runs one uninterrupted remote capture on a fresh copy: its
// duration sets the range of the delays, its upload the bytes a run must
// send.
func crashRemoteRef(t *testing.T, dir string, base crashFixture, n int) (time.Duration, remoteCaptureOut) {
	t.Helper()
	ref := copyStore(t, base.store, filepath.Join(dir, "ref-store"))
	srv := startCrashServer(t, ref)
	r, killed, total := startSMP(t, base.remoteArgs(srv.url)...).wait(t)
	if killed || r.code != exitOK {
		t.Fatalf("uninterrupted remote capture:\n%s", r)
	}
	var full remoteCaptureOut
	if err := json.Unmarshal([]byte(r.stdout), &full); err != nil {
		t.Fatalf("capture output: %v\n%s", err, r)
	}
	srv.stop(t)
	if err := os.RemoveAll(ref); err != nil {
		t.Fatal(err)
	}
	t.Logf("uninterrupted remote capture: %v, %d bytes uploaded; %d kill points over [0, %v]", total.Round(time.Millisecond), full.Uploaded, n, total.Round(time.Millisecond))
	return total, full
}

func crashRemoteKillClient(t *testing.T, n int, base crashFixture) {
	dir := tmpDir(t)
	live, newSrc, tok, admin := base.live, base.newSrc, base.token, base.admin
	total, full := crashRemoteRef(t, dir, base, n)
	sizes := map[string]int64{}
	rng, seed := crashRand(t)
	tally := &crashTally{}
	for i, delay := range killPlan(rng, n, total) {
		pointDir, err := os.MkdirTemp(dir, "point-")
		if err != nil {
			t.Fatal(err)
		}
		c := crashCheck{t: t, point: fmt.Sprintf("client kill %d/%d (seed %d, after %v)", i+1, n, seed, delay), scratch: pointDir, sizes: sizes, tally: tally}
		store := copyStore(t, base.store, filepath.Join(pointDir, "store"))
		srv := startCrashServer(t, store)
		p := startSMP(t, base.remoteArgs(srv.url)...)
		time.Sleep(delay)
		p.kill()
		r, killed, _ := p.wait(t)
		time.Sleep(200 * time.Millisecond) // let requests cut by the kill finish on the server
		log := srv.logText()
		acked, committed := ackedBytes(log), commitOK.MatchString(log)
		recs := recordComputers(t, srv.url, "--token", admin)
		added := c.newRecords(recs, live)
		// A record appears only if the commit went through; the
		// server may have finished it after the client died.
		if len(added) > 1 || (committed && len(added) != 1) {
			t.Fatalf("%s: commit answered: %v, but %d new records: %v\nserver log:\n%s", c.point, committed, len(added), added, log)
		}
		for _, id := range added {
			if recs[id] != "pcnew" {
				t.Fatalf("%s: new record %s of computer %q", c.point, id, recs[id])
			}
		}
		state := ""
		switch {
		case !killed && r.code != exitOK:
			t.Fatalf("%s: capture exited by itself with a failure:\n%s", c.point, r)
		case !killed:
			tally.late++
			state = "capture had finished"
		case len(added) == 1:
			tally.kills++
			tally.afterCommit++
			state = "after the commit"
			if !committed {
				state += " (the commit request was cut, the record is live)"
			}
		default:
			tally.kills++
			tally.beforeCommit++
			state = "before the commit"
		}
		now := cloneMap(live)
		for _, id := range added {
			now[id] = newSrc
		}

		// The re-run sends at most what the server had not acknowledged.
		out := remoteCapture(t, exitOK, srv.url, tok, "pcnew", "--root", newSrc, "home")
		if out.Uploaded > full.Uploaded-acked {
			t.Fatalf("%s: re-run uploaded %d bytes; the full run sent %d and the server had acknowledged %d", c.point, out.Uploaded, full.Uploaded, acked)
		}
		now[out.Record] = newSrc
		srv.stop(t)

		// The store on disk: clean, every record restores.
		recs = c.openedClean(store)
		if len(recs) != len(now) {
			t.Fatalf("%s: %d records on disk, want %d: %v", c.point, len(recs), len(now), recs)
		}
		c.verify(store)
		c.restoreAll(store, now)
		t.Logf("%s: %s; %d of %d bytes acknowledged; re-run sent %d", c.point, state, acked, full.Uploaded, out.Uploaded)
		if err := os.RemoveAll(pointDir); err != nil {
			t.Fatal(err)
		}
	}
	tally.log(t, seed, "remote capture, client killed")
}

func crashRemoteKillServer(t *testing.T, n int, base crashFixture) {
	dir := tmpDir(t)
	live, newSrc, tok := base.live, base.newSrc, base.token
	total, full := crashRemoteRef(t, dir, base, n)
	sizes := map[string]int64{}
	rng, seed := crashRand(t)
	tally := &crashTally{}
	clientErrs := map[string]int{}
	for i, delay := range killPlan(rng, n, total) {
		pointDir, err := os.MkdirTemp(dir, "point-")
		if err != nil {
			t.Fatal(err)
		}
		c := crashCheck{t: t, point: fmt.Sprintf("server kill %d/%d (seed %d, after %v)", i+1, n, seed, delay), scratch: pointDir, sizes: sizes, tally: tally}
		store := copyStore(t, base.store, filepath.Join(pointDir, "store"))
		srv := startCrashServer(t, store)
		p := startSMP(t, base.remoteArgs(srv.url)...)
		time.Sleep(delay)
		srv.kill()
		r, killed, _ := p.wait(t)
		log := srv.logText()
		acked := ackedBytes(log)
		if killed {
			t.Fatalf("%s: the client died of a signal:\n%s", c.point, r)
		}
		// The client fails with one clear line, or had finished.
		state := ""
		switch r.code {
		case exitOK:
			if !commitOK.MatchString(log) {
				t.Fatalf("%s: client exited 0 but no commit was answered:\n%s\nserver log:\n%s", c.point, r, log)
			}
			tally.late++
			state = "capture had finished"
		case exitError:
			lines := r.stderrLines()
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "smp capture: ") || !strings.Contains(lines[0], srv.url) {
				t.Fatalf("%s: want one error line naming the SMP from the client:\n%s", c.point, r)
			}
			clientErrs[crashErrClass(lines[0])]++
			tally.kills++
		default:
			t.Fatalf("%s: client exit %d, want 1 (or 0 if it had finished):\n%s", c.point, r.code, r)
		}

		// The store, the server stopped: clean, records restore.
		recs := c.openedClean(store)
		added := c.newRecords(recs, live)
		now := cloneMap(live)
		switch {
		case len(added) > 1:
			t.Fatalf("%s: %d new records: %v", c.point, len(added), added)
		case len(added) == 1:
			if recs[added[0]] != "pcnew" {
				t.Fatalf("%s: new record %s of computer %q", c.point, added[0], recs[added[0]])
			}
			now[added[0]] = newSrc
			if r.code != exitOK {
				tally.afterCommit++
				state = "after the commit (client not told)"
			}
		case r.code == exitOK:
			t.Fatalf("%s: the client was told record committed, but the store has none new", c.point)
		default:
			tally.beforeCommit++
			state = "before the commit"
		}
		c.verify(store)
		c.restoreAll(store, now)

		// Restarted on the same store, the re-run completes, sending at
		// most what was not acknowledged before the kill.
		srv = startCrashServer(t, store)
		out := remoteCapture(t, exitOK, srv.url, tok, "pcnew", "--root", newSrc, "home")
		if out.Uploaded > full.Uploaded-acked {
			t.Fatalf("%s: re-run uploaded %d bytes; the full run sent %d and the killed server had acknowledged %d", c.point, out.Uploaded, full.Uploaded, acked)
		}
		srv.stop(t)
		c.restore(store, out.Record, newSrc)
		t.Logf("%s: %s; client: %s; %d bytes acknowledged; re-run sent %d", c.point, state, strings.TrimSpace(r.stderr), acked, out.Uploaded)
		if err := os.RemoveAll(pointDir); err != nil {
			t.Fatal(err)
		}
	}
	tally.log(t, seed, "remote capture, server killed")
	t.Logf("client errors by kind: %v", clientErrs)
}

// crashErrClass names the kind of a client's error line for the summary.
func crashErrClass(line string) string {
	for _, k := range []string{"connection refused", "connection reset", "EOF", "broken pipe"} {
		if strings.Contains(line, k) {
			return k
		}
	}
	return "other"
}

// ---- scenario 3: gc ----

func crashGC(t *testing.T, n int, base string, live map[string]string) {
	rng, seed := crashRand(t)
	dir := tmpDir(t)
	gcArgs := func(store string) []string {
		return []string{"gc", "--store", store, "--grace", "0", "--repack-below", "1", "--json"}
	}
	tally := &crashTally{}
	sizes := map[string]int64{}

	// A clean gc on an identical store: its duration sets the range of the
	// delays, its result is what every interrupted store must end up as.
	ref := copyStore(t, base, filepath.Join(dir, "ref-store"))
	r, killed, total := startSMP(t, gcArgs(ref)...).wait(t)
	if killed || r.code != exitOK {
		t.Fatalf("uninterrupted gc:\n%s", r)
	}
	var refGC gcOut
	if err := json.Unmarshal([]byte(r.stdout), &refGC); err != nil {
		t.Fatalf("gc output: %v\n%s", err, r)
	}
	want := stats(t, ref)
	if refGC.PacksRewritten == 0 || refGC.PacksDeleted == 0 {
		t.Fatalf("the base store gives gc too little to do: %+v", refGC)
	}
	if err := os.RemoveAll(ref); err != nil {
		t.Fatal(err)
	}
	t.Logf("uninterrupted gc: %v (%d packs deleted, %d rewritten, %d blobs removed); after it: %+v; %d kill points over [0, %v]",
		total.Round(time.Millisecond), refGC.PacksDeleted, refGC.PacksRewritten, refGC.BlobsRemoved, want, n, total.Round(time.Millisecond))

	storedDiffer := 0
	for i, delay := range killPlan(rng, n, total) {
		pointDir, err := os.MkdirTemp(dir, "point-")
		if err != nil {
			t.Fatal(err)
		}
		c := crashCheck{t: t, point: fmt.Sprintf("gc kill %d/%d (seed %d, after %v)", i+1, n, seed, delay), scratch: pointDir, sizes: sizes, tally: tally}
		store := copyStore(t, base, filepath.Join(pointDir, "store"))
		// A third of the points kill the re-run of a killed gc as well.
		delays := []time.Duration{delay}
		if rng.IntN(3) == 0 {
			delays = append(delays, time.Duration(rng.Int64N(int64(total)+1)))
		}
		var states []string
		for _, d := range delays {
			p := startSMP(t, gcArgs(store)...)
			time.Sleep(d)
			p.kill()
			r, killed, _ := p.wait(t)
			switch {
			case !killed && r.code != exitOK:
				t.Fatalf("%s: gc exited by itself with a failure:\n%s", c.point, r)
			case !killed:
				tally.late++
				states = append(states, fmt.Sprintf("%v: gc had finished", d))
			default:
				tally.kills++
				states = append(states, fmt.Sprintf("%v: killed", d))
			}
			recs := c.openedClean(store)
			if added := c.newRecords(recs, live); len(added) > 0 {
				t.Fatalf("%s: records came back after gc: %v", c.point, added)
			}
			c.verify(store)
			c.restoreAll(store, live)
		}

		// A final uninterrupted gc ends where a clean one does.
		var final gcOut
		smpJSON(t, exitOK, &final, gcArgs(store)...)
		got := stats(t, store)
		if got.Chunks != want.Chunks || got.UniqueBytes != want.UniqueBytes || got.Records != want.Records || got.LogicalBytes != want.LogicalBytes {
			t.Fatalf("%s: after the final gc: %+v; a clean gc gives %+v", c.point, got, want)
		}
		if got.StoredBytes != want.StoredBytes {
			storedDiffer++
			t.Logf("%s: stored bytes %d after the final gc, a clean gc leaves %d", c.point, got.StoredBytes, want.StoredBytes)
		}
		c.verify(store)
		c.restoreAll(store, live)
		t.Logf("%s: %s; final gc: %d packs deleted, %d rewritten, %d blobs removed", c.point, strings.Join(states, ", "), final.PacksDeleted, final.PacksRewritten, final.BlobsRemoved)
		if err := os.RemoveAll(pointDir); err != nil {
			t.Fatal(err)
		}
	}
	tally.log(t, seed, "gc")
	t.Logf("gc: the final store matched a clean gc's chunks and unique bytes every time; stored bytes differed %d times", storedDiffer)
}

// crashGCBase builds a store with garbage mixed into live packs: two
// records removed, two live (their sources kept).
func crashGCBase(t *testing.T, dir string) (string, map[string]string) {
	t.Helper()
	store := newCrashStore(t, filepath.Join(dir, "base-store"))
	sz := crashSize()
	shared := rnd(900, sz.MiB(2))
	live := map[string]string{}

	// Computer a, twice: the first record, removed later, shares most of
	// its chunks with the second.
	a := filepath.Join(dir, "a")
	home := filepath.Join(a, "home", "ann")
	for i := range 4 {
		writeFile(t, filepath.Join(home, fmt.Sprintf("own%d.bin", i)), rnd(910+uint64(i), sz.MiB(1)), 0o644)
	}
	writeFile(t, filepath.Join(home, "shared.bin"), shared, 0o644)
	big := rnd(920, sz.MiB(8))
	writeFile(t, filepath.Join(home, "big.img"), big, 0o644)
	crashSmallFiles(t, filepath.Join(home, "small"), 930, sz.files(120))
	stampTimes(t, a)
	a1 := doCapture(t, exitOK, store, "a", "--root", a, "home")
	writeFile(t, filepath.Join(home, "own2.bin"), rnd(940, sz.MiB(1)), 0o644)
	if err := os.Remove(filepath.Join(home, "own3.bin")); err != nil {
		t.Fatal(err)
	}
	copy(big[sz.MiB(3):], rnd(941, sz.MiB(1)))
	writeFile(t, filepath.Join(home, "big.img"), big, 0o644)
	crashSmallFiles(t, filepath.Join(home, "small", "d05"), 950, sz.files(30))
	stampTimes(t, a)
	a2 := doCapture(t, exitOK, store, "a", "--root", a, "home")
	live[a2.Record] = a

	b := filepath.Join(dir, "b")
	for i := range 3 {
		writeFile(t, filepath.Join(b, "home", "bea", fmt.Sprintf("own%d.bin", i)), rnd(960+uint64(i), sz.MiB(1)), 0o600)
	}
	writeFile(t, filepath.Join(b, "home", "bea", "shared.bin"), shared, 0o644)
	crashSmallFiles(t, filepath.Join(b, "home", "bea", "small"), 970, sz.files(80))
	stampTimes(t, b)
	b1 := doCapture(t, exitOK, store, "b", "--root", b, "home")
	live[b1.Record] = b

	c := filepath.Join(dir, "c")
	for i := range 5 {
		writeFile(t, filepath.Join(c, "home", "cy", fmt.Sprintf("own%d.bin", i)), rnd(980+uint64(i), sz.MiB(1)), 0o644)
	}
	crashSmallFiles(t, filepath.Join(c, "home", "cy", "small"), 990, sz.files(60))
	stampTimes(t, c)
	c1 := doCapture(t, exitOK, store, "c", "--root", c, "home")

	mustSMP(t, "rm", "--store", store, "--record", a1.Record)
	mustSMP(t, "rm", "--store", store, "--record", c1.Record)
	return store, live
}
