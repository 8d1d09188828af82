package bench

// Scale (issue 7, resource exhaustion): one capture of a million small
// files and a 20 GB sparse file must complete with bounded memory. RunScale
// generates such a tree, then drives the real smp binary as child
// processes (init, capture, stats, restore) and reports each child's wall
// time, CPU time and peak RSS (ru_maxrss) through child.go's exec, so the
// figures are the binary's and not this process's. It then checks the
// restore: every small file byte for byte, and the sparse file's size,
// data regions, a sample of offsets, and that its holes stayed holes.
//
// This process stays small on purpose: Linux charges a child started with
// vfork its parent's peak RSS at exec, so nothing here holds a list of
// the files; generation and verification stream one directory at a time.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
)

// ScaleOptions configure RunScale.
type ScaleOptions struct {
	Bin         string    // the smp binary to drive (required)
	Work        string    // parent of the scratch directory (default os.TempDir()); the scratch directory is removed at the end
	Files       int       // small files to generate (1000 per directory)
	SparseBytes int64     // apparent size of the sparse file (at least 1 MiB)
	Log         io.Writer // progress lines (nil: discarded)
}

// ScaleReport is what RunScale measured. Peak RSS is each child's
// ru_maxrss; RSSFloorMiB is what a trivial child (/bin/true) reports, the
// part of any child's figure that is this process's own peak charged at
// exec.
type ScaleReport struct {
	Files                  int     `json:"files"`
	SparseBytes            int64   `json:"sparse_bytes"`
	GenerateSeconds        float64 `json:"generate_seconds"`
	CaptureSeconds         float64 `json:"capture_seconds"`
	CaptureCPUSeconds      float64 `json:"capture_cpu_seconds"`
	CapturePeakRSSMiB      float64 `json:"capture_peak_rss_mib"`
	StoredBytes            int64   `json:"stored_bytes"` // pack files after the capture (smp stats)
	RestoreSeconds         float64 `json:"restore_seconds"`
	RestoreCPUSeconds      float64 `json:"restore_cpu_seconds"`
	RestorePeakRSSMiB      float64 `json:"restore_peak_rss_mib"`
	RestoredAllocatedBytes int64   `json:"restored_allocated_bytes"` // st_blocks*512 of the restored sparse file
	Verified               bool    `json:"verified"`                 // small files, sparse size, data regions and sampled offsets all matched
	RSSFloorMiB            float64 `json:"rss_floor_mib"`
}

// Shape of the generated tree.
const (
	scaleFilesPerDir  = 1000
	scaleMaxFileSize  = 2048    // small files are 0..2 KiB
	scaleRegion       = 2 << 20 // bytes of random data in each of the sparse file's 3 regions
	scaleSampleCount  = 100     // random offsets compared in the sparse file
	scaleSampleLength = 4096
	scaleSeed         = 0x5ca1e
)

// RunScale generates the tree under a scratch directory in o.Work,
// captures it with `smp capture --hardlink never`, restores it with
// `smp restore --keep` and verifies the restore. The scratch directory is
// removed before it returns, also on error. The report is returned also
// with an error, holding what was measured so far; a restore that does not
// match is an error too.
func RunScale(ctx context.Context, o ScaleOptions) (rep ScaleReport, err error) {
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	rep = ScaleReport{Files: o.Files, SparseBytes: o.SparseBytes}
	if err := checkBin(o.Bin, "ScaleOptions"); err != nil {
		return rep, err
	}
	if o.Files < 1 || o.SparseBytes < 1<<20 {
		return rep, fmt.Errorf("bench: scale needs at least 1 file and a 1 MiB sparse file (got %d files, %d bytes)", o.Files, o.SparseBytes)
	}
	work, err := scratchDir(o.Work, "smp-scale-")
	if err != nil {
		return rep, err
	}
	s := &scaleRun{o: o, rep: &rep,
		r:      &runner{opts: RunOptions{Bin: o.Bin}, log: log, work: work},
		root:   filepath.Join(work, "root"),
		store:  filepath.Join(work, "store"),
		target: filepath.Join(work, "restored"),
	}
	defer func() {
		start := time.Now()
		if rerr := removeAll(work); rerr != nil && err == nil {
			err = fmt.Errorf("bench: removing %s: %w", work, rerr)
		}
		s.r.logf("removed %s in %.1fs", work, time.Since(start).Seconds())
	}()
	if s.r.env, err = smpEnv(work); err != nil {
		return rep, err
	}
	for _, step := range []func(context.Context) error{s.generate, s.capture, s.restore, s.verify} {
		if err := step(ctx); err != nil {
			return rep, err
		}
	}
	return rep, ctx.Err()
}

// Where RunScale's tree lives, relative to its root.
var (
	scaleSmall  = filepath.Join("home", "alice", "small")
	scaleSparse = filepath.Join("home", "alice", "sparse.img")
)

const scaleComputer = "scale"

// scaleRun is one RunScale: its scratch paths, the sparse file's data
// regions and the report being filled.
type scaleRun struct {
	o                   ScaleOptions
	r                   *runner
	rep                 *ScaleReport
	root, store, target string
	regions             []scaleRange
}

// generate writes the tree (not a child: timed here, before any measured
// child) and measures the RSS floor.
func (s *scaleRun) generate(ctx context.Context) error {
	s.r.logf("generating %d small files and a %s sparse file under %s", s.o.Files, humanize.IBytes(uint64(s.o.SparseBytes)), s.root)
	start := time.Now()
	if err := genScaleSmall(ctx, filepath.Join(s.root, scaleSmall), s.o.Files); err != nil {
		return fmt.Errorf("generating small files: %w", err)
	}
	regions, err := genScaleSparse(filepath.Join(s.root, scaleSparse), s.o.SparseBytes)
	if err != nil {
		return fmt.Errorf("generating sparse file: %w", err)
	}
	s.regions = regions
	runtime.GC()
	s.rep.GenerateSeconds = time.Since(start).Seconds()
	s.r.logf("generated in %.1fs", s.rep.GenerateSeconds)
	if p, err := exec.LookPath("true"); err == nil {
		if c, err := s.r.exec(ctx, execSpec{name: p}); err == nil {
			s.rep.RSSFloorMiB = kibToMiB(c.maxRSS)
		}
	}
	return nil
}

// capture captures the tree into a new store and reads its stored bytes.
func (s *scaleRun) capture(ctx context.Context) error {
	r, rep, bin := s.r, s.rep, s.o.Bin
	if _, err := r.exec(ctx, execSpec{name: bin, args: initArgs(s.store, true)}); err != nil {
		return err
	}
	r.logf("smp capture ...")
	c, err := r.exec(ctx, execSpec{name: bin, args: []string{"capture", "--store", s.store, "--computer", scaleComputer, "--hardlink", "never", "--root", s.root, "--json"}})
	rep.CaptureSeconds, rep.CaptureCPUSeconds, rep.CapturePeakRSSMiB = c.wall.Seconds(), c.cpu.Seconds(), kibToMiB(c.maxRSS)
	if err != nil {
		return err
	}
	var capOut struct {
		Record string `json:"record"`
		Files  int64  `json:"files"`
		Bytes  int64  `json:"bytes"`
		Errors int64  `json:"errors"`
	}
	if err := json.Unmarshal(c.stdout, &capOut); err != nil {
		return fmt.Errorf("smp capture output: %w: %q", err, c.stdout)
	}
	r.logf("capture: %d files, %s in %.1fs, CPU %.1fs, peak RSS %.0f MiB (floor %.1f MiB)", capOut.Files, humanize.IBytes(uint64(capOut.Bytes)),
		rep.CaptureSeconds, rep.CaptureCPUSeconds, rep.CapturePeakRSSMiB, rep.RSSFloorMiB)
	if want := int64(s.o.Files) + 1; capOut.Files != want || capOut.Errors != 0 {
		return fmt.Errorf("smp capture: %d files and %d errors, want %d files and none", capOut.Files, capOut.Errors, want)
	}
	st, err := r.smpStats(ctx, s.store)
	if err != nil {
		return fmt.Errorf("smp stats output: %w", err)
	}
	rep.StoredBytes = st.StoredBytes
	r.logf("stored %s", humanize.IBytes(uint64(rep.StoredBytes)))
	return nil
}

// restore restores the record into an empty target, then removes the
// store to free its disk before verifying.
func (s *scaleRun) restore(ctx context.Context) error {
	r, rep := s.r, s.rep
	r.logf("smp restore ...")
	c, err := r.exec(ctx, execSpec{name: s.o.Bin, args: []string{"restore", "--store", s.store, "--computer", scaleComputer, "--root", s.target, "--keep", "--json"}})
	rep.RestoreSeconds, rep.RestoreCPUSeconds, rep.RestorePeakRSSMiB = c.wall.Seconds(), c.cpu.Seconds(), kibToMiB(c.maxRSS)
	if err != nil {
		return err
	}
	r.logf("restore: %.1fs, CPU %.1fs, peak RSS %.0f MiB", rep.RestoreSeconds, rep.RestoreCPUSeconds, rep.RestorePeakRSSMiB)
	return removeAll(s.store)
}

// verify compares every small file and the sparse file's size, regions,
// sampled offsets and holes with the generated tree.
func (s *scaleRun) verify(ctx context.Context) error {
	start := time.Now()
	if err := compareScaleSmall(ctx, filepath.Join(s.root, scaleSmall), filepath.Join(s.target, scaleSmall)); err != nil {
		return fmt.Errorf("restore differs: %w", err)
	}
	alloc, err := compareScaleSparse(filepath.Join(s.root, scaleSparse), filepath.Join(s.target, scaleSparse), s.regions)
	s.rep.RestoredAllocatedBytes = alloc
	if err != nil {
		return fmt.Errorf("restore differs: %w", err)
	}
	s.rep.Verified = true
	s.r.logf("verified in %.1fs; restored sparse file: %s apparent, %s allocated", time.Since(start).Seconds(),
		humanize.IBytes(uint64(s.o.SparseBytes)), humanize.IBytes(uint64(alloc)))
	return nil
}

// ---- generation ----

// splitmix64 is the generator's hash: file i's content, size and copy
// source all derive from it.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// scaleSource returns the file whose content file i carries: itself, or
// for a quarter of the files (i%4 == 3) an earlier original.
func scaleSource(i int) int {
	if i%4 != 3 {
		return i
	}
	h := splitmix64(uint64(i) ^ scaleSeed<<32)
	return int(h%uint64(i/4+1))*4 + int((h>>40)%3)
}

// scaleContent fills buf with file src's content (0..2 KiB of
// pseudo-random bytes) and returns it.
func scaleContent(src int, buf []byte) []byte {
	h := splitmix64(uint64(src) + scaleSeed)
	n := int(h % (scaleMaxFileSize + 1))
	buf = buf[:n]
	for off := 0; off < n; off += 8 {
		h = splitmix64(h)
		for k := 0; k < 8 && off+k < n; k++ {
			buf[off+k] = byte(h >> (8 * k))
		}
	}
	return buf
}

func scaleDirName(d int) string  { return fmt.Sprintf("d%04d", d) }
func scaleFileName(j int) string { return fmt.Sprintf("f%04d", j) }

// genScaleSmall writes files files into dir/dNNNN/fNNNN, a directory per
// worker at a time.
func genScaleSmall(ctx context.Context, dir string, files int) error {
	dirs := (files + scaleFilesPerDir - 1) / scaleFilesPerDir
	next := make(chan int)
	errs := make(chan error, runtime.NumCPU())
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Go(func() {
			buf := make([]byte, scaleMaxFileSize)
			for d := range next {
				if err := genScaleDir(dir, d, files, buf); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
feed:
	for d := range dirs {
		select {
		case next <- d:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	go func() { wg.Wait(); close(errs) }()
	for e := range errs {
		err = cmp.Or(err, e)
	}
	return err
}

func genScaleDir(dir string, d, files int, buf []byte) error {
	sub := filepath.Join(dir, scaleDirName(d))
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return err
	}
	for j := range scaleFilesPerDir {
		i := d*scaleFilesPerDir + j
		if i >= files {
			break
		}
		if err := os.WriteFile(filepath.Join(sub, scaleFileName(j)), scaleContent(scaleSource(i), buf), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// scaleRange is a byte range of the sparse file holding random data.
type scaleRange struct{ off, n int64 }

// genScaleSparse creates path as a sparse file of size bytes (truncate)
// with random data at its start, middle and end, and returns those ranges.
func genScaleSparse(path string, size int64) ([]scaleRange, error) {
	n := min(int64(scaleRegion), size/4) &^ 4095
	regions := []scaleRange{{0, n}, {(size / 2) &^ 4095, n}, {size - n, n}}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	if err := os.Truncate(path, size); err != nil {
		f.Close()
		return nil, err
	}
	rng := rand.New(rand.NewPCG(scaleSeed, 7))
	buf := make([]byte, 1<<20)
	for _, rg := range regions {
		for done := int64(0); done < rg.n; {
			b := buf[:min(int64(len(buf)), rg.n-done)]
			for k := 0; k+8 <= len(b); k += 8 {
				v := rng.Uint64()
				for s := range 8 {
					b[k+s] = byte(v >> (8 * s))
				}
			}
			if _, err := f.WriteAt(b, rg.off+done); err != nil {
				f.Close()
				return nil, err
			}
			done += int64(len(b))
		}
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return regions, nil
}

// ---- verification ----

// compareScaleSmall checks that dst holds exactly src's small files: the
// same directories, names and contents, nothing missing and nothing more.
func compareScaleSmall(ctx context.Context, src, dst string) error {
	var diffs []string
	diff := func(format string, args ...any) {
		if len(diffs) < 10 {
			diffs = append(diffs, fmt.Sprintf(format, args...))
		} else if len(diffs) == 10 {
			diffs = append(diffs, "...")
		}
	}
	dirsA, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	dirsB, err := os.ReadDir(dst)
	if err != nil {
		return err
	}
	if len(dirsA) != len(dirsB) {
		diff("%d directories, restored %d", len(dirsA), len(dirsB))
	}
	ba, bb := make([]byte, scaleMaxFileSize+1), make([]byte, scaleMaxFileSize+1)
	compared := 0
	for _, da := range dirsA {
		if err := ctx.Err(); err != nil {
			return err
		}
		a, b := filepath.Join(src, da.Name()), filepath.Join(dst, da.Name())
		fa, err := os.ReadDir(a)
		if err != nil {
			return err
		}
		fb, err := os.ReadDir(b)
		if err != nil {
			diff("%s: %v", da.Name(), err)
			continue
		}
		names := make(map[string]bool, len(fb))
		for _, e := range fb {
			names[e.Name()] = true
		}
		for _, e := range fa {
			rel := filepath.Join(da.Name(), e.Name())
			if !names[e.Name()] {
				diff("%s: missing", rel)
				continue
			}
			delete(names, e.Name())
			ca, err := readSmall(filepath.Join(a, e.Name()), ba)
			if err != nil {
				return err
			}
			cb, err := readSmall(filepath.Join(b, e.Name()), bb)
			if err != nil {
				diff("%s: %v", rel, err)
				continue
			}
			if !bytes.Equal(ca, cb) {
				diff("%s: contents differ (%d bytes, restored %d)", rel, len(ca), len(cb))
			}
			compared++
		}
		for name := range names {
			diff("%s: only in the restored tree", filepath.Join(da.Name(), name))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("small files: %s", strings.Join(diffs, "; "))
	}
	if compared == 0 {
		return errors.New("small files: none compared")
	}
	return nil
}

// readSmall reads a whole small file into buf (one byte longer than the
// largest file, so a longer file shows as a difference).
func readSmall(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	return buf[:n], err
}

// compareScaleSparse checks the restored sparse file's size, its data
// regions and scaleSampleCount random offsets against the source, and
// returns its allocated bytes (st_blocks*512).
func compareScaleSparse(src, dst string, regions []scaleRange) (int64, error) {
	fa, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer fa.Close()
	fb, err := os.Open(dst)
	if err != nil {
		return 0, err
	}
	defer fb.Close()
	sa, err := fa.Stat()
	if err != nil {
		return 0, err
	}
	sb, err := fb.Stat()
	if err != nil {
		return 0, err
	}
	alloc := allocatedBytes(sb)
	if sa.Size() != sb.Size() {
		return alloc, fmt.Errorf("sparse file: size %d, restored %d", sa.Size(), sb.Size())
	}
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	same := func(off, n int64) error {
		for done := int64(0); done < n; {
			k := min(int64(len(ba)), n-done)
			na, err := fa.ReadAt(ba[:k], off+done)
			if err != nil && err != io.EOF {
				return err
			}
			nb, err := fb.ReadAt(bb[:k], off+done)
			if err != nil && err != io.EOF {
				return err
			}
			if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
				return fmt.Errorf("sparse file: bytes at %d..%d differ", off+done, off+done+k)
			}
			if na == 0 {
				return nil
			}
			done += int64(na)
		}
		return nil
	}
	for _, rg := range regions {
		if err := same(rg.off, rg.n); err != nil {
			return alloc, err
		}
	}
	rng := rand.New(rand.NewPCG(scaleSeed, 11))
	for range scaleSampleCount {
		off := rng.Int64N(sa.Size())
		if err := same(off, min(scaleSampleLength, sa.Size()-off)); err != nil {
			return alloc, err
		}
	}
	return alloc, nil
}
