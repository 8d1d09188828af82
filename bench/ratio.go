package bench

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

// Ratio is how well zstd (the store's setting, SpeedFastest, via
// cas.Compress with its store-raw fallback) compresses a tree cut into 1 MiB
// blocks, the store's average chunk size.
type Ratio struct {
	Files       int
	Raw, Stored [numClasses]int64
}

// Total returns raw bytes / stored bytes over every class.
func (r Ratio) Total() float64 {
	var raw, stored int64
	for c := range numClasses {
		raw += r.Raw[c]
		stored += r.Stored[c]
	}
	return float64(raw) / float64(max(stored, 1))
}

func (r Ratio) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "zstd ratio %.2f (", r.Total())
	for c := range numClasses {
		if c > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.2f", c, float64(r.Raw[c])/float64(max(r.Stored[c], 1)))
	}
	b.WriteString(")")
	return b.String()
}

// MeasureRatio compresses every file under dir in 1 MiB blocks and sums
// raw and stored bytes per class (classified by ClassOf).
func MeasureRatio(dir string) (Ratio, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return Ratio{}, err
	}
	var mu sync.Mutex
	res := Ratio{Files: len(paths)}
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	bufs := sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}
	for _, p := range paths {
		g.Go(func() error {
			bp := bufs.Get().(*[]byte)
			defer bufs.Put(bp)
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			var raw, stored int64
			var dst []byte
			for {
				n, err := io.ReadFull(f, *bp)
				if n > 0 {
					out, comp := cas.Compress(dst, (*bp)[:n])
					if comp == cas.CompressionZstd {
						dst = out[:0]
					}
					raw += int64(n)
					stored += int64(len(out))
				}
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					break
				}
				if err != nil {
					return err
				}
			}
			c := ClassOf(p)
			mu.Lock()
			res.Raw[c] += raw
			res.Stored[c] += stored
			mu.Unlock()
			return nil
		})
	}
	return res, g.Wait()
}
