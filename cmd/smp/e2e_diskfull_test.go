package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"smp/index"
)

// signalled runs smp like smp() but reports a child killed by a signal
// instead of failing the test at once, so every command of a fill level
// is tried. Its second result names the signal, or is empty.
func signalled(t *testing.T, args ...string) (result, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, smpPath(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return r, ws.Signal().String()
		}
		r.code = exitErr.ExitCode()
	default:
		t.Fatalf("smp %s: %v\n%s", strings.Join(args, " "), err, r)
	}
	return r, ""
}

// diskFiller holds the filesystem of dir at a chosen amount of free space
// with one preallocated file.
type diskFiller struct {
	t    *testing.T
	path string
}

func (f diskFiller) avail() int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(f.path), &st); err != nil {
		f.t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// leave sizes the fill file so that free bytes remain.
func (f diskFiller) leave(free int64) {
	f.t.Helper()
	f.empty()
	size := f.avail() - free
	if size <= 0 {
		return
	}
	fd, err := os.OpenFile(f.path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		f.t.Fatal(err)
	}
	defer fd.Close()
	if err := unix.Fallocate(int(fd.Fd()), 0, 0, size); err != nil {
		f.t.Fatalf("fill the tmpfs to %d bytes free: %v", free, err)
	}
	if got := f.avail(); got != free {
		f.t.Fatalf("filled the tmpfs to %d bytes free, want %d", got, free)
	}
}

func (f diskFiller) empty() {
	if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		f.t.Fatal(err)
	}
}

// TestE2EFullDiskNoSignal (issue 14 item 9): on a tmpfs filled to several
// levels around the free space Badger needs (nothing, a page, 64 KiB,
// 1 MiB, the margin less and more 1 MiB), no command dies of a signal
// (Badger writes through mappings, where a full filesystem is a SIGBUS):
// the read-only commands work, the writers either work or fail with one
// line naming ENOSPC before Badger writes, and once space is freed the
// store verifies and its records restore identical.
func TestE2EFullDiskNoSignal(t *testing.T) {
	t.Parallel()
	mnt, _ := mountTmpfs(t, "48m")
	store := filepath.Join(mnt, "store")
	mustSMP(t, "init", "--store", store)
	src := tmpDir(t)
	serveProfile(t, src, 91, 2)
	keeper := doCapture(t, exitOK, store, "PC01", "--root", src)
	tiny := tmpDir(t)
	mkdirs(t, filepath.Join(tiny, "home", "carol"))
	writeFile(t, filepath.Join(tiny, "home", "carol", "note.txt"), []byte("a small note\n"), 0o644)
	fill := diskFiller{t: t, path: filepath.Join(mnt, "fill")}

	const mib = 1 << 20
	levels := []struct {
		name string
		free func(need int64) int64
	}{
		{"0 free", func(int64) int64 { return 0 }},
		{"4 KiB free", func(int64) int64 { return 4 << 10 }},
		{"64 KiB free", func(int64) int64 { return 64 << 10 }},
		{"1 MiB free", func(int64) int64 { return mib }},
		{"margin-1MiB free", func(n int64) int64 { return max(0, n-mib) }},
		{"margin+1MiB free", func(n int64) int64 { return n + mib }},
	}
	for i, lv := range levels {
		fill.empty()
		// A record for rm to remove, captured while there is room.
		victim := doCapture(t, exitOK, store, fmt.Sprintf("TMP%d", i), "--root", tiny)
		need, err := index.NeededRoom(filepath.Join(store, "index"))
		if err != nil {
			t.Fatal(err)
		}
		free := lv.free(need) &^ (4<<10 - 1) // tmpfs counts whole pages
		fill.leave(free)
		roomy := free > need

		dst := tmpDir(t)
		readers := [][]string{
			{"records", "--store", store},
			{"files", "--store", store, "--record", keeper.Record},
			{"stats", "--store", store},
			{"verify", "--store", store},
			{"restore", "--store", store, "--record", keeper.Record, "--root", filepath.Join(dst, "keep"), "--keep"},
		}
		writers := [][]string{
			{"capture", "--store", store, "--computer", fmt.Sprintf("NEW%d", i), "--root", tiny},
			{"gc", "--store", store},
			{"rm", "--store", store, "--record", victim.Record},
			{"release", "--store", store, "--record", keeper.Record},
			{"restore", "--store", store, "--record", keeper.Record, "--root", filepath.Join(dst, "release")},
		}
		for _, args := range slices.Concat(readers, writers) {
			r, sig := signalled(t, args...)
			what := fmt.Sprintf("%s (%d bytes free, margin %d)", args[0], free, need)
			if sig != "" || strings.Contains(r.stderr, "SIGBUS") || strings.Contains(r.stderr, "goroutine ") {
				t.Errorf("%s died of %q:\n%s", what, sig, r)
				continue
			}
			reader := slices.ContainsFunc(readers, func(a []string) bool { return slices.Equal(a, args) })
			switch {
			case r.code == exitOK:
				if !reader && !roomy {
					t.Errorf("%s: a writer succeeded below the margin Badger needs\n%s", what, r)
				}
			case reader:
				t.Errorf("%s: a read-only command failed on a full disk\n%s", what, r)
			case roomy:
				t.Errorf("%s: a writer failed with room above the margin\n%s", what, r)
			case len(r.stderrLines()) != 1 || !strings.Contains(r.stderr, "no space left on device"):
				t.Errorf("%s: want one line naming ENOSPC\n%s", what, r)
			}
		}
	}

	// Space freed: nothing stored before is lost.
	fill.empty()
	mustSMP(t, "verify", "--store", store, "--read-data")
	var recs recordsOut
	smpJSON(t, exitOK, &recs, "records", "--store", store, "--json")
	if !slices.Contains(recs.ids(), keeper.Record) {
		t.Fatalf("record %s lost: %v", keeper.Record, recs.ids())
	}
	dst := tmpDir(t)
	restoreJSON(t, exitOK, store, "--record", keeper.Record, "--root", dst, "--keep")
	compareTrees(t, src, dst, compareOpts{})
	doCapture(t, exitOK, store, "PC02", "--root", src)
	if tmp, _ := os.ReadDir(filepath.Join(store, "packs", "tmp")); len(tmp) != 0 {
		t.Errorf("%d temporary packs left", len(tmp))
	}
}

// TestE2EFullDiskStaleTempPacks (issue 14 item 9): the temporary packs a
// killed capture left on a disk it filled are removed by the next command
// that takes the store's lock, before its index opens, so that command
// works; a temporary pack of a writer that still holds the lock is left
// alone.
func TestE2EFullDiskStaleTempPacks(t *testing.T) {
	t.Parallel()
	mnt, _ := mountTmpfs(t, "32m")
	store := filepath.Join(mnt, "store")
	mustSMP(t, "init", "--store", store)
	src := tmpDir(t)
	serveProfile(t, src, 92, 1)
	rec := doCapture(t, exitOK, store, "PC01", "--root", src)

	stale := filepath.Join(store, "packs", "tmp", "0123456789abcdef01234567.tmp")
	writeFile(t, stale, rnd(93, 8<<20), 0o600)
	fill := diskFiller{t: t, path: filepath.Join(mnt, "fill")}
	fill.leave(0)

	// A live writer (here: this test holding the store's lock) keeps its
	// temporary pack.
	lock, err := os.OpenFile(filepath.Join(store, "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	r, sig := signalled(t, "gc", "--store", store)
	if sig != "" || r.code == exitOK || !strings.Contains(r.stderr, "in use") {
		t.Fatalf("gc while another process holds the store: want a refusal (%q)\n%s", sig, r)
	}
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("the temporary pack of a live writer was removed: %v", err)
	}
	lock.Close()

	// The writer is gone: its pack is stale, and gc removes it first.
	r, sig = signalled(t, "gc", "--store", store)
	if sig != "" || r.code != exitOK {
		t.Fatalf("gc on a disk filled by a stale temporary pack (%q)\n%s", sig, r)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temporary pack still there: %v", err)
	}
	fill.empty()
	checkStoreAfterFault(t, store, rec.Record, src)
}
