package corpus

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"golang.org/x/sync/errgroup"
)

func (p *corpusPlan) write(c *material, out string, seed uint64) error {
	dirs := make([]string, 0, len(p.dirs))
	for d := range p.dirs {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(out, filepath.FromSlash(d)), 0o755); err != nil {
			return fmt.Errorf("corpus: %w", err)
		}
	}
	// Generated files first (largest first), then copies and edited copies
	// of them. Each file's bytes depend only on the seed and its index.
	var gen, copies []int
	for i, f := range p.files {
		if f.src < 0 {
			gen = append(gen, i)
		} else {
			copies = append(copies, i)
		}
	}
	bySize := func(a, b int) int { return compareInt64(p.files[b].size, p.files[a].size) }
	slices.SortStableFunc(gen, bySize)
	slices.SortStableFunc(copies, bySize)
	pool := sync.Pool{New: func() any { return newCorpusWriter(c) }}
	for _, phase := range [][]int{gen, copies} {
		var g errgroup.Group
		g.SetLimit(runtime.GOMAXPROCS(0))
		for _, i := range phase {
			g.Go(func() error {
				w := pool.Get().(*corpusWriter)
				defer pool.Put(w)
				return w.writeFile(p, out, i, seed)
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	for _, l := range p.links {
		name := filepath.Join(out, filepath.FromSlash(l.rel))
		if err := os.Symlink(l.target, name); err != nil {
			return fmt.Errorf("corpus: %w", err)
		}
		if err := lchtimes(name, l.mtime); err != nil {
			return err
		}
	}
	for _, d := range dirs {
		name := filepath.Join(out, filepath.FromSlash(d))
		if err := os.Chmod(name, p.dirs[d].mode); err != nil {
			return fmt.Errorf("corpus: %w", err)
		}
		if err := os.Chtimes(name, p.dirs[d].mtime, p.dirs[d].mtime); err != nil {
			return fmt.Errorf("corpus: %w", err)
		}
	}
	return nil
}

// corpusWriter makes file contents; one per goroutine.
type corpusWriter struct {
	w       *writer // gen.go's text and binary splicer
	out     *bufio.Writer
	scratch []byte
	in      []byte
	gz      *kgzip.Writer
	gzOut   bytes.Buffer
}

func newCorpusWriter(c *material) *corpusWriter {
	gz, _ := kgzip.NewWriterLevel(io.Discard, kgzip.BestSpeed)
	return &corpusWriter{w: newWriter(c), out: bufio.NewWriterSize(nil, 1<<20), gz: gz}
}

func contentRand(seed, id uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed^0x636f6e74656e74, id)) // "content"
}

func (cw *corpusWriter) writeFile(p *corpusPlan, out string, i int, seed uint64) error {
	f := &p.files[i]
	name := filepath.Join(out, filepath.FromSlash(f.rel))
	var err error
	switch {
	case f.src >= 0 && f.kind != kindEdited:
		err = copyFile(filepath.Join(out, filepath.FromSlash(p.files[f.src].rel)), name, 0o600)
	case f.packed != "":
		var b []byte
		if b, err = os.ReadFile(f.packed); err == nil && int64(len(b)) != f.size {
			err = fmt.Errorf("%s changed size while generating", f.packed)
		}
		if err == nil {
			err = os.WriteFile(name, b, 0o600)
		}
	default:
		err = cw.create(name, func() error {
			r := contentRand(seed, f.id)
			if f.src >= 0 {
				return cw.editCopy(r, filepath.Join(out, filepath.FromSlash(p.files[f.src].rel)), f)
			}
			return cw.fill(r, spec{ct: f.ct, mix: f.mix, name: path.Base(f.rel), t: f.mtime}, f.size)
		})
	}
	if err == nil {
		err = os.Chmod(name, f.mode)
	}
	if err == nil {
		err = os.Chtimes(name, f.mtime, f.mtime)
	}
	if err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	return nil
}

// create writes a new file through cw.out with fill.
func (cw *corpusWriter) create(name string, fill func() error) error {
	if err := cw.open(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fill); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// open opens name with flag (new files get mode 0600) and writes to it
// through cw.out with fill.
func (cw *corpusWriter) open(name string, flag int, fill func() error) error {
	out, err := os.OpenFile(name, flag, 0o600)
	if err != nil {
		return err
	}
	cw.out.Reset(out)
	err = fill()
	if err == nil {
		err = cw.out.Flush()
	}
	cw.out.Reset(nil)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// editCopy writes the source file with f.edits applied.
func (cw *corpusWriter) editCopy(r *rand.Rand, src string, f *corpusFile) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return cw.applyEdits(r, in, f.edits, spec{ct: f.ct, mix: f.mix, name: path.Base(f.rel), t: f.mtime})
}

func (cw *corpusWriter) applyEdits(r *rand.Rand, in *os.File, edits []corpusEdit, s spec) error {
	if s.ct != ctBinary && s.ct != ctMixed {
		s.ct = ctText
	}
	pos := int64(0)
	for _, e := range edits {
		if _, err := io.CopyN(cw.out, in, e.off-pos); err != nil {
			return err
		}
		if err := cw.fill(r, s, e.ins); err != nil {
			return err
		}
		if _, err := in.Seek(e.del, io.SeekCurrent); err != nil {
			return err
		}
		pos = e.off + e.del
	}
	_, err := io.Copy(cw.out, in)
	return err
}

// spec says what a file's bytes look like.
type spec struct {
	ct   content
	mix  [3]int
	name string    // base name: picks config formats and key kinds
	t    time.Time // mtime: logs end there
}

// mixShortMean is the mean length of a log-uniform 8-48 KiB segment.
const mixShortMean = (48<<10 - 8<<10) / 1.791759469228055 // ln 6

// fill writes exactly size bytes of content s to cw.out.
func (cw *corpusWriter) fill(r *rand.Rand, s spec, size int64) error {
	left := size
	logT := s.t.Add(-time.Duration(1+r.IntN(60)) * 24 * time.Hour)
	zipNext := false
	for left > 0 {
		b := cw.scratch[:0]
		switch s.ct {
		case ctText:
			b = cw.w.appendText(r, b, int(min(left, 64<<10)))
		case ctBinary:
			b = cw.w.appendBinary(r, b)
		case ctZip:
			b = cw.appendGzip(r, b, left, 75)
		case ctMedia, ctPacked:
			b = cw.appendGzip(r, b, left, 15)
		case ctMixed:
			// Runs of text or binary alternating with small compressed
			// streams (embedded images, cabinets), as in PDFs, decks and
			// installers; run lengths keep the weights byte shares.
			ct, seg := ctText, int64(0)
			g := float64(s.mix[2]) / float64(s.mix[0]+s.mix[1]+s.mix[2])
			if zipNext && g > 0 {
				ct, seg = ctZip, logUniform(r, 8<<10, 48<<10)
			} else {
				if r.IntN(s.mix[0]+s.mix[1]) >= s.mix[0] {
					ct = ctBinary
				}
				if g > 0 {
					mean := int64(mixShortMean * (1 - g) / g)
					seg = mean/2 + r.Int64N(mean+1)
				} else {
					seg = logUniform(r, 128<<10, 2<<20)
				}
			}
			zipNext = !zipNext
			seg = min(seg, left)
			if err := cw.fill(r, spec{ct: ct, name: s.name, t: s.t}, seg); err != nil {
				return err
			}
			left -= seg
			continue
		case ctConfig:
			b = appendConfig(r, cw.w.c, b, s.name, int(min(left, 64<<10)))
		case ctLog:
			b, logT = appendLog(r, cw.w.c, b, logT, int(min(left, 64<<10)))
		case ctHistory:
			b = appendHistory(r, cw.w.c, b, int(min(left, 64<<10)))
		case ctKey:
			b = appendKey(r, b, s.name, int(min(left, 64<<10)))
		}
		k := min(int64(len(b)), left)
		if _, err := cw.out.Write(b[:k]); err != nil {
			return err
		}
		left -= k
		cw.scratch = b[:0]
	}
	return nil
}

// appendGzip appends one gzip member of about min(left, 1 MiB) bytes made
// from textPct% spliced text and the rest pieces of executables.
func (cw *corpusWriter) appendGzip(r *rand.Rand, dst []byte, left int64, textPct int) []byte {
	n := int(min(max(left*5/2, 4<<10), 2<<20))
	in := cw.in[:0]
	for len(in) < n {
		if r.IntN(100) < textPct {
			in = cw.w.appendText(r, in, 16<<10)
		} else {
			in = cw.w.appendBinary(r, in)
		}
	}
	cw.in = in
	cw.gzOut.Reset()
	cw.gz.Reset(&cw.gzOut)
	_, _ = cw.gz.Write(in)
	_ = cw.gz.Close()
	return append(dst, cw.gzOut.Bytes()...)
}
