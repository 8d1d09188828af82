package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"testing"
	"time"
)

// TestE2ECaptureMemory: a capture into a store directory of a tree of
// large, compressible files (the full-size chunker buffers all lent,
// chunks queued for the compressors, packs sealed) stays under 80 MiB of
// peak RSS: its soft memory limit and bounded buffers (docs/BENCHMARKS.md,
// "Capture memory" has what the same capture took without them).
// SMP_HEAPPROFILE writes the heap profile of the run's peak.
//
// Linux charges a child its parent's peak RSS when it starts the child
// (ru_maxrss keeps the larger of the two across exec), so this test
// returns its own heap, which writing the tree grew, to the system and
// resets its peak to what it holds then (/proc/self/clear_refs), and logs
// that floor.
func TestE2ECaptureMemory(t *testing.T) {
	if raceEnabled() {
		t.Skip("the race detector's shadow memory is not capture's")
	}
	root := tmpDir(t)
	home := filepath.Join(root, "home", "alice")
	mkdirs(t, home)
	text := goSource(t, 1<<20)
	for i := range 32 {
		// 8 MiB of text and random bytes, each file different: chunks
		// of up to 4 MiB, all new, most compressed.
		var b bytes.Buffer
		for j := 0; b.Len() < 8<<20; j++ {
			fmt.Fprintf(&b, "file %d part %d\n", i, j)
			b.Write(text[(i*7919+j*104729)%(len(text)/2):][:64<<10])
			b.Write(rnd(uint64(i<<20|j), 32<<10))
		}
		writeFile(t, filepath.Join(home, fmt.Sprintf("big%02d.txt", i)), b.Bytes(), 0o644)
	}
	store := newStore(t)
	profile := filepath.Join(tmpDir(t), "heap.pb.gz")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("resetting this process's peak RSS: %v", err) // before Linux 4.0
	}
	floor := exec.CommandContext(ctx, smpBin, "version")
	if err := floor.Run(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, smpBin, "capture", "--store", store, "--computer", "pc", "--root", root, "--json", "home")
	// Two cores as here: capture runs workers and encoder states per core.
	cmd.Env = append(os.Environ(), "SMP_HEAPPROFILE="+profile, "GOMAXPROCS=2")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("capture: %v\n%s", err, stderr.String())
	}
	peak := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
	t.Logf("capture of 256 MiB in 32 files: peak RSS %d MiB (smp version: %d MiB)", peak>>20,
		floor.ProcessState.SysUsage().(*syscall.Rusage).Maxrss>>10)
	if peak > 80<<20 {
		t.Errorf("capture peak RSS %d MiB, want at most 80 MiB", peak>>20)
	}
	b, err := os.ReadFile(profile)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 100 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("SMP_HEAPPROFILE wrote %d bytes, not a gzipped profile", len(b))
	}
}

// TestRaisedLimit: the capture's soft limit stays until the live heap
// comes within a third of it, then keeps half the live heap above it; a
// collector taking more than gcShareRaise of the CPU raises it by a
// quarter.
func TestRaisedLimit(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		limit, live int64
		gcShare     float64
		want        int64
	}{
		{56 * mib, 0, -1, 56 * mib},
		{60 * mib, 40 * mib, -1, 60 * mib},
		{60 * mib, 40*mib + 2, -1, 60*mib + 3},
		{56 * mib, 80 * mib, 0.1, 120 * mib},
		{120 * mib, 70 * mib, -1, 120 * mib},
		{80 * mib, 50 * mib, 0.2, 80 * mib},
		{80 * mib, 50 * mib, 0.45, 100 * mib}, // collector running back to back
		{56 * mib, 80 * mib, 0.45, 120 * mib},
	} {
		if got := raisedLimit(c.limit, c.live, c.gcShare); got != c.want {
			t.Errorf("raisedLimit(%d MiB, %d, %.2f) = %d, want %d", c.limit/mib, c.live, c.gcShare, got, c.want)
		}
	}
}
