package corpus

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"smp/cas"
)

// ratioBlock is the unit MeasureRatio compresses: the store's average
// chunk size, so the ratio is the one the store's per-chunk compression
// can reach.
const ratioBlock = 1 << 20

// Ratio is how well zstd (the store's setting, SpeedFastest, via
// cas.Compress with its store-raw fallback) compresses a tree cut into 1 MiB
// blocks, by class (ClassOf the file's name).
type Ratio struct {
	Files       int
	Raw, Stored [NumClasses]int64
}

// Total returns raw bytes / stored bytes over every class.
func (r Ratio) Total() float64 {
	var raw, stored int64
	for c := range NumClasses {
		raw += r.Raw[c]
		stored += r.Stored[c]
	}
	return float64(raw) / float64(max(stored, 1))
}

func (r Ratio) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "zstd ratio %.2f (", r.Total())
	for c := range NumClasses {
		if c > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.2f", c, float64(r.Raw[c])/float64(max(r.Stored[c], 1)))
	}
	b.WriteString(")")
	return b.String()
}

// ratioFile is a regular file to measure and the offsets of its blocks
// that are sampled.
type ratioFile struct {
	path string
	size int64
	offs []int64
}

// MeasureRatio compresses the regular files under dir in 1 MiB blocks
// through cas.Compress (the store's zstd setting) and sums raw and stored
// bytes per class. When the files hold more than maxBytes (0: no limit),
// only every k-th block is compressed, evenly across the sorted file list,
// so a large corpus is measured in bounded time.
func MeasureRatio(dir string, maxBytes int64) (Ratio, error) {
	files, err := sampleBlocks(dir, maxBytes)
	if err != nil {
		return Ratio{}, err
	}
	res := Ratio{Files: len(files)}
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	bufs := sync.Pool{New: func() any { b := make([]byte, ratioBlock); return &b }}
	for _, f := range files {
		if len(f.offs) == 0 {
			continue
		}
		g.Go(func() error {
			bp := bufs.Get().(*[]byte)
			defer bufs.Put(bp)
			raw, stored, err := compressBlocks(f, *bp)
			if err != nil {
				return err
			}
			c := ClassOf(f.path)
			mu.Lock()
			res.Raw[c] += raw
			res.Stored[c] += stored
			mu.Unlock()
			return nil
		})
	}
	return res, g.Wait()
}

// sampleBlocks lists the regular files under dir in lexical order with
// the blocks to compress: every block, or every k-th one (counting across
// files) when there are more than maxBytes.
func sampleBlocks(dir string, maxBytes int64) ([]ratioFile, error) {
	var files []ratioFile
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, ratioFile{path: p, size: info.Size()})
		total += info.Size()
		return nil
	})
	if err != nil {
		return nil, err
	}
	stride := int64(1)
	if maxBytes > 0 && total > maxBytes {
		stride = (total + maxBytes - 1) / maxBytes
	}
	next := int64(0) // global block index; an empty file counts as one
	for i := range files {
		f := &files[i]
		for off := int64(0); off < f.size || off == 0 && f.size == 0; off += ratioBlock {
			if f.size > 0 && next%stride == 0 {
				f.offs = append(f.offs, off)
			}
			next++
			if f.size == 0 {
				break
			}
		}
	}
	return files, nil
}

// compressBlocks compresses f's sampled blocks one at a time through buf
// and returns their raw and stored bytes.
func compressBlocks(f ratioFile, buf []byte) (raw, stored int64, err error) {
	in, err := os.Open(f.path)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	var dst []byte
	for _, off := range f.offs {
		n, err := in.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			return 0, 0, err
		}
		out, comp := cas.Compress(dst, buf[:n])
		if comp == cas.CompressionZstd {
			dst = out[:0]
		}
		raw += int64(n)
		stored += int64(len(out))
	}
	return raw, stored, nil
}
