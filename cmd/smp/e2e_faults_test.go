package main

import (
	"bytes"
	"encoding/json"
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
func TestE2EFileChangingDuringCapture(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	src := tmpDir(t)
	serveProfile(t, src, 45, 1)
	hot := filepath.Join(src, "home", "alice", "hot.bin")
	const piece, pieces = 256 << 10, 24
	write := func(gen byte) {
		f, err := os.OpenFile(hot, os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return
		}
		defer f.Close()
		p := bytes.Repeat([]byte{gen}, piece)
		for i := range pieces {
			f.WriteAt(p, int64(i*piece))
		}
	}
	write(1)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for gen := byte(2); !stop.Load(); gen++ {
			if gen == 0 {
				gen = 1
			}
			write(gen)
			time.Sleep(time.Millisecond)
		}
	})
	var torn, reported, whole int
	for range 6 {
		var out captureOut
		r := smp(t, "capture", "--store", store, "--computer", "PC01", "--hardlink", "never", "--full", "--root", src, "--json")
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
		if len(b) != piece*pieces || bytes.Count(b, b[:1]) != len(b) {
			torn++
			t.Errorf("restored hot.bin mixes versions (%d bytes)", len(b))
		} else {
			whole++
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("6 captures of a file rewritten throughout: %d whole, %d reported, %d torn", whole, reported, torn)
}
