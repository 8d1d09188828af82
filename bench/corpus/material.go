package corpus

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

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
