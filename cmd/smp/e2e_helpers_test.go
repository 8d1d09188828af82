package main

// Helpers for the end-to-end tests in e2e_test.go: they build the real smp
// binary once, run it as a child process and compare real directory trees.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"smp/internal/seaweedtest"
)

// smpBin is the smp binary built by TestMain, without the race detector:
// a child process gains nothing from the race detector of the test
// process, and a race-instrumented smp runs several times slower.
var smpBin string

// smpRaceBin is smp built with -race when this test binary is (a -race
// test run), else smpBin. The tests in raceBinTests run it, so the -race
// run also checks the product for races where its goroutines meet.
var smpRaceBin string

// raceBinTests are the top-level tests that run smpRaceBin: those where
// smp's own goroutines or processes race each other (a server taking
// many clients at once, parallel restore workers, gc against a capture
// and inside a server, two servers sharing a store, a capture cut off
// mid-upload and resumed), plus one local capture and restore round
// trip. The packages behind them also run their own tests under -race
// in-process; every other e2e test runs smpBin.
// TestE2ERaceBinTestsExist keeps the names true.
var raceBinTests = map[string]bool{
	"TestE2ERoundTrip":                      true,
	"TestE2EServeConcurrentClients":         true,
	"TestE2ERestoreParallelWalk":            true,
	"TestE2EServeAdminLimitsAndGC":          true,
	"TestE2ES3GCRace":                       true,
	"TestE2ES3TwoServers":                   true,
	"TestE2EServeResumesInterruptedCapture": true,
}

// smpPath is the binary test t runs: smpRaceBin for the tests in
// raceBinTests (and their subtests), smpBin for the others.
func smpPath(t testing.TB) string {
	top, _, _ := strings.Cut(t.Name(), "/")
	if raceBinTests[top] {
		return smpRaceBin
	}
	return smpBin
}

// smpRaceBuilt reports whether the smp that t runs is race-instrumented.
func smpRaceBuilt(t testing.TB) bool {
	return raceEnabled() && smpPath(t) == smpRaceBin
}

// binDir holds smpBin and smpRaceBin. It is world-readable so a test may run the binary
// under another uid.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "smp-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: chmod:", err)
		return 1
	}
	binDir = dir
	smpBin, smpRaceBin = filepath.Join(dir, "smp"), filepath.Join(dir, "smp")
	builds := [][]string{{"build", "-o", smpBin, "."}}
	if raceEnabled() {
		smpRaceBin = filepath.Join(dir, "smp-race")
		builds = append(builds, []string{"build", "-race", "-o", smpRaceBin, "."})
	}
	// The two builds share no compiled package (-race compiles every
	// package anew), so they run side by side.
	errs := make(chan error, len(builds))
	for _, args := range builds {
		go func() {
			cmd := exec.Command("go", args...)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				errs <- fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
				return
			}
			errs <- nil
		}()
	}
	failed := false
	for range builds {
		if err := <-errs; err != nil {
			fmt.Fprintln(os.Stderr, "e2e: build of smp failed:", err)
			failed = true
		}
	}
	if failed {
		return 1
	}
	if raceEnabled() && os.Getenv("GORACE") == "" {
		// Spare every race-built smp child the race detector's one-second
		// sleep at exit: races are reported when they happen, and the
		// sleep would dominate tests that run smp dozens of times.
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	defer seaweedtest.StopShared()
	cfg, err := isolateKeys()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(cfg)
	return m.Run()
}

// isolateKeys gives this test process, and so every smp it starts, a
// private user config directory: smp init makes encrypted stores and
// keeps their key files in $XDG_CONFIG_HOME/smp/keys, which must not be
// the real user's. The key sources of the caller's environment are
// dropped too, so no test opens a store with a key it did not make. The
// go command keeps reading the caller's go env file. It returns the
// directory, which the caller removes.
func isolateKeys() (string, error) {
	if os.Getenv("GOENV") == "" {
		if d, err := os.UserConfigDir(); err == nil {
			os.Setenv("GOENV", filepath.Join(d, "go", "env"))
		}
	}
	dir, err := os.MkdirTemp("", "smp-e2e-config-")
	if err != nil {
		return "", fmt.Errorf("config dir: %w", err)
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	for _, v := range []string{"SMP_KEY_FILE", "SMP_PASSPHRASE_FILE", "CREDENTIALS_DIRECTORY"} {
		os.Unsetenv(v)
	}
	return dir, nil
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// result is one finished smp invocation.
type result struct {
	args   []string
	code   int
	stdout string
	stderr string
}

func (r result) String() string {
	return fmt.Sprintf("smp %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// tokenWarning starts the line smp prints when --token is given on the
// command line; TestE2ETokenFile checks it.
const tokenWarning = "smp: warning: --token on the command line"

// stderrLines returns the non-empty lines of stderr, without the --token
// warning: most tests pass --token on the command line for brevity and
// count the lines their own case prints.
func (r result) stderrLines() []string {
	var out []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.TrimSpace(l) != "" && !strings.HasPrefix(l, tokenWarning) {
			out = append(out, l)
		}
	}
	return out
}

// runOpts tune one invocation.
type runOpts struct {
	env        []string            // extra KEY=VALUE entries
	credential *syscall.Credential // run as another user
	dir        string              // working directory ("" = the test's)
	stdin      string              // fed through a pipe
}

// childEnvs holds, per top-level test, the KEY=VALUE entries setChildEnv
// gave every smp the test starts.
var childEnvs sync.Map

// setChildEnv gives every smp that t and its subtests start the KEY=VALUE
// entries kv after those of earlier calls, as t.Setenv would, but leaves
// this process's environment alone, so t may run in parallel with other
// tests.
func setChildEnv(t *testing.T, kv ...string) {
	t.Helper()
	if strings.Contains(t.Name(), "/") {
		t.Fatal("setChildEnv is for top-level tests")
	}
	if old, ok := childEnvs.Load(t.Name()); ok {
		kv = append(append([]string{}, old.([]string)...), kv...)
	}
	childEnvs.Store(t.Name(), kv)
	t.Cleanup(func() { childEnvs.Delete(t.Name()) })
}

// childEnv is the environment of an smp that t starts: this process's
// without SMP_STORE, then what setChildEnv gave t's top-level test.
func childEnv(t testing.TB) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SMP_STORE=") {
			env = append(env, kv)
		}
	}
	top, _, _ := strings.Cut(t.Name(), "/")
	if kv, ok := childEnvs.Load(top); ok {
		env = append(env, kv.([]string)...)
	}
	return env
}

// smp runs the binary with args and returns its result. SMP_STORE from the
// test's own environment is never passed on.
func smp(t testing.TB, args ...string) result {
	t.Helper()
	return smpWith(t, runOpts{}, args...)
}

func smpWith(t testing.TB, o runOpts, args ...string) result {
	t.Helper()
	const timeout = 2 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, smpPath(t), args...)
	cmd.Env = append(childEnv(t), o.env...)
	cmd.Dir = o.dir
	if o.stdin != "" {
		cmd.Stdin = strings.NewReader(o.stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if o.credential != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.credential}
	}
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && exitErr.Exited():
		r.code = exitErr.ExitCode()
	case ctx.Err() != nil:
		t.Fatalf("smp %s: timed out after %v\n%s", strings.Join(args, " "), timeout, r)
	default:
		t.Fatalf("smp %s: %v\n%s", strings.Join(args, " "), err, r)
	}
	if strings.Contains(r.stderr, "WARNING: DATA RACE") {
		t.Errorf("data race in smp %s:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r
}

// mustSMP runs smp and fails the test unless it exits 0.
func mustSMP(t testing.TB, args ...string) result {
	t.Helper()
	r := smp(t, args...)
	if r.code != exitOK {
		t.Fatalf("want exit 0\n%s", r)
	}
	return r
}

// smpJSON runs smp (which must exit with code want) and decodes its stdout
// into v.
func smpJSON(t testing.TB, want int, v any, args ...string) result {
	t.Helper()
	r := smp(t, args...)
	if r.code != want {
		t.Fatalf("want exit %d\n%s", want, r)
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode JSON: %v\n%s", err, r)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value on stdout\n%s", r)
	}
	return r
}

// captureOut is capture --json.
type captureOut struct {
	Record         string   `json:"record"`
	Computer       string   `json:"computer"`
	Users          []string `json:"users"`
	Files          uint64   `json:"files"`
	Dirs           uint64   `json:"dirs"`
	Symlinks       uint64   `json:"symlinks"`
	Bytes          uint64   `json:"bytes"`
	NewBytes       uint64   `json:"new_bytes"`
	StoredBytes    uint64   `json:"stored_bytes"`
	UnchangedFiles uint64   `json:"unchanged_files"`
	Errors         uint64   `json:"errors"`
	Problems       []string `json:"problems"`
	Seconds        float64  `json:"seconds"`
}

// restoreOut is restore --json.
type restoreOut struct {
	Record   string   `json:"record"`
	Target   string   `json:"target"`
	Files    uint64   `json:"files"`
	Dirs     uint64   `json:"dirs"`
	Bytes    uint64   `json:"bytes"`
	Skipped  uint64   `json:"skipped"`
	Errors   uint64   `json:"errors"`
	Problems []string `json:"problems"`
}

// statsOut is stats --json.
type statsOut struct {
	Records      int     `json:"records"`
	LogicalBytes uint64  `json:"logical_bytes"`
	UniqueBytes  uint64  `json:"unique_bytes"`
	StoredBytes  uint64  `json:"stored_bytes"`
	Chunks       uint64  `json:"chunks"`
	DedupeRatio  float64 `json:"dedupe_ratio"`
}

// filesOut is files --json.
type filesOut struct {
	Record string `json:"record"`
	Files  []struct {
		Path   string `json:"path"`
		Type   string `json:"type"`
		Size   uint64 `json:"size"`
		Mode   string `json:"mode"`
		MTime  string `json:"mtime"`
		Target string `json:"target"`
	} `json:"files"`
}

// recordsOut is records --json.
type recordsOut struct {
	Records []struct {
		ID       string   `json:"id"`
		Computer string   `json:"computer"`
		Users    []string `json:"users"`
	} `json:"records"`
}

func (r recordsOut) ids() []string {
	var out []string
	for _, rec := range r.Records {
		out = append(out, rec.ID)
	}
	return out
}

// doCapture runs capture --json with args after the store and computer and
// requires exit code want.
func doCapture(t testing.TB, want int, store, computer string, args ...string) captureOut {
	t.Helper()
	var out captureOut
	smpJSON(t, want, &out, append([]string{"capture", "--store", store, "--computer", computer, "--hardlink", "never", "--json"}, args...)...)
	return out
}

// restoreJSON runs restore --json with args after the store.
func restoreJSON(t testing.TB, want int, store string, args ...string) (restoreOut, result) {
	t.Helper()
	var out restoreOut
	r := smpJSON(t, want, &out, append([]string{"restore", "--store", store, "--json"}, args...)...)
	return out, r
}

func stats(t testing.TB, store string) statsOut {
	t.Helper()
	var s statsOut
	smpJSON(t, exitOK, &s, "stats", "--store", store, "--json")
	return s
}

// filePaths lists a record's paths of the given type ("" for all).
func filePaths(t testing.TB, store, record, typ string) []string {
	t.Helper()
	var f filesOut
	smpJSON(t, exitOK, &f, "files", "--store", store, "--record", record, "--json")
	var out []string
	for _, e := range f.Files {
		if typ == "" || e.Type == typ {
			out = append(out, e.Path)
		}
	}
	sort.Strings(out)
	return out
}

// newStore initialises a store in a fresh temp dir.
func newStore(t testing.TB) string {
	t.Helper()
	s := filepath.Join(tmpDir(t), "store")
	mustSMP(t, "init", "--store", s)
	return s
}

// ---- building trees ----

// tmpDir is t.TempDir whose removal also works when a test left read-only
// directories in it (which stop a non-root user deleting their contents).
func tmpDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o700)
			}
			return nil
		})
	})
	return dir
}

// rnd returns n deterministic pseudo-random (incompressible) bytes.
func rnd(seed uint64, n int) []byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

func mkdirs(t testing.TB, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // the umask applied above
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lchtimes sets the mtime (and atime) of path without following a symlink.
func lchtimes(t testing.TB, path string, mt time.Time) {
	t.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatalf("set mtime of %s: %v", path, err)
	}
}

// stampTimes gives every entry below root (not root itself) a distinct past
// mtime with nanoseconds, directories last and deepest first so setting
// them is not undone.
func stampTimes(t testing.TB, root string) {
	t.Helper()
	var dirs, others []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		} else {
			others = append(others, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2019, 3, 4, 5, 6, 7, 0, time.UTC)
	i := 0
	next := func() time.Time {
		i++
		return base.Add(time.Duration(i)*(97*time.Hour+13*time.Minute) + time.Duration(i*123457+1))
	}
	for _, p := range others {
		lchtimes(t, p, next())
	}
	sort.SliceStable(dirs, func(a, b int) bool { return strings.Count(dirs[a], "/") > strings.Count(dirs[b], "/") })
	for _, p := range dirs {
		lchtimes(t, p, next())
	}
}

// goSource returns about n bytes of real, compressible text: Go source files
// from GOROOT concatenated (or generated text when GOROOT is unavailable).
func goSource(t testing.TB, n int) []byte {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	var buf bytes.Buffer
	if err == nil {
		src := filepath.Join(strings.TrimSpace(string(out)), "src")
		errStop := errors.New("enough")
		_ = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			buf.Write(b)
			if buf.Len() >= n {
				return errStop
			}
			return nil
		})
	}
	if buf.Len() < n {
		t.Logf("GOROOT sources short (%d bytes): padding with generated text", buf.Len())
		for i := 0; buf.Len() < n; i++ {
			fmt.Fprintf(&buf, "line %d: the quick brown fox jumps over the lazy dog %d times\n", i, i%97)
		}
	}
	return buf.Bytes()[:n]
}

// ---- xattrs ----

// setXattr sets a user xattr; it reports false when the filesystem does not
// support them.
func setXattr(t testing.TB, path, name string, value []byte) bool {
	t.Helper()
	err := unix.Setxattr(path, name, value, 0)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
		return false
	}
	if err != nil {
		t.Fatalf("setxattr %s %s: %v", path, name, err)
	}
	return true
}

// xattrs returns path's extended attributes (not following symlinks).
func xattrs(path string) (map[string]string, error) {
	size, err := unix.Llistxattr(path, nil)
	if errors.Is(err, unix.ENOTSUP) || size == 0 {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(path, buf)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		n, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", path, name, err)
		}
		v := make([]byte, n)
		n, err = unix.Lgetxattr(path, name, v)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", path, name, err)
		}
		out[name] = string(v[:n])
	}
	return out, nil
}

// ---- comparing trees ----

// compareOpts tune compareTrees.
type compareOpts struct {
	owners bool // compare uid and gid
	// policy: the restore ran under the default policy (no --allow-system),
	// which drops setuid bits, and setgid bits of non-directories.
	policy bool
}

// compareTrees checks that every entry below src exists below dst with the
// same type, permission and special mode bits, mtime (nanoseconds, symlinks
// by lstat), size, contents, symlink target, xattrs and optionally owner,
// that dst holds nothing more, and that names hard-linked together in src
// are hard-linked together in dst and vice versa. The roots themselves are
// not compared. It returns the relative paths compared.
func compareTrees(t testing.TB, src, dst string, o compareOpts) []string {
	t.Helper()
	srcPaths := listTree(t, src)
	dstPaths := listTree(t, dst)
	var diffs []string
	diff := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	for _, p := range dstPaths {
		if _, ok := slices.BinarySearch(srcPaths, p); !ok {
			diff("%q: in the restored tree only", p)
		}
	}
	srcLinks, dstLinks := map[[2]uint64]string{}, map[[2]uint64]string{}
	for _, rel := range srcPaths {
		a := filepath.Join(src, rel)
		b := filepath.Join(dst, rel)
		sa, err := os.Lstat(a)
		if err != nil {
			t.Fatal(err)
		}
		sb, err := os.Lstat(b)
		if err != nil {
			diff("%q: missing from the restored tree (%v)", rel, err)
			continue
		}
		if sa.Mode().Type() != sb.Mode().Type() {
			diff("%q: type %v, restored %v", rel, sa.Mode().Type(), sb.Mode().Type())
			continue
		}
		ka, kb := sa.Sys().(*syscall.Stat_t), sb.Sys().(*syscall.Stat_t)
		if sa.Mode()&fs.ModeSymlink == 0 {
			const bits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
			want := sa.Mode() & bits
			if o.policy {
				want &^= fs.ModeSetuid
				if !sa.IsDir() {
					want &^= fs.ModeSetgid
				}
			}
			if want != sb.Mode()&bits {
				diff("%q: mode %v, restored %v", rel, sa.Mode(), sb.Mode())
			}
		}
		if ka.Mtim.Nano() != kb.Mtim.Nano() {
			diff("%q: mtime %s, restored %s", rel, time.Unix(0, ka.Mtim.Nano()).UTC().Format(time.RFC3339Nano),
				time.Unix(0, kb.Mtim.Nano()).UTC().Format(time.RFC3339Nano))
		}
		if o.owners && (ka.Uid != kb.Uid || ka.Gid != kb.Gid) {
			diff("%q: owner %d:%d, restored %d:%d", rel, ka.Uid, ka.Gid, kb.Uid, kb.Gid)
		}
		switch {
		case sa.Mode()&fs.ModeSymlink != 0:
			ta, _ := os.Readlink(a)
			tb, err := os.Readlink(b)
			if err != nil || ta != tb {
				diff("%q: symlink target %q, restored %q (%v)", rel, ta, tb, err)
			}
			continue // symlinks carry no xattrs here
		case sa.Mode().IsRegular():
			if sa.Size() != sb.Size() {
				diff("%q: size %d, restored %d", rel, sa.Size(), sb.Size())
			} else if same, err := sameContents(a, b); err != nil || !same {
				diff("%q: contents differ (%v)", rel, err)
			}
			srcLinks[[2]uint64{uint64(ka.Dev), ka.Ino}] += rel + "\x00"
			dstLinks[[2]uint64{uint64(kb.Dev), kb.Ino}] += rel + "\x00"
		}
		xa, err := xattrs(a)
		if err != nil {
			t.Fatal(err)
		}
		xb, err := xattrs(b)
		if err != nil {
			diff("%q: xattrs: %v", rel, err)
		} else if fmt.Sprint(xa) != fmt.Sprint(xb) {
			diff("%q: xattrs %q, restored %q", rel, xa, xb)
		}
	}
	// Hard links: the groups of names sharing an inode must be identical.
	groups := func(m map[[2]uint64]string) []string {
		var g []string
		for _, names := range m {
			g = append(g, names)
		}
		sort.Strings(g)
		return g
	}
	if ga, gb := groups(srcLinks), groups(dstLinks); !slices.Equal(ga, gb) {
		diff("hard-link groups differ:\n  source   %q\n  restored %q", multiOnly(ga), multiOnly(gb))
	}
	if len(diffs) > 0 {
		if len(diffs) > 40 {
			diffs = append(diffs[:40], fmt.Sprintf("... and %d more", len(diffs)-40))
		}
		t.Errorf("restored tree %s differs from %s:\n  %s", dst, src, strings.Join(diffs, "\n  "))
	}
	return srcPaths
}

func multiOnly(groups []string) []string {
	var out []string
	for _, g := range groups {
		if strings.Count(g, "\x00") > 1 {
			out = append(out, g)
		}
	}
	return out
}

// listTree returns the sorted relative paths below root.
func listTree(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// regularFiles returns the relative paths of regular files below root.
func regularFiles(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	for _, p := range listTree(t, root) {
		st, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().IsRegular() {
			out = append(out, p)
		}
	}
	return out
}

// sameContents compares two files by streaming them.
func sameContents(a, b string) (bool, error) {
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
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == io.EOF || eb == io.ErrUnexpectedEOF, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}

// errRecorder collects Errorf calls instead of failing the test.
type errRecorder struct {
	testing.TB
	errs []string
}

func (r *errRecorder) Helper() {}
func (r *errRecorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestE2ECompareTreesDetects checks that compareTrees, on which the
// round-trip tests rely, notices each kind of difference.
func TestE2ECompareTreesDetects(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("cp"); err != nil {
		t.Skip("no cp to copy trees with")
	}
	src := filepath.Join(tmpDir(t), "src")
	writeFile(t, filepath.Join(src, "d/f"), []byte("hello"), 0o644)
	writeFile(t, filepath.Join(src, "d/f2"), []byte("world"), 0o644)
	writeFile(t, filepath.Join(src, "d/h1"), []byte("linked"), 0o644)
	if err := os.Link(filepath.Join(src, "d/h1"), filepath.Join(src, "d/h2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(src, "d/link")); err != nil {
		t.Fatal(err)
	}
	mkdirs(t, filepath.Join(src, "d/e"))
	if err := os.Chmod(filepath.Join(src, "d"), 0o775|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	haveXattrs := setXattr(t, filepath.Join(src, "d/f"), "user.a", []byte("1"))
	stampTimes(t, src)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		mutate func(dst string)
		want   string // in the report; "" for no report
	}{
		{"identical", func(string) {}, ""},
		{"mode", func(d string) { must(os.Chmod(filepath.Join(d, "d/f"), 0o600)) }, `"d/f": mode`},
		{"setgid", func(d string) { must(os.Chmod(filepath.Join(d, "d"), 0o775)) }, `"d": mode`},
		{"file mtime", func(d string) { lchtimes(t, filepath.Join(d, "d/f"), time.Unix(0, 1)) }, `"d/f": mtime`},
		{"dir mtime", func(d string) { lchtimes(t, filepath.Join(d, "d/e"), time.Unix(0, 1)) }, `"d/e": mtime`},
		{"symlink mtime", func(d string) { lchtimes(t, filepath.Join(d, "d/link"), time.Unix(0, 1)) }, `"d/link": mtime`},
		{"contents", func(d string) { must(os.WriteFile(filepath.Join(d, "d/f2"), []byte("World"), 0o644)) }, `"d/f2": contents differ`},
		{"size", func(d string) { must(os.WriteFile(filepath.Join(d, "d/f2"), []byte("world!"), 0o644)) }, `"d/f2": size`},
		{"symlink target", func(d string) {
			must(os.Remove(filepath.Join(d, "d/link")))
			must(os.Symlink("f2", filepath.Join(d, "d/link")))
		}, `"d/link": symlink target`},
		{"hard link split", func(d string) {
			must(os.Remove(filepath.Join(d, "d/h2")))
			must(os.WriteFile(filepath.Join(d, "d/h2"), []byte("linked"), 0o644))
		}, "hard-link groups differ"},
		{"extra", func(d string) { must(os.WriteFile(filepath.Join(d, "d/new"), nil, 0o644)) }, `"d/new": in the restored tree only`},
		{"missing", func(d string) { must(os.Remove(filepath.Join(d, "d/f2"))) }, `"d/f2": missing`},
		{"type", func(d string) {
			must(os.Remove(filepath.Join(d, "d/f2")))
			must(os.Mkdir(filepath.Join(d, "d/f2"), 0o755))
		}, `"d/f2": type`},
		{"xattr", func(d string) {
			if !haveXattrs {
				return
			}
			setXattr(t, filepath.Join(d, "d/f"), "user.a", []byte("2"))
		}, `"d/f": xattrs`},
		{"owner", func(d string) {
			if os.Geteuid() == 0 {
				must(os.Lchown(filepath.Join(d, "d/f"), 1234, 1234))
			}
		}, `"d/f": owner`},
	}
	for _, tc := range tests {
		dst := filepath.Join(tmpDir(t), "dst")
		if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
			t.Fatalf("cp -a: %v: %s", err, out)
		}
		tc.mutate(dst)
		rec := &errRecorder{TB: t}
		compareTrees(rec, src, dst, compareOpts{owners: true})
		report := strings.Join(rec.errs, "\n")
		switch {
		case tc.name == "xattr" && !haveXattrs, tc.name == "owner" && os.Geteuid() != 0:
			continue
		case tc.want == "" && report != "":
			t.Errorf("%s: unexpected report:\n%s", tc.name, report)
		case tc.want != "" && !strings.Contains(report, tc.want):
			t.Errorf("%s: report lacks %q:\n%s", tc.name, tc.want, report)
		}
	}
}
