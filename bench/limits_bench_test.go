package bench

// The machine's limits for the pipeline's CPU stages, on the generated mix
// (a 96 MiB tree, cut into the store's chunks, held in memory):
//
//	go test ./bench -run XXX -bench Limit -count 3
//
// BLAKE3 (keyed, as cas.Hasher), zstd through cas.Compress/cas.Decompress
// (SpeedFastest, store-raw fallback, exactly the store's path), FastCDC
// (cas.Chunker), memcpy, reading the tree from the page cache, and the three
// pipelines' CPU work with no I/O or index at all, on one core and on all
// (GOMAXPROCS) cores: those are the ceilings the end-to-end benchmarks can
// approach.

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"

	"smp/bench/corpus"
	"smp/cas"
)

const limitTreeSize = 96 << 20

// sampleFile is one generated file, in memory, with its chunks.
type sampleFile struct {
	class  corpus.Class
	data   []byte
	chunks [][]byte // subslices of data, as the store's chunker cuts them
}

type sample struct {
	files  []sampleFile
	bytes  [corpus.NumClasses]int64
	total  int64
	hasher *cas.Hasher
}

var (
	sampleOnce sync.Once
	theSample  *sample
)

func loadSample(b *testing.B) *sample {
	b.Helper()
	sampleOnce.Do(func() {
		t := getTree(b, limitTreeSize, false)
		s := &sample{hasher: cas.NewHasher([32]byte{1, 2, 3})}
		ch := cas.NewChunker(nil, cas.DefaultChunkerParams())
		err := filepath.WalkDir(t.alice(), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			f := sampleFile{class: corpus.ClassOf(p), data: data}
			ch.Reset(bytes.NewReader(data))
			off := 0
			for {
				c, err := ch.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				f.chunks = append(f.chunks, data[off:off+len(c)])
				off += len(c)
			}
			s.files = append(s.files, f)
			s.bytes[f.class] += int64(len(data))
			s.total += int64(len(data))
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		theSample = s
	})
	if theSample == nil {
		b.Fatal("sample not loaded")
	}
	return theSample
}

func oneMiB(b *testing.B) []byte {
	s := loadSample(b)
	for _, f := range s.files {
		if len(f.data) >= 1<<20 && f.class == corpus.ClassBinary {
			return f.data[:1<<20]
		}
	}
	return s.files[0].data
}

func BenchmarkLimitBLAKE3(b *testing.B) {
	buf := oneMiB(b)
	h := cas.NewHasher([32]byte{1})
	b.Run("keyed-1MiB", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			h.Sum(buf)
		}
	})
	b.Run("unkeyed-Sum256-1MiB", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			blake3.Sum256(buf)
		}
	})
	b.Run("keyed-1MiB-allcores", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		var m meter
		m.begin()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.Sum(buf)
			}
		})
		m.end()
		m.report(b, int64(len(buf)))
	})
}

func BenchmarkLimitZstdCompress(b *testing.B) {
	s := loadSample(b)
	for _, class := range []corpus.Class{-1, corpus.ClassText, corpus.ClassBinary, corpus.ClassCompressed} {
		name := "mix"
		if class >= 0 {
			name = class.String()
		}
		b.Run(name, func(b *testing.B) {
			var chunks [][]byte
			var n int64
			for _, f := range s.files {
				if class < 0 || f.class == class {
					chunks = append(chunks, f.chunks...)
					n += int64(len(f.data))
				}
			}
			b.SetBytes(n)
			var dst []byte
			var stored int64
			for b.Loop() {
				stored = 0
				for _, c := range chunks {
					out, comp := cas.Compress(dst, c)
					if comp == cas.CompressionZstd {
						dst = out[:0]
					}
					stored += int64(len(out))
				}
			}
			b.ReportMetric(float64(n)/float64(stored), "ratio")
		})
	}
}

func BenchmarkLimitZstdDecompress(b *testing.B) {
	s := loadSample(b)
	type blob struct {
		stored []byte
		comp   cas.Compression
		raw    int
	}
	var blobs []blob
	for _, f := range s.files {
		for _, c := range f.chunks {
			out, comp := cas.Compress(nil, c)
			blobs = append(blobs, blob{bytes.Clone(out), comp, len(c)})
		}
	}
	b.SetBytes(s.total)
	var buf []byte
	for b.Loop() {
		for _, bl := range blobs {
			out, err := cas.Decompress(buf, bl.stored, bl.comp, bl.raw)
			if err != nil {
				b.Fatal(err)
			}
			buf = out[:0]
		}
	}
}

func BenchmarkLimitMemcpy(b *testing.B) {
	for _, size := range []int{1 << 20, 64 << 20} {
		src := make([]byte, size)
		dst := make([]byte, size)
		for i := range src {
			src[i] = byte(i * 7)
		}
		b.Run(byteSize(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				copy(dst, src)
			}
		})
	}
}

func byteSize(n int) string {
	if n >= 1<<20 {
		return strconv.Itoa(n>>20) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}

func BenchmarkLimitChunker(b *testing.B) {
	s := loadSample(b)
	ch := cas.NewChunker(nil, cas.DefaultChunkerParams())
	rd := bytes.NewReader(nil)
	b.SetBytes(s.total)
	for b.Loop() {
		for _, f := range s.files {
			rd.Reset(f.data)
			ch.Reset(rd)
			for {
				if _, err := ch.Next(); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// BenchmarkLimitReadTree reads the sample tree's files from the page cache
// with a 1 MiB buffer on one goroutine: the cost of the read syscalls and
// the copy out of the page cache.
func BenchmarkLimitReadTree(b *testing.B) {
	t := getTree(b, limitTreeSize, false)
	var paths []string
	_ = filepath.WalkDir(t.alice(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return err
	})
	buf := make([]byte, 1<<20)
	b.SetBytes(t.size)
	for b.Loop() {
		for _, p := range paths {
			f, err := os.Open(p)
			if err != nil {
				b.Fatal(err)
			}
			for {
				_, err := f.Read(buf)
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			f.Close()
		}
	}
}

// BenchmarkLimitCPUPipeline does each pipeline's per-byte CPU work in
// memory, with no file I/O, index, packs or goroutine hand-offs:
//
//	new:     chunk, hash, copy to a compress buffer, compress (cas.Compress)
//	dup:     chunk, hash
//	restore: decompress, verify hash, zero check (bytes.Equal) and a copy
//	         standing in for the write
//
// "1core" runs on one goroutine; "allcores" splits files over GOMAXPROCS
// goroutines. allcores is the best the end-to-end benchmark can do here.
func BenchmarkLimitCPUPipeline(b *testing.B) {
	s := loadSample(b)
	type blob struct {
		id     cas.ID
		stored []byte
		comp   cas.Compression
		raw    int
	}
	blobs := make([][]blob, len(s.files))
	for i, f := range s.files {
		for _, c := range f.chunks {
			out, comp := cas.Compress(nil, c)
			blobs[i] = append(blobs[i], blob{s.hasher.Sum(c), bytes.Clone(out), comp, len(c)})
		}
	}
	zeros := make([]byte, cas.DefaultChunkerParams().Max)
	type worker struct {
		ch       *cas.Chunker
		rd       *bytes.Reader
		dst, buf []byte
		out      []byte
	}
	newWorker := func() *worker {
		p := cas.DefaultChunkerParams()
		return &worker{ch: cas.NewChunker(nil, p), rd: bytes.NewReader(nil), buf: make([]byte, p.Max), out: make([]byte, p.Max)}
	}
	stages := map[string]func(w *worker, i int){
		"new": func(w *worker, i int) {
			w.rd.Reset(s.files[i].data)
			w.ch.Reset(w.rd)
			for {
				c, err := w.ch.Next()
				if err == io.EOF {
					return
				}
				s.hasher.Sum(c)
				n := copy(w.buf, c)
				out, comp := cas.Compress(w.dst, w.buf[:n])
				if comp == cas.CompressionZstd {
					w.dst = out[:0]
				}
			}
		},
		"dup": func(w *worker, i int) {
			w.rd.Reset(s.files[i].data)
			w.ch.Reset(w.rd)
			for {
				c, err := w.ch.Next()
				if err == io.EOF {
					return
				}
				s.hasher.Sum(c)
			}
		},
		"restore": func(w *worker, i int) {
			for _, bl := range blobs[i] {
				out, err := cas.Decompress(w.buf, bl.stored, bl.comp, bl.raw)
				if err != nil {
					panic(err)
				}
				w.buf = out[:0]
				if err := s.hasher.Verify(cas.BlobData, bl.id, out); err != nil {
					panic(err)
				}
				if !bytes.Equal(out, zeros[:len(out)]) {
					copy(w.out, out)
				}
			}
		},
	}
	for _, name := range []string{"new", "dup", "restore"} {
		stage := stages[name]
		b.Run(name+"-1core", func(b *testing.B) {
			w := newWorker()
			b.SetBytes(s.total)
			for b.Loop() {
				for i := range s.files {
					stage(w, i)
				}
			}
		})
		b.Run(name+"-allcores", func(b *testing.B) {
			procs := runtime.GOMAXPROCS(0)
			workers := make([]*worker, procs)
			for i := range workers {
				workers[i] = newWorker()
			}
			b.SetBytes(s.total)
			var m meter
			m.begin()
			for b.Loop() {
				var wg sync.WaitGroup
				next := make(chan int, len(s.files))
				for i := range s.files {
					next <- i
				}
				close(next)
				for _, w := range workers {
					wg.Go(func() {
						for i := range next {
							stage(w, i)
						}
					})
				}
				wg.Wait()
			}
			m.end()
			m.report(b, s.total)
		})
	}
}

// The all-core benchmarks report cpu-util (CPU seconds per wall second;
// 2 = both cores were ours) and MB/cpu-s: the machine is shared, and a
// low cpu-util means the wall-clock MB/s understates what the code can do.

// BenchmarkLimitZstdParallel compresses the mix on all cores two ways:
// through cas.Compress (one process-wide encoder built with
// WithEncoderConcurrency(1), whose EncodeAll takes its single internal
// encoder from a channel, so concurrent calls queue) and with one encoder
// per goroutine (same options). The difference is what capture's
// compressor goroutines can gain from not sharing the encoder.
func BenchmarkLimitZstdParallel(b *testing.B) {
	s := loadSample(b)
	var chunks [][]byte
	for _, f := range s.files {
		chunks = append(chunks, f.chunks...)
	}
	run := func(b *testing.B, compress func(enc *zstd.Encoder, dst, c []byte) []byte, perWorker bool) {
		procs := runtime.GOMAXPROCS(0)
		encs := make([]*zstd.Encoder, procs)
		for i := range encs {
			if perWorker {
				enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
					zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(false))
				if err != nil {
					b.Fatal(err)
				}
				encs[i] = enc
			}
		}
		b.SetBytes(s.total)
		var m meter
		m.begin()
		for b.Loop() {
			next := make(chan int, len(chunks))
			for i := range chunks {
				next <- i
			}
			close(next)
			var wg sync.WaitGroup
			for w := range procs {
				wg.Go(func() {
					var dst []byte
					for i := range next {
						dst = compress(encs[w], dst, chunks[i])
					}
				})
			}
			wg.Wait()
		}
		m.end()
		m.report(b, s.total)
	}
	b.Run("shared-cas.Compress", func(b *testing.B) {
		run(b, func(_ *zstd.Encoder, dst, c []byte) []byte {
			out, comp := cas.Compress(dst, c)
			if comp == cas.CompressionZstd {
				return out[:0]
			}
			return dst
		}, false)
	})
	b.Run("encoder-per-goroutine", func(b *testing.B) {
		run(b, func(enc *zstd.Encoder, dst, c []byte) []byte {
			return enc.EncodeAll(c, dst[:0])[:0]
		}, true)
	})
}

// BenchmarkLimitPageCacheWrite writes 64 MiB in 1 MiB pwrites: over the
// same, already cached file ("overwrite": a copy into existing page-cache
// pages) and into new files ("new-files": page allocation too, what a
// restore does). New files are deleted only when the benchmark ends.
func BenchmarkLimitPageCacheWrite(b *testing.B) {
	const size = 64 << 20
	buf := oneMiB(b)
	dir := filepath.Join(work(b), "pagecache-"+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	write := func(b *testing.B, f *os.File) {
		for off := int64(0); off < size; off += int64(len(buf)) {
			if _, err := f.WriteAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("overwrite", func(b *testing.B) {
		f, err := os.Create(filepath.Join(dir, "same"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		write(b, f)
		b.SetBytes(size)
		for b.Loop() {
			write(b, f)
		}
	})
	b.Run("new-files", func(b *testing.B) {
		b.SetBytes(size)
		n := 0
		for b.Loop() {
			n++
			f, err := os.Create(filepath.Join(dir, "new-"+strconv.Itoa(n)))
			if err != nil {
				b.Fatal(err)
			}
			write(b, f)
			f.Close()
		}
	})
}

// BenchmarkLimitCreateFiles creates 1000 empty files in 140 directories
// 3 deep (below a 2-deep prefix, like home/alice), reported as ns/file,
// two ways:
//
//	os.Root: what restore does per file: Lstat (may it replace?), OpenFile
//	  O_CREATE|O_EXCL of a temporary name, Chmod, Close, Chtimes, Rename,
//	  each resolving the whole relative path inside the os.Root
//	dirfd: the same operations relative to an open directory descriptor
//	  (fstatat, openat, fchmod, futimens, renameat): no path walking
//
// Files are deleted only when the benchmark ends: ext4 skips inodes deleted
// in the last minutes when it allocates new ones, which makes creating files
// right after a mass delete much slower (recently_deleted in
// fs/ext4/ialloc.c).
func BenchmarkLimitCreateFiles(b *testing.B) {
	const files = 1000
	base := filepath.Join(work(b), "create-"+strconv.Itoa(os.Getpid()))
	defer os.RemoveAll(base)
	n := 0
	subdir := func(i int) string {
		return "home/alice/d" + strconv.Itoa(i%20) + "/e" + strconv.Itoa(i%7) + "/f"
	}
	mt := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) // any fixed mtime
	b.Run("os.Root", func(b *testing.B) {
		for b.Loop() {
			n++
			dir := filepath.Join(base, strconv.Itoa(n))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			root, err := os.OpenRoot(dir)
			if err != nil {
				b.Fatal(err)
			}
			for i := range files {
				sub := subdir(i)
				if i < 140 {
					if err := root.MkdirAll(sub, 0o755); err != nil {
						b.Fatal(err)
					}
				}
				name := sub + "/f-" + strconv.Itoa(i)
				if _, err := root.Lstat(name); err == nil {
					b.Fatal("exists")
				}
				tmp := sub + "/.tmp-" + strconv.Itoa(i)
				f, err := root.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
				if err != nil {
					b.Fatal(err)
				}
				_ = f.Chmod(0o644)
				f.Close()
				_ = root.Chtimes(tmp, mt, mt)
				if err := root.Rename(tmp, name); err != nil {
					b.Fatal(err)
				}
			}
			root.Close()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*files), "ns/file")
	})
	b.Run("dirfd", func(b *testing.B) {
		ts := []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
		for b.Loop() {
			n++
			dir := filepath.Join(base, strconv.Itoa(n))
			dirs := map[string]int{}
			for i := range files {
				sub := subdir(i)
				dfd, ok := dirs[sub]
				if !ok {
					if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
						b.Fatal(err)
					}
					var err error
					dfd, err = unix.Open(filepath.Join(dir, sub), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
					if err != nil {
						b.Fatal(err)
					}
					dirs[sub] = dfd
				}
				name := "f-" + strconv.Itoa(i)
				var st unix.Stat_t
				if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
					b.Fatal("exists")
				}
				tmp := ".tmp-" + strconv.Itoa(i)
				fd, err := unix.Openat(dfd, tmp, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
				if err != nil {
					b.Fatal(err)
				}
				_ = unix.Fchmod(fd, 0o644)
				_ = unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH)
				unix.Close(fd)
				if err := unix.Renameat(dfd, tmp, dfd, name); err != nil {
					b.Fatal(err)
				}
			}
			for _, fd := range dirs {
				unix.Close(fd)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*files), "ns/file")
	})
}

// BenchmarkLimitSyscall is the cost of one cheap system call (getppid) and
// of opening and closing an existing file: on this VM (paravirtualized,
// with page-table isolation) system calls are much dearer than on bare
// metal, which weighs on restore's per-file metadata calls.
func BenchmarkLimitSyscall(b *testing.B) {
	b.Run("getppid", func(b *testing.B) {
		for b.Loop() {
			unix.Getppid()
		}
	})
	b.Run("open-close", func(b *testing.B) {
		p := filepath.Join(work(b), "syscall-probe")
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			unix.Close(fd)
		}
	})
}
