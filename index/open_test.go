package index

import (
	"bytes"
	"encoding/binary"
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

// TestOpenReplaysLargerMemtableLog: a memtable log left by a process
// killed while its memtables were larger than memTableSize (an index
// written before the memtables shrank) holds more entries than a memtable
// of memTableSize takes. Badger replays it at open, and would panic with
// "Arena too small" unless the memtable is sized for the log.
func TestOpenReplaysLargerMemtableLog(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"clear", nil}, {"encrypted", bytes.Repeat([]byte{7}, 32)}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ix, err := open(dir, true, false, Options{EncryptionKey: tc.key, memTableSize: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			const packs, perPack = 40, 1000
			for p := range packs {
				if err := ix.AddPack(cas.ID{1, byte(p)}, 1<<20, logTestEntries(p, perPack)); err != nil {
					t.Fatal(err)
				}
			}
			logged, err := memtableBytes(dir)
			if err != nil {
				t.Fatal(err)
			}
			// An entry takes more bytes in an arena than in the log, and
			// a memtable's arena is 1.3 times memTableSize.
			if logged <= memTableSize*13/10 {
				t.Fatalf("the memtable log holds %d bytes: too few to overflow a %d-byte memtable", logged, memTableSize)
			}
			// What a kill leaves: the log (written through a shared
			// mapping) holds every entry, no table does.
			killed := t.TempDir()
			copyIndexAsKilled(t, dir, killed)
			if err := ix.Close(); err != nil {
				t.Fatal(err)
			}
			for round := range 2 {
				ix, err := Open(killed, Options{EncryptionKey: tc.key})
				if err != nil {
					t.Fatalf("open %d: %v", round+1, err)
				}
				for p := range packs {
					for i, e := range logTestEntries(p, perPack) {
						if i%10 != p%10 {
							continue // a tenth of them, spread over the log
						}
						loc, err := ix.Get(e.Type, e.ID)
						if err != nil || loc.Pack != (cas.ID{1, byte(p)}) || loc.Offset != e.Offset {
							t.Fatalf("open %d: blob %s: %+v, %v", round+1, e.ID.Short(), loc, err)
						}
					}
				}
				if err := ix.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func logTestEntries(pack, n int) []cas.PackEntry {
	out := make([]cas.PackEntry, n)
	for i := range out {
		id := cas.ID{2, byte(pack)}
		binary.BigEndian.PutUint64(id[8:], uint64(i)*0x9e3779b97f4a7c15)
		out[i] = cas.PackEntry{Type: cas.BlobData, ID: id, Offset: uint64(cas.PackHeaderSize + 100*i), StoredLen: 100, RawLen: 100}
	}
	return out
}

// copyIndexAsKilled copies the files of the open index in src to dst as
// a kill would leave them: a memtable log keeps its preallocated length
// but only the blocks written are allocated.
func copyIndexAsKilled(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		size := int64(len(b))
		if strings.HasSuffix(e.Name(), ".mem") {
			end := len(bytes.TrimRight(b, "\x00"))
			b = b[:min(len(b), (end+4095)&^4095)]
		}
		p := filepath.Join(dst, e.Name())
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
	}
}
