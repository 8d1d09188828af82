package capture

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// aheadRecorder records the directories dirAhead opens.
type aheadRecorder struct {
	mu   sync.Mutex
	rels []string
}

func (r *aheadRecorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.rels)
}

func recordAhead(t *testing.T) *aheadRecorder {
	r := &aheadRecorder{}
	testHookAhead = func(rel string) {
		r.mu.Lock()
		r.rels = append(r.rels, rel)
		r.mu.Unlock()
	}
	t.Cleanup(func() { testHookAhead = nil })
	return r
}

// waitFor polls until ok holds or fails the test after 10 s.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	return len(ents)
}

// TestDirAheadStaysBeneath: the listing ahead enters every directory the
// walker will, and no symlink (to a directory outside the root or inside
// it), no directory the walker leaves out, nothing outside the root; it
// closes every descriptor when stopped.
func TestDirAheadStaysBeneath(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	for _, d := range []string{"a/b/c", "a/d", "e", "skip/x", filepath.Join("..", filepath.Base(outside), "o")} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "a/file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"link-out": outside, "a/link-in": filepath.Join(root, "e"), "a/link-rel": "../e"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	rec := recordAhead(t)
	before := countFDs(t)
	d := startDirAhead(root, func(rel string, _ *unix.Stat_t) bool { return rel != "skip" })
	if d == nil {
		t.Skip("no openat2 on this kernel: nothing is listed ahead")
	}
	d.seed("")
	want := []string{"", "a", "a/b", "a/b/c", "a/d", "e"}
	waitFor(t, "the listing ahead", func() bool { return len(rec.seen()) >= len(want) })
	time.Sleep(50 * time.Millisecond) // anything more it would list
	d.stop()
	got := rec.seen()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("listed ahead %q, want %q", got, want)
	}
	if after := countFDs(t); after > before {
		t.Errorf("%d descriptors open after stop, %d before", after, before)
	}
}

// TestDirAheadLead: the listing ahead runs at most dirAheadLead
// directories ahead of the walker, and goes on as the walker catches up.
func TestDirAheadLead(t *testing.T) {
	root := t.TempDir()
	const dirs = dirAheadLead + 100
	for i := range dirs {
		if err := os.Mkdir(filepath.Join(root, "d"+string(rune('a'+i%26))+string(rune('a'+i/26))), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rec := recordAhead(t)
	d := startDirAhead(root, func(string, *unix.Stat_t) bool { return true })
	if d == nil {
		t.Skip("no openat2 on this kernel: nothing is listed ahead")
	}
	defer d.stop()
	d.seed("")
	waitFor(t, "the lead", func() bool { return len(rec.seen()) >= dirAheadLead })
	time.Sleep(50 * time.Millisecond)
	if n := len(rec.seen()); n != dirAheadLead {
		t.Fatalf("%d directories listed with the walker at none, want %d (the lead)", n, dirAheadLead)
	}
	// In the walker's order: the root first (nothing else is known before
	// its listing), then the first directories by name; the listers run
	// in parallel, so within the lead the order they finish in is free.
	got := rec.seen()
	if got[0] != "" {
		t.Errorf("listed first %q, want the root", got[0])
	}
	var names []string
	for i := range dirs {
		names = append(names, "d"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	slices.Sort(names)
	rest := slices.Clone(got[1:])
	slices.Sort(rest)
	if want := names[:dirAheadLead-1]; !slices.Equal(rest, want) {
		t.Errorf("listed ahead %q..., want the first %d by name %q...", rest[:3], len(want), want[:3])
	}
	for range 100 + 1 {
		d.walkedOne()
	}
	waitFor(t, "the rest", func() bool { return len(rec.seen()) == dirs+1 })
}

// TestDataAheadReleases: reading ahead holds a file's directory only
// while it asks for the file; what it opened is held for the job's worker
// until taken or discarded, and names it cannot open (a symlink, one gone)
// hold nothing.
func TestDataAheadReleases(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), make([]byte, 3*dataAheadSpan/2), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := openDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := countFDs(t)
	h := newDirHandle(fd)
	a := startDataAhead()
	var jobs []*fileJob
	for _, name := range []string{"f", "link", "sub", "gone", "f"} {
		job := &fileJob{name: name}
		jobs = append(jobs, job)
		a.hint(h, job, dataAheadSpan)
	}
	empty := &fileJob{name: "f"}
	a.hint(h, empty, 0) // empty: nothing to read
	a.stop()
	if refs := h.refs.Load(); refs != 1 {
		t.Errorf("directory held %d times after the hints, want 1 (the walker's)", refs)
	}
	for i, want := range []bool{true, false, true, false, true} {
		if held := jobs[i].ahead.held; held != want {
			t.Errorf("%s: held ahead %v, want %v", jobs[i].name, held, want)
		}
	}
	if empty.ahead.held {
		t.Error("an empty file was opened ahead")
	}
	var st unix.Stat_t
	fdF, ok := jobs[0].ahead.take(&st)
	if !ok || st.Size != 3*dataAheadSpan/2 || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("take: ok %v, size %d, mode %o; want the open file and its fstat", ok, st.Size, st.Mode)
	}
	if _, again := jobs[0].ahead.take(&st); again {
		t.Error("a file opened ahead was taken twice")
	}
	if ok {
		unix.Close(fdF)
	}
	for _, job := range jobs {
		job.ahead.discard()
	}
	h.release()
	if after := countFDs(t); after >= before {
		t.Errorf("%d descriptors open after the hints and the directory were let go, %d before", after, before)
	}
}

// TestDataAheadAfterTake: once the worker took a job, reading ahead opens
// nothing more for it.
func TestDataAheadAfterTake(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := openDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	job := &fileJob{name: "f"}
	var st unix.Stat_t
	if _, ok := job.ahead.take(&st); ok {
		t.Fatal("took a file nothing opened")
	}
	job.ahead.open(fd, job, 4)
	if job.ahead.held {
		t.Error("opened ahead after the worker took the job")
	}
}

// TestDirAheadUnopenable: a directory the listing ahead cannot open is not
// counted against the lead, since the walker, failing too, never counts
// it walked.
func TestDirAheadUnopenable(t *testing.T) {
	root := t.TempDir()
	d := startDirAhead(root, func(string, *unix.Stat_t) bool { return true })
	if d == nil {
		t.Skip("no openat2 on this kernel: nothing is listed ahead")
	}
	defer d.stop()
	for i := range 10 {
		d.seed(fmt.Sprintf("gone%d", i))
	}
	waitFor(t, "the queue to drain", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.stack) == 0
	})
	time.Sleep(20 * time.Millisecond) // the last list call returns
	d.mu.Lock()
	listed := d.listed
	d.mu.Unlock()
	if listed != 0 {
		t.Errorf("%d unopenable directories counted as listed ahead, want 0", listed)
	}
}
