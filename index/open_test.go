package index

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"smp/cas"
)

// TestOpenAfterKill: an empty memtable file left by a SIGKILL during open is
// no obstacle, and nothing written before is lost.
func TestOpenAfterKill(t *testing.T) {
	dir := t.TempDir()
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.PutRecord(cas.ID{1}, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	// A memtable file created by a killed process, never sized.
	if err := os.WriteFile(filepath.Join(dir, "00009.mem"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ix, err = Open(dir)
	if err != nil {
		t.Fatalf("open with an empty memtable file: %v", err)
	}
	if _, err := ix.Record(cas.ID{1}); err != nil {
		t.Fatalf("record lost: %v", err)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	// (A table with a garbage footer is refused before Badger opens it:
	// TestOpenDamagedTable.)
}

// TestOpenAfterKillInValueLogCreation builds, file by file, what a SIGKILL
// leaves while Badger creates the next value log or memtable file during
// open (O_CREATE, then ftruncate to the preallocated size, then the
// 20-byte header through the mapping): a zero-length file, a file shorter
// than the header, and a full-size file of zeros. Each state must open on
// the first try, twice in a row, with every earlier write intact.
func TestOpenAfterKillInValueLogCreation(t *testing.T) {
	states := map[string]func(path string, size int64) error{
		"zero-length": func(p string, _ int64) error { return os.WriteFile(p, nil, 0o644) },
		"short":       func(p string, _ int64) error { return os.WriteFile(p, []byte{0, 0, 0, 0, 0, 0, 0}, 0o644) },
		"unwritten": func(p string, size int64) error {
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				return err
			}
			return os.Truncate(p, size)
		},
	}
	// Badger preallocates twice the configured size, and numbers memtables
	// with five digits, value logs with six.
	kinds := map[string]struct {
		size   int64
		format string
	}{".vlog": {2 * vlogFileSize, "%06d.vlog"}, ".mem": {2 * memTableSize, "%05d.mem"}}
	for ext, kind := range kinds {
		for name, state := range states {
			t.Run(ext[1:]+"/"+name, func(t *testing.T) {
				dir := t.TempDir()
				ix, err := Open(dir)
				if err != nil {
					t.Fatal(err)
				}
				big := make([]byte, 4<<10) // over the value threshold: lives in the value log
				if err := ix.PutRecord(cas.ID{1}, big); err != nil {
					t.Fatal(err)
				}
				if err := ix.PutRecord(cas.ID{2}, []byte("{}")); err != nil {
					t.Fatal(err)
				}
				if err := ix.Close(); err != nil {
					t.Fatal(err)
				}
				next := nextFileID(t, dir, ext)
				if err := state(filepath.Join(dir, fmt.Sprintf(kind.format, next)), kind.size); err != nil {
					t.Fatal(err)
				}
				for round := range 2 {
					ix, err := Open(dir)
					if err != nil {
						t.Fatalf("open %d after a kill during %s creation: %v", round+1, ext, err)
					}
					if b, err := ix.Record(cas.ID{1}); err != nil || len(b) != len(big) {
						t.Errorf("value-log record after open %d: %d bytes, %v", round+1, len(b), err)
					}
					if b, err := ix.Record(cas.ID{2}); err != nil || string(b) != "{}" {
						t.Errorf("record after open %d: %q, %v", round+1, b, err)
					}
					if err := ix.PutRecord(cas.ID{byte(3 + round)}, []byte("x")); err != nil {
						t.Errorf("write after open %d: %v", round+1, err)
					}
					if err := ix.Close(); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}

// nextFileID returns one more than the highest numbered file with ext in
// dir: the file Badger creates next.
func nextFileID(t *testing.T, dir, ext string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"+ext))
	if err != nil {
		t.Fatal(err)
	}
	highest := 0
	for _, f := range files {
		n, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(f), ext))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		highest = max(highest, n)
	}
	return highest + 1
}
