package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size bytes (as root) and returns its path
// and a function that resizes it.
func mountTmpfs(t *testing.T, size string) (string, func(size string)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs for a full disk")
	}
	mnt := filepath.Join(tmpDir(t), "small")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): disk-full test skipped", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	return mnt, func(size string) {
		if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT, "size="+size); err != nil {
			t.Fatalf("resize tmpfs: %v", err)
		}
	}
}

// TestE2EDiskFullDuringCapture: a capture that fills the store's disk
// fails with a clear error, leaves the store consistent with every earlier
// record intact, and the next capture after space is freed succeeds.
func TestE2EDiskFullDuringCapture(t *testing.T) {
	t.Parallel()
	mnt, resize := mountTmpfs(t, "12m")
	store := filepath.Join(mnt, "store")
	mustSMP(t, "init", "--store", store)
	small, big := tmpDir(t), tmpDir(t)
	serveProfile(t, small, 41, 2)
	serveProfile(t, big, 42, 24)
	first := doCapture(t, exitOK, store, "PC01", "--root", small)

	r := smp(t, "capture", "--store", store, "--computer", "PC02", "--hardlink", "never", "--root", big)
	if r.code != exitError || !strings.Contains(r.stderr, "no space left on device") || !strings.Contains(r.stderr, "nothing of this capture was committed") || len(r.stderrLines()) != 1 {
		t.Fatalf("capture onto a full disk: want exit 1 and one line naming ENOSPC\n%s", r)
	}
	checkStoreAfterFault(t, store, first.Record, small)

	// Space freed: the same capture now completes.
	resize("96m")
	second := doCapture(t, exitOK, store, "PC02", "--root", big)
	dst := tmpDir(t)
	restoreJSON(t, exitOK, store, "--record", second.Record, "--root", dst, "--keep")
	compareTrees(t, big, dst, compareOpts{})
	mustSMP(t, "verify", "--store", store, "--read-data")
}

// TestE2EDiskFullOnServer: the same through smp serve: the client gets the
// server's reason, nothing is committed, and after space is freed the
// re-run sends only what did not fit.
func TestE2EDiskFullOnServer(t *testing.T) {
	t.Parallel()
	mnt, resize := mountTmpfs(t, "12m")
	store := filepath.Join(mnt, "store")
	mustSMP(t, "init", "--store", store)
	small, big := tmpDir(t), tmpDir(t)
	serveProfile(t, small, 43, 2)
	serveProfile(t, big, 44, 24)
	first := doCapture(t, exitOK, store, "PC01", "--root", small)
	func() {
		srv := launchServer(t, store)
		defer srv.stop(t)
		tok := newToken(t, store, "--computer", "PC02")
		r := smp(t, "capture", "--store", srv.url, "--token", tok, "--computer", "PC02", "--root", big)
		if r.code != exitError || !strings.Contains(r.stderr, "disk is full") {
			t.Fatalf("remote capture onto a full disk\n%s", r)
		}
	}()
	checkStoreAfterFault(t, store, first.Record, small)
	resize("96m")
	srv := startServer(t, store)
	tok := newToken(t, store, "--computer", "PC02")
	out := remoteCapture(t, exitOK, srv.url, tok, "PC02", "--root", big)
	if out.Held == 0 {
		t.Errorf("re-run after disk full sent everything again (%d bytes): what fit before was lost", out.Uploaded)
	}
	dst := tmpDir(t)
	restoreJSON(t, exitOK, srv.url, "--token", tok, "--computer", "PC02", "--root", dst, "--keep")
	compareTrees(t, big, dst, compareOpts{})
}

// checkStoreAfterFault: verify is clean, only the earlier record is live,
// it restores identical, and no temporary pack is left once opened again.
func checkStoreAfterFault(t *testing.T, store, record, src string) {
	t.Helper()
	if r := smp(t, "verify", "--store", store, "--read-data"); r.code != exitOK {
		t.Fatalf("verify after the fault:\n%s", r)
	}
	var recs recordsOut
	smpJSON(t, exitOK, &recs, "records", "--store", store, "--json")
	if ids := recs.ids(); len(ids) != 1 || ids[0] != record {
		t.Fatalf("records after the fault: %v, want only %s", ids, record)
	}
	dst := tmpDir(t)
	restoreJSON(t, exitOK, store, "--record", record, "--root", dst, "--keep")
	compareTrees(t, src, dst, compareOpts{})
	tmp, _ := os.ReadDir(filepath.Join(store, "packs", "tmp"))
	if len(tmp) != 0 {
		t.Fatalf("%d temporary packs left after the fault", len(tmp))
	}
}

// TestE2EFileChangingDuringCapture: a file rewritten in place while it is
// captured is either captured whole (one version) or reported; never a
// torn mix of versions.
//
// The rewriter writes a version piece by piece, from the start, so between
// two of its writes the file at rest holds the new version up to a point
// and the previous one after it. When the rewriter stalls there (the
// scheduler, dirty-page throttling) for longer than the capture's quiet
// window, the capture rightly stores the file as it then is: such a mix,
// matching a stall of the rewriter at its very boundary, is a true state of
// the file. Any other mix was read while a write went on: torn.
func TestE2EFileChangingDuringCapture(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	src := tmpDir(t)
	serveProfile(t, src, 45, 1)
	hot := filepath.Join(src, "home", "alice", "hot.bin")
	rw := &rewriter{path: hot, piece: 256 << 10, pieces: 24}
	rw.write(1)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := 2; !stop.Load(); n++ {
			rw.write(n)
			time.Sleep(time.Millisecond)
		}
	})
	var torn, reported, whole, atRest int
	for range 6 {
		var out captureOut
		from := time.Now()
		r := smp(t, "capture", "--store", store, "--computer", "PC01", "--hardlink", "never", "--full", "--root", src, "--json")
		to := time.Now()
		if (r.code != exitOK && r.code != exitPartial) || json.Unmarshal([]byte(r.stdout), &out) != nil {
			t.Fatalf("capture of a changing file:\n%s", r)
		}
		if out.Errors > 0 {
			reported++
			if !strings.Contains(strings.Join(out.Problems, "\n"), "changed while being read") {
				t.Fatalf("problem reported is not the change: %v", out.Problems)
			}
			continue
		}
		dst := tmpDir(t)
		restoreJSON(t, exitOK, store, "--record", out.Record, "--root", dst, "--keep")
		b, err := os.ReadFile(filepath.Join(dst, "home", "alice", "hot.bin"))
		if err != nil {
			t.Fatal(err)
		}
		switch stall, ok := rw.stallAt(b, from, to); {
		case len(b) == rw.piece*rw.pieces && bytes.Count(b, b[:1]) == len(b):
			whole++
		case ok:
			atRest++
			t.Logf("restored hot.bin as it was while the rewriter stalled at %s", stall)
		default:
			torn++
			t.Errorf("restored hot.bin mixes versions (%d bytes): %s", len(b), stall)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("6 captures of a file rewritten throughout: %d whole, %d reported, %d torn, %d as the rewriter left it stalled", whole, reported, torn, atRest)
}

// rewriter rewrites a file in place, version n in pieces of bytes
// versionByte(n), and remembers when each piece was written.
type rewriter struct {
	path          string
	piece, pieces int
	mu            sync.Mutex
	writes        map[[2]int][2]time.Time // {version, piece}: start and end of its write
}

// versionByte is the byte version n is written with: 1 to 255, round.
func versionByte(n int) byte { return byte((n-1)%255 + 1) }

func (w *rewriter) write(n int) {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	p := bytes.Repeat([]byte{versionByte(n)}, w.piece)
	for i := range w.pieces {
		start := time.Now()
		f.WriteAt(p, int64(i*w.piece))
		end := time.Now()
		w.mu.Lock()
		if w.writes == nil {
			w.writes = map[[2]int][2]time.Time{}
		}
		w.writes[[2]int{n, i}] = [2]time.Time{start, end}
		w.mu.Unlock()
	}
}

// stallMin is the shortest stall of the rewriter in which a capture can
// take the file as quiet: its quiet window (capture's racyWindow) less
// the lag of the kernel's coarse clock that stamps writes (a tick).
const stallMin = 10 * time.Millisecond

// stallAt reports whether b, the file as restored, is the new version up to
// some offset and the previous one after it, as the file may have been for
// at least stallMin while the rewriter stalled at that offset, overlapping
// [from, to]; else what b holds.
func (w *rewriter) stallAt(b []byte, from, to time.Time) (string, bool) {
	var runs []string
	var vals []byte
	var offs []int
	for i := 0; i < len(b); {
		j := i + 1
		for j < len(b) && b[j] == b[i] {
			j++
		}
		runs = append(runs, fmt.Sprintf("%d bytes of %d", j-i, b[i]))
		vals, offs = append(vals, b[i]), append(offs, i)
		i = j
	}
	layout := strings.Join(runs, ", ")
	if len(b) != w.piece*w.pieces || len(vals) != 2 || versionByte(int(vals[1])+1) != vals[0] {
		return layout, false
	}
	at := offs[1]
	k := at / w.piece
	w.mu.Lock()
	defer w.mu.Unlock()
	var longest time.Duration
	for key, times := range w.writes {
		n := key[0]
		if key[1] != k || versionByte(n) != vals[0] {
			continue
		}
		// The file held b from when the write before at finished copying
		// to when the one after at began: at most from the start of the
		// one to the end of the other (the writer may be held up inside
		// a WriteAt before or after its copy).
		stallFrom, stallTo := times[0], times[1] // at within piece k
		if at%w.piece == 0 {
			prev, ok := w.writes[[2]int{n, k - 1}]
			if !ok {
				continue
			}
			stallFrom = prev[0] // at between pieces k-1 and k
		}
		if stallFrom.Before(to) && stallTo.After(from) {
			longest = max(longest, stallTo.Sub(stallFrom))
		}
	}
	desc := fmt.Sprintf("%s (the longest the rewriter may have left it so during the capture: %v)", layout, longest)
	return desc, longest >= stallMin
}
