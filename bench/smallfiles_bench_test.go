package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"smp/bench/corpus"
	"smp/capture"
	"smp/repo"
)

// smallFiles is how many files BenchmarkSmallFiles' tree holds.
const smallFiles = 10000

// BenchmarkSmallFiles measures the per-file path in process, so that a
// regression shows without `smp bench run`: a tree of 10,000 small files
// (sizes from the realistic corpus' distribution, median 4 KiB, capped at
// 256 KiB; 40 files to a directory, 3-5 levels deep), read just before
// each timed section so it is in the page cache.
//
//	go test ./bench -run XXX -bench SmallFiles -benchtime 5x
//
// Sub-benchmarks:
//
//   - capture: capture.Run of the tree into a new local store (open,
//     fstat and read of every file through capture's own walker and file
//     workers, then chunking, hashing, compression, packing, the index
//     and the commit), the store opened and closed inside the timer as
//     `smp capture` does;
//   - read-floor: open, fstat and read of every file, nothing else, with
//     as many goroutines as capture has file workers (2 x GOMAXPROCS).
//
// Each reports files/s; capture also its ratio to the floor's files/s
// measured in the same process (capture/floor).
func BenchmarkSmallFiles(b *testing.B) {
	root, paths, size := smallFilesTree(b)
	var floorRate float64
	b.Run("read-floor", func(b *testing.B) {
		b.SetBytes(size)
		var elapsed time.Duration
		for range b.N {
			b.StopTimer()
			warmFiles(b, paths)
			start := time.Now()
			b.StartTimer()
			if err := readFloor(paths, 2*runtime.GOMAXPROCS(0)); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			elapsed += time.Since(start)
		}
		floorRate = float64(len(paths)*b.N) / elapsed.Seconds()
		b.ReportMetric(floorRate, "files/s")
	})
	b.Run("capture", func(b *testing.B) {
		b.SetBytes(size)
		var elapsed time.Duration
		for range b.N {
			b.StopTimer()
			dir := freshDir(b, "small-store")
			initStore(b, dir)
			warmFiles(b, paths)
			syscall.Sync()
			start := time.Now()
			b.StartTimer()
			r, err := repo.Open(dir)
			if err != nil {
				b.Fatal(err)
			}
			res, err := capture.Run(context.Background(), r, capture.Options{Computer: "pc", Root: root, Version: "bench"})
			if cerr := r.Close(); err == nil {
				err = cerr
			}
			b.StopTimer()
			elapsed += time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			if rec := res.Record; rec.Files != smallFiles || rec.Errors != 0 || rec.Bytes != uint64(size) {
				b.Fatalf("captured %d files, %d bytes, %d errors; want %d files, %d bytes", rec.Files, rec.Bytes, rec.Errors, smallFiles, size)
			}
		}
		rate := float64(len(paths)*b.N) / elapsed.Seconds()
		b.ReportMetric(rate, "files/s")
		if floorRate > 0 {
			b.ReportMetric(floorRate/rate, "capture/floor")
		}
	})
}

var (
	smallOnce  sync.Once
	smallRoot  string
	smallPaths []string
	smallSize  int64
	smallErr   error
)

// smallFilesTree writes the benchmark's tree once per process.
func smallFilesTree(b *testing.B) (root string, paths []string, size int64) {
	smallOnce.Do(func() {
		smallRoot = freshDir(b, "small-tree")
		r := rand.New(rand.NewPCG(benchSeed(b), 0x736d616c6c)) // "small"
		buf := make([]byte, 256<<10)
		for i := range smallFiles {
			d := i / 40
			dir := filepath.Join(smallRoot, "home", fmt.Sprintf("user%d", d%4), "Documents", fmt.Sprintf("p%02d", d/16))
			for k := range d % 3 {
				dir = filepath.Join(dir, fmt.Sprintf("sub%d", k))
			}
			dir = filepath.Join(dir, fmt.Sprintf("d%03d", d))
			if i%40 == 0 {
				if smallErr = os.MkdirAll(dir, 0o755); smallErr != nil {
					return
				}
			}
			n := corpus.SmallFileSize(r, int64(len(buf)))
			fillText(r, buf[:n])
			p := filepath.Join(dir, fmt.Sprintf("f%05d.txt", i))
			if smallErr = os.WriteFile(p, buf[:n], 0o644); smallErr != nil {
				return
			}
			smallPaths = append(smallPaths, p)
			smallSize += n
		}
	})
	if smallErr != nil {
		b.Fatal(smallErr)
	}
	return smallRoot, smallPaths, smallSize
}

// fillText fills p with lines of words and numbers: compressible, as
// most small files are, and different in every file.
func fillText(r *rand.Rand, p []byte) {
	words := []string{"config", "value", "user", "name", "path", "the", "of", "and", "id", "time", "error", "data"}
	i := 0
	for i < len(p) {
		s := words[r.IntN(len(words))]
		if r.IntN(4) == 0 {
			s = fmt.Sprintf("%d", r.Uint32())
		}
		i += copy(p[i:], s)
		if i < len(p) {
			p[i] = " \n"[r.IntN(2)]
			i++
		}
	}
}

// warmFiles reads every file so the timed section starts from the page
// cache.
func warmFiles(b *testing.B, paths []string) {
	if err := readFloor(paths, 2*runtime.GOMAXPROCS(0)); err != nil {
		b.Fatal(err)
	}
}

// readFloor opens, fstats and reads every path with workers goroutines.
func readFloor(paths []string, workers int) error {
	work := make(chan string)
	errs := make(chan error, workers)
	for range workers {
		go func() {
			buf := make([]byte, 256<<10)
			var first error
			for p := range work {
				if first == nil {
					first = openStatRead(p, buf)
				}
			}
			errs <- first
		}()
	}
	for _, p := range paths {
		work <- p
	}
	close(work)
	var err error
	for range workers {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	return err
}

func openStatRead(p string, buf []byte) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Stat(); err != nil {
		return err
	}
	for {
		n, err := f.Read(buf)
		if errors.Is(err, io.EOF) || (n == 0 && err == nil) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
