package corpus

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

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

// ---- corpus ----

type span struct{ start, end int }

// material is the real material generated files are built from.
type material struct {
	text      []byte // text files, concatenated, each ending in '\n'
	textFiles []span
	bins      [][]byte      // executables
	packed    []packedFile  // real compressed files (read when used)
	words     []string      // identifiers seen in text, for names and log lines
	loadTime  time.Duration //
}

type packedFile struct {
	path string
	size int64
}

const (
	textCorpusCap = 48 << 20
	binCorpusCap  = 96 << 20
	maxTextFile   = 512 << 10
	maxPackedFile = 1 << 20
)

// GoRoot is the Go installation the generator takes its material from
// (source, documentation and executables).
func GoRoot() string {
	if g := os.Getenv("GOROOT"); g != "" {
		return g
	}
	if _, err := os.Stat("/usr/local/go/src"); err == nil {
		return "/usr/local/go"
	}
	return runtime.GOROOT() //nolint:staticcheck // fallback only
}

var textNameExts = map[string]bool{
	".go": true, ".s": true, ".c": true, ".h": true, ".txt": true, ".md": true,
	".html": true, ".css": true, ".js": true, ".py": true, ".sh": true, ".json": true,
	".xml": true, ".yaml": true, ".yml": true, ".toml": true, ".csv": true, ".rst": true,
	".proto": true, ".mod": true, ".tmpl": true, ".pl": true, ".awk": true, ".bash": true,
}

func isTextName(path string) bool {
	base := filepath.Base(path)
	ext := filepath.Ext(base)
	if textNameExts[ext] {
		return true
	}
	if strings.HasPrefix(path, "/usr/share/doc/") && ext == "" {
		return true // copyright, README, NEWS ...
	}
	return false
}

var loadMaterial = sync.OnceValues(func() (*material, error) {
	start := time.Now()
	c := &material{}
	root := GoRoot()

	// Text: source and documentation. Paths come from WalkDir in lexical
	// order; a stride thins them to the cap so the corpus spans every
	// package and document rather than the alphabetically first ones.
	var cands []packedFile
	var total int64
	for _, r := range []string{filepath.Join(root, "src"), "/usr/share/doc"} {
		_ = filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || !isTextName(p) {
				return nil
			}
			info, err := d.Info()
			if err != nil || info.Size() < 256 || info.Size() > maxTextFile {
				return nil
			}
			cands = append(cands, packedFile{p, info.Size()})
			total += info.Size()
			return nil
		})
	}
	stride := int(total/textCorpusCap) + 1
	words := map[string]bool{}
	for i := 0; i < len(cands); i += stride {
		b, err := os.ReadFile(cands[i].path)
		if err != nil || bytes.IndexByte(b, 0) >= 0 || !utf8.Valid(b[:min(len(b), 8<<10)]) {
			continue
		}
		if b[len(b)-1] != '\n' {
			b = append(b, '\n')
		}
		s := span{len(c.text), len(c.text) + len(b)}
		c.text = append(c.text, b...)
		c.textFiles = append(c.textFiles, s)
		if len(words) < 20000 {
			for _, w := range identifiers(b[:min(len(b), 2048)]) {
				words[w] = true
			}
		}
	}
	if len(c.textFiles) < 100 {
		return nil, fmt.Errorf("generate: found only %d text files under %s/src and /usr/share/doc", len(c.textFiles), root)
	}
	for w := range words {
		c.words = append(c.words, w)
	}
	slices.Sort(c.words)

	// Binaries: the Go toolchain's executables.
	tools, _ := filepath.Glob(filepath.Join(root, "pkg", "tool", "*", "*"))
	bins, _ := filepath.Glob(filepath.Join(root, "bin", "*"))
	var binTotal int
	for _, p := range append(tools, bins...) {
		if binTotal >= binCorpusCap {
			break
		}
		b, err := os.ReadFile(p)
		if err != nil || len(b) < 1<<20 {
			continue
		}
		b = b[:min(len(b), binCorpusCap-binTotal)]
		c.bins = append(c.bins, b)
		binTotal += len(b)
	}
	if len(c.bins) == 0 {
		return nil, fmt.Errorf("generate: no executables under %s/pkg/tool or %s/bin", root, root)
	}

	// Compressed: real .gz and .png files, read only when used.
	_ = filepath.WalkDir("/usr/share", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if ext := filepath.Ext(p); ext != ".gz" && ext != ".png" {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Size() < 512 || info.Size() > maxPackedFile {
			return nil
		}
		c.packed = append(c.packed, packedFile{p, info.Size()})
		return nil
	})
	c.loadTime = time.Since(start)
	return c, nil
})

// identifiers returns the identifier-like words of at least 4 bytes in b.
func identifiers(b []byte) []string {
	var out []string
	for i := 0; i < len(b); {
		if !isIdentStart(b[i]) {
			i++
			continue
		}
		j := i + 1
		for j < len(b) && isIdent(b[j]) {
			j++
		}
		if j-i >= 4 && j-i <= 24 {
			out = append(out, string(b[i:j]))
		}
		i = j
	}
	return out
}

func isIdentStart(c byte) bool { return c == '_' || c|0x20 >= 'a' && c|0x20 <= 'z' }
func isIdent(c byte) bool      { return isIdentStart(c) || c >= '0' && c <= '9' }

// ---- plan ----

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

func logUniform(r *rand.Rand, lo, hi int64) int64 {
	return int64(math.Exp(math.Log(float64(lo)) + r.Float64()*(math.Log(float64(hi))-math.Log(float64(lo)))))
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

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

// ---- content ----

// writer generates file contents; one per goroutine.
type writer struct {
	c       *material
	buf     *bufio.Writer
	scratch []byte
	text    []byte // gzip input
	gz      *gzip.Writer
	gzOut   bytes.Buffer
}

func newWriter(c *material) *writer {
	gz, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return &writer{c: c, buf: bufio.NewWriterSize(nil, 1<<20), gz: gz}
}

// genEpoch is the fixed mtime base of generated files.
var genEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

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

// appendText appends at least n bytes of text: runs of lines spliced from
// random real files, with seeded variations (renamed identifiers, edited
// numbers, inserted log and config lines).
func (w *writer) appendText(r *rand.Rand, dst []byte, n int) []byte {
	target := len(dst) + n
	c := w.c
	for len(dst) < target {
		switch k := r.IntN(100); {
		case k < 8: // a burst of log lines
			for range 1 + r.IntN(40) {
				dst = w.appendLogLine(r, dst)
			}
			continue
		case k < 12: // config lines
			for range 1 + r.IntN(20) {
				dst = fmt.Appendf(dst, "%s.%s = %d\n", pick(r, c.words), pick(r, c.words), r.IntN(100000))
			}
			continue
		}
		f := pick(r, c.textFiles)
		file := c.text[f.start:f.end]
		// Start at a random line; take 8-160 lines.
		off := r.IntN(len(file))
		if i := bytes.LastIndexByte(file[:off], '\n'); i >= 0 {
			off = i + 1
		} else {
			off = 0
		}
		end := off
		for lines := 8 + r.IntN(152); lines > 0 && end < len(file); lines-- {
			i := bytes.IndexByte(file[end:], '\n')
			if i < 0 {
				end = len(file)
				break
			}
			end += i + 1
		}
		block := file[off:end]
		if r.IntN(3) == 0 { // rename an identifier throughout the block
			if ids := identifiers(block[:min(len(block), 512)]); len(ids) > 0 {
				id := pick(r, ids)
				block = bytes.ReplaceAll(block, []byte(id), fmt.Appendf(nil, "%s%s%d", id, pick(r, c.words), r.IntN(1000)))
			}
		}
		start := len(dst)
		dst = append(dst, block...)
		// Edit a few digits so numbers differ between copies of a block.
		for range r.IntN(4) {
			i := start + r.IntN(len(dst)-start+1)
			if i < len(dst) && dst[i] >= '0' && dst[i] <= '9' {
				dst[i] = byte('0' + r.IntN(10))
			}
		}
	}
	return dst
}

var logLevels = []string{"INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"}

func (w *writer) appendLogLine(r *rand.Rand, dst []byte) []byte {
	t := genEpoch.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour))))
	return fmt.Appendf(dst, "%s %s %s: %s %s id=%08x latency=%dms status=%d\n",
		t.Format(time.RFC3339Nano), pick(r, logLevels), pick(r, w.c.words), pick(r, w.c.words), pick(r, w.c.words),
		r.Uint32(), r.IntN(2000), pick(r, []int{200, 200, 200, 204, 301, 404, 500}))
}

// appendBinary appends one piece (4-128 KiB) of a random executable at a
// random 16-byte-aligned offset, with a few 8-byte words replaced by
// pointer-like values, the way relocated or rebuilt binaries differ.
func (w *writer) appendBinary(r *rand.Rand, dst []byte) []byte {
	b := pick(r, w.c.bins)
	n := int(logUniform(r, 4<<10, 128<<10))
	n = min(n, len(b))
	off := r.IntN(len(b)-n+1) &^ 15
	start := len(dst)
	dst = append(dst, b[off:off+n]...)
	for i := start + r.IntN(2048); i+8 <= len(dst); i += 512 + r.IntN(3584) {
		binary.LittleEndian.PutUint64(dst[i:], 0x4000_0000+r.Uint64N(1<<24)&^7)
	}
	return dst
}

// CopyTree copies the regular files and directories under src to dst (which
// must not exist), keeping modes and mtimes. The copies are new inodes.
func CopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case d.Type().IsRegular():
			if err := copyFile(p, target, info.Mode().Perm()); err != nil {
				return err
			}
			return os.Chtimes(target, info.ModTime(), info.ModTime())
		}
		return nil
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
