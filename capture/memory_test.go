package capture_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"smp/capture"
	"smp/cas"
	"smp/repo"
)

// TestCaptureMemoryBounded is issue 7's regression test: capture memory
// must not grow with the number of files. It captures a tree of N small
// files, then the same tree again with the first record as parent (change
// detection), and does both again with 4N files; the live heap a capture
// adds (the largest heap marked live by any GC during the run, less the
// heap before it) must stay about the same. The files' contents repeat, so
// the index holds few keys and Badger's own memory, which grows with the
// store (memtable flushes, compactions), stays out of the measure.
//
// The tree is one directory of directories of 500 files, two of which are
// hard links of one inode: the shapes that used to grow (every child's
// previous tree loaded at once; every directory with a hard link kept
// whole to the end).
func TestCaptureMemoryBounded(t *testing.T) {
	dirs := 20
	if testing.Short() || raceEnabled() {
		dirs = 5
	}
	captureHeap(t, 1) // first use of process-wide pools (zstd encoders, hashers)
	small := captureHeap(t, dirs)
	large := captureHeap(t, 4*dirs)
	t.Logf("%d files: first capture +%s, with parent +%s", dirs*filesPerTestDir, mib(small[0]), mib(small[1]))
	t.Logf("%d files: first capture +%s, with parent +%s", 4*dirs*filesPerTestDir, mib(large[0]), mib(large[1]))
	// With every file held, 4N files would add 3N files' worth, several
	// times the slack. The slack covers fixed buffers that only the larger
	// capture fills (a pack's write buffers, once it outgrows the
	// small-object path) and GC timing; a forced GC that
	// lands on a transient allocation only ever reads high, so a capture
	// over the limit is measured once more and the lower reading counts.
	const slack = 6 << 20
	over := func(i int) bool { return large[i] > small[i]+small[i]/2+slack }
	if over(0) || over(1) {
		again := captureHeap(t, 4*dirs)
		t.Logf("%d files again: first capture +%s, with parent +%s", 4*dirs*filesPerTestDir, mib(again[0]), mib(again[1]))
		large = [2]uint64{min(large[0], again[0]), min(large[1], again[1])}
	}
	for i, what := range []string{"first capture", "capture with parent"} {
		if over(i) {
			t.Errorf("%s: 4x the files took %s of live heap, 1x took %s: want at most %s (memory grows with the number of files)",
				what, mib(large[i]), mib(small[i]), mib(small[i]+small[i]/2+slack))
		}
	}
}

const filesPerTestDir = 500

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// captureHeap builds a tree of dirs directories and returns the live heap
// added by its first capture and by a second one with the first as parent.
func captureHeap(t *testing.T, dirs int) [2]uint64 {
	t.Helper()
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	for d := range dirs {
		dir := filepath.Join(root, "home", "alice", fmt.Sprintf("d%04d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range filesPerTestDir - 1 {
			// 64 distinct contents: chunks dedupe, the index stays small.
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", f)), randBytes(uint64(f%64), 100+f%64), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Link(filepath.Join(dir, "f0000"), filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
	}
	store := filepath.Join(tmp, "store")
	p, err := cas.ChunkerParamsForAvg(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Init(store, p); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(store)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	var out [2]uint64
	opts := capture.Options{Computer: "pc", Root: root, Paths: []string{"home"}, Hardlink: capture.HardlinkNever}
	for i := range out {
		var res *capture.Result
		out[i] = liveHeapDuring(func() {
			res, err = capture.Run(t.Context(), r, opts)
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := uint64(dirs * filesPerTestDir); res.Record.Files != want || res.Record.Errors != 0 {
			t.Fatalf("captured %d files with %d errors, want %d files", res.Record.Files, res.Record.Errors, want)
		}
		opts.Parent, opts.ParentID = res.Record, res.ID
	}
	return out
}

// liveHeapDuring runs fn and returns the largest live heap any GC found
// while it ran, less the live heap before it. A GC is forced every 10 ms
// so that even a short run is measured; what a capture holds for long is
// live at every one of them.
func liveHeapDuring(fn func()) uint64 {
	runtime.GC()
	before := liveHeap()
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			runtime.GC()
			peak = max(peak, liveHeap())
		}
	})
	fn()
	close(stop)
	wg.Wait()
	peak = max(peak, liveHeap())
	if peak < before {
		return 0
	}
	return peak - before
}

// liveHeap is the heap the last GC marked live.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// raceEnabled reports whether this test binary was built with -race,
// which slows capture several times: the test then uses fewer files.
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

// TestCaptureChunkBuffersBounded checks the bound of chunkbuf.go: files
// of the chunker's full buffer size and more, chunked by more workers than
// Options.ChunkBuffers, hold at most that many full buffers (not one per
// worker), and every chunk handed to
// the compressors without a copy is stored as it was read.
func TestCaptureChunkBuffersBounded(t *testing.T) {
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	p := cas.DefaultChunkerParams()
	files := map[string][]byte{}
	for i := range 12 {
		// Compressible (8 letters), so that the compressors take their time.
		r := rand.New(rand.NewPCG(uint64(i), 1))
		b := make([]byte, 2*p.Max+3+i*p.Min)
		for j := range b {
			b[j] = 'a' + byte(r.IntN(8))
		}
		files[fmt.Sprintf("big%02d", i)] = b
	}
	for i := range 200 {
		files[fmt.Sprintf("small%03d", i)] = randBytes(uint64(1000+i), 1+i*997)
	}
	for name, b := range files {
		dir := filepath.Join(root, "home", "alice")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	store := filepath.Join(tmp, "store")
	if _, err := repo.Init(store, p); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(store)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	captureHeap(t, 1) // the process-wide zstd encoders and hashers, made on first use
	const workers, buffers = 8, 2
	opts := capture.Options{Computer: "pc", Root: root, Paths: []string{"home"}, Hardlink: capture.HardlinkNever,
		Workers: workers, ChunkBuffers: buffers}
	var res *capture.Result
	live := liveHeapDuring(func() { res, err = capture.Run(t.Context(), r, opts) })
	if err != nil {
		t.Fatal(err)
	}
	// The buffers, the small ones, and room for the compressors' output,
	// the queued copies of small chunks, the pack buffers and the index.
	limit := uint64(buffers*p.BufferSize() + workers*p.Min + 12<<20)
	t.Logf("live heap +%s (limit %s; a full buffer per worker alone: %s)", mib(live), mib(limit), mib(uint64(workers*p.BufferSize())))
	if live > limit {
		t.Errorf("capture of %d large files by %d workers took %s of live heap, want at most %s", 12, workers, mib(live), mib(limit))
	}
	if res.Record.Files != uint64(len(files)) || res.Record.Errors != 0 {
		t.Fatalf("captured %d files with %d errors, want %d", res.Record.Files, res.Record.Errors, len(files))
	}
	home, err := r.LoadTree(res.Record.Tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"home", "alice"} {
		if len(home.Entries) != 1 || home.Entries[0].Name != name {
			t.Fatalf("tree %v, want %s", home.Entries, name)
		}
		if home, err = r.LoadTree(home.Entries[0].Subtree); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range home.Entries {
		var got []byte
		for _, ch := range e.Chunks {
			b, err := r.ReadChunk(ch.ID, nil)
			if err != nil {
				t.Fatalf("%s: chunk %s: %v", e.Name, ch.ID.Short(), err)
			}
			got = append(got, b...)
		}
		if !bytes.Equal(got, files[e.Name]) {
			t.Fatalf("%s: stored %d bytes differ from the file's %d", e.Name, len(got), len(files[e.Name]))
		}
	}
}
