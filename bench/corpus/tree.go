package corpus

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Class is the kind of content a generated file holds.
type Class int

const (
	ClassText       Class = iota // spliced source code and documentation
	ClassBinary                  // spliced pieces of executables
	ClassCompressed              // gzip streams and real .gz/.png files
	NumClasses                   // the number of classes
)

func (c Class) String() string {
	switch c {
	case ClassText:
		return "text"
	case ClassBinary:
		return "binary"
	case ClassCompressed:
		return "compressed"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// classShare is the target fraction of bytes of each class.
var classShare = [NumClasses]float64{0.40, 0.30, 0.30}

var (
	textExts   = []string{".go", ".c", ".h", ".txt", ".md", ".html", ".log", ".conf", ".json", ".csv", ".py", ".xml"}
	binaryExts = []string{".bin", ".so", ".o", ".exe", ".dat", ".db", ".a", ".pack"}
	gzipExts   = []string{".gz", ".tgz"}
)

// ClassOf returns the class of a generated file from its name.
func ClassOf(name string) Class {
	ext := filepath.Ext(name)
	switch {
	case slices.Contains(binaryExts, ext):
		return ClassBinary
	case slices.Contains(gzipExts, ext), ext == ".png":
		return ClassCompressed
	}
	return ClassText
}

// TreeStats describes a generated tree.
type TreeStats struct {
	Files      int
	Dirs       int
	Total      int64
	Bytes      [NumClasses]int64
	SmallFiles int // 1-20 KiB
	LargeFiles int // 50-300 MiB
	Largest    int64
}

func (s TreeStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d files in %d dirs, %.1f MiB", s.Files, s.Dirs, float64(s.Total)/(1<<20))
	for c := range NumClasses {
		fmt.Fprintf(&b, ", %s %.0f%%", c, 100*float64(s.Bytes[c])/float64(max(s.Total, 1)))
	}
	fmt.Fprintf(&b, "; %d small (1-20 KiB), %d large (>=50 MiB), largest %.1f MiB", s.SmallFiles, s.LargeFiles, float64(s.Largest)/(1<<20))
	return b.String()
}

// GenerateTree writes a deterministic tree of exactly size bytes of file
// data under dir (created if missing) and returns what it wrote. The same
// seed on the same machine gives the same paths and bytes; see the package
// documentation for what the tree holds.
func GenerateTree(dir string, size int64, seed uint64) (TreeStats, error) {
	if size <= 0 {
		return TreeStats{}, fmt.Errorf("generate: size %d must be positive", size)
	}
	c, err := loadMaterial()
	if err != nil {
		return TreeStats{}, err
	}
	plan := makePlan(c, size, seed)
	st := TreeStats{Dirs: len(plan.dirs)}
	for _, f := range plan.files {
		st.Files++
		st.Total += f.size
		st.Bytes[f.class] += f.size
		switch {
		case f.size <= 20<<10:
			st.SmallFiles++
		case f.size >= 50<<20:
			st.LargeFiles++
		}
		st.Largest = max(st.Largest, f.size)
	}
	for _, d := range plan.dirs {
		if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(d)), 0o755); err != nil {
			return st, fmt.Errorf("generate: %w", err)
		}
	}
	// Files are written in parallel; each one's bytes depend only on the seed
	// and its index, so the result does not depend on scheduling. Large files
	// are started first so one of them does not end up alone at the end.
	order := make([]int, len(plan.files))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return compareInt64(plan.files[b].size, plan.files[a].size)
	})
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	var pool sync.Pool
	for _, i := range order {
		f := plan.files[i]
		g.Go(func() error {
			w, _ := pool.Get().(*writer)
			if w == nil {
				w = newWriter(c)
			}
			defer pool.Put(w)
			return w.writeFile(filepath.Join(dir, filepath.FromSlash(f.rel)), f, seed, i)
		})
	}
	if err := g.Wait(); err != nil {
		return st, err
	}
	return st, nil
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type fileSpec struct {
	rel    string
	class  Class
	size   int64
	packed string // a real compressed file copied whole, or ""
}

type plan struct {
	dirs  []string
	files []fileSpec
}

var (
	topDirs = []string{"Documents", "Projects", "Downloads", "Pictures", ".config", ".cache", ".local/share", "Music", "Desktop", "src", "work", ".mozilla/profile"}
	subDirs = []string{"archive", "reports", "2023", "2024", "notes", "build", "vendor", "assets", "data", "old", "misc", "photos", "backup", "drafts", "lib", "docs", "internal", "clients", "invoices", "research", "scans", "exports", "logs", "tmp"}
	stems   = []string{"report", "notes", "main", "util", "config", "data", "export", "backup", "image", "lib", "module", "index", "draft", "log", "dump", "cache", "session", "archive", "build", "asset"}
)

// makePlan decides every directory, file name, class and size. It runs
// sequentially on one seeded generator, so it is deterministic.
func makePlan(c *material, size int64, seed uint64) plan {
	r := rand.New(rand.NewPCG(seed, 0x706c616e)) // "plan"
	var p plan

	// Sizes: 8% of the bytes in small files (1-20 KiB), up to 30% in large
	// ones (50-300 MiB) when the tree is big enough, the rest in medium
	// files, log-uniform from 20 KiB to 16 MiB (capped at size/8).
	var sizes []int64
	small := size * 8 / 100
	for small > 0 {
		s := min(1<<10+r.Int64N(19<<10), small)
		sizes = append(sizes, s)
		small -= s
	}
	if size >= 256<<20 {
		large := size * 30 / 100
		for large >= 50<<20 {
			s := 50<<20 + r.Int64N(min(300<<20, large)-50<<20+1)
			sizes = append(sizes, s)
			large -= s
		}
	}
	r.Shuffle(len(sizes), func(i, j int) { sizes[i], sizes[j] = sizes[j], sizes[i] })
	mediumMax := max(min(16<<20, size/8), 64<<10)

	// Directories nested 2-4 deep, about one per 25 files.
	nFiles := len(sizes) + int(size/(1<<20))
	nDirs := max(8, nFiles/25)
	seen := map[string]bool{}
	for len(p.dirs) < nDirs {
		parts := []string{pick(r, topDirs)}
		depth := 2 + r.IntN(3)
		for len(strings.Split(strings.Join(parts, "/"), "/")) < depth {
			name := pick(r, subDirs)
			if r.IntN(3) == 0 {
				name = fmt.Sprintf("%s-%d", name, r.IntN(50))
			}
			parts = append(parts, name)
		}
		d := strings.Join(parts, "/")
		if !seen[d] {
			seen[d] = true
			p.dirs = append(p.dirs, d)
		}
	}
	slices.Sort(p.dirs)

	packedOrder := r.Perm(len(c.packed))
	nextPacked := 0
	var classBytes [NumClasses]int64
	var done int64
	remaining := size
	for i := 0; remaining > 0; i++ {
		var s int64
		if i < len(sizes) {
			s = sizes[i]
		} else {
			s = logUniform(r, 20<<10, mediumMax)
		}
		s = min(s, remaining)
		// Greedy class choice keeps each class's share of bytes close to
		// its target whatever the file sizes turn out to be.
		class, worst := ClassText, math.Inf(-1)
		for cl := range NumClasses {
			if d := classShare[cl]*float64(done+s) - float64(classBytes[cl]); d > worst {
				class, worst = cl, d
			}
		}
		f := fileSpec{class: class, size: s}
		var ext string
		switch class {
		case ClassText:
			ext = pick(r, textExts)
		case ClassBinary:
			ext = pick(r, binaryExts)
		case ClassCompressed:
			ext = pick(r, gzipExts)
			// Mostly real files for small sizes: the next unused one
			// (in seeded order) no bigger than the planned size.
			if s <= maxPackedFile && r.IntN(10) < 7 {
				for tries := 0; tries < 16 && nextPacked < len(packedOrder); tries++ {
					pf := c.packed[packedOrder[nextPacked]]
					nextPacked++
					if pf.size <= s {
						f.packed, f.size, ext = pf.path, pf.size, filepath.Ext(pf.path)
						break
					}
				}
			}
		}
		f.rel = fmt.Sprintf("%s/%s-%05d%s", pick(r, p.dirs), pick(r, stems), i, ext)
		p.files = append(p.files, f)
		classBytes[class] += f.size
		done += f.size
		remaining -= f.size
	}
	return p
}

func (w *writer) writeFile(path string, f fileSpec, seed uint64, index int) (err error) {
	if f.packed != "" {
		b, err := os.ReadFile(f.packed)
		if err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		if int64(len(b)) != f.size {
			return fmt.Errorf("generate: %s changed size while generating", f.packed)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
	} else {
		out, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		w.buf.Reset(out)
		r := rand.New(rand.NewPCG(seed, uint64(index)+1))
		err = w.fill(r, f)
		if err == nil {
			err = w.buf.Flush()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		w.buf.Reset(nil)
		if err != nil {
			return fmt.Errorf("generate %s: %w", path, err)
		}
	}
	mt := genEpoch.Add(time.Duration(index) * time.Minute)
	return os.Chtimes(path, mt, mt)
}

// fill writes exactly f.size bytes of f.class content to w.buf.
func (w *writer) fill(r *rand.Rand, f fileSpec) error {
	left := f.size
	for left > 0 {
		w.scratch = w.scratch[:0]
		switch f.class {
		case ClassText:
			w.scratch = w.appendText(r, w.scratch, 64<<10)
		case ClassBinary:
			w.scratch = w.appendBinary(r, w.scratch)
		case ClassCompressed:
			// A multi-member gzip stream of generated text; the last member
			// is cut at the planned size (the bytes are still real deflate
			// output, which is what matters to a compressor).
			n := int(min(max(left*4, 4<<10), 1<<20))
			w.text = w.appendText(r, w.text[:0], n)
			w.gzOut.Reset()
			w.gz.Reset(&w.gzOut)
			if _, err := w.gz.Write(w.text); err != nil {
				return err
			}
			if err := w.gz.Close(); err != nil {
				return err
			}
			w.scratch = append(w.scratch, w.gzOut.Bytes()...)
		}
		k := min(int64(len(w.scratch)), left)
		if _, err := w.buf.Write(w.scratch[:k]); err != nil {
			return err
		}
		left -= k
	}
	return nil
}
