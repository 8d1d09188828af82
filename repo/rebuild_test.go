package repo_test

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"smp/cas"
	"smp/cas/manifest"
	"smp/repo"
)

// commitOne stores one small record and returns its ID.
func commitOne(t *testing.T, dir string) cas.ID {
	t.Helper()
	r := openStore(t, dir)
	e := putFile(t, r, "a.txt", text("lost-index", 20000), 8000)
	id, err := r.CommitRecord(&manifest.Record{Computer: "PC1", Created: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Tree: putTree(t, r, e)})
	if err != nil {
		t.Fatal(err)
	}
	closeStore(t, r)
	return id
}

// newBadgerDir leaves a Badger database without smp's schema key in dir:
// what a first open killed before writing the key would leave.
func newBadgerDir(t *testing.T, dir string) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(8 << 20).WithValueThreshold(1 << 10).WithValueLogFileSize(1 << 20))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenRefusesLostIndex: a store whose packs exist but whose index is
// missing or new is refused with one line saying to rebuild (it would look
// empty otherwise), nothing is created, and smp index rebuild brings the
// record back. An interrupted rebuild never leaves a partial index in use.
func TestOpenRefusesLostIndex(t *testing.T) {
	tests := []struct {
		name     string
		lose     func(t *testing.T, dir string)
		wantLost bool // Open refuses; else the old index still serves
	}{
		{"index directory deleted", func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"index directory emptied", func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(dir, "index"), 0o700); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"index replaced by a new database", func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
				t.Fatal(err)
			}
			newBadgerDir(t, filepath.Join(dir, "index"))
		}, true},
		{"rebuild interrupted after setting the old index aside", func(t *testing.T, dir string) {
			defer repo.SetRebuildHook(func(p string) error {
				if p == "old set aside" {
					return errors.New("killed")
				}
				return nil
			})()
			if _, err := repo.RebuildIndex(dir); err == nil {
				t.Fatal("the hook did not stop the rebuild")
			}
		}, true},
		{"rebuild interrupted before the swap", func(t *testing.T, dir string) {
			defer repo.SetRebuildHook(func(p string) error {
				if p == "built" {
					return errors.New("killed")
				}
				return nil
			})()
			if _, err := repo.RebuildIndex(dir); err == nil {
				t.Fatal("the hook did not stop the rebuild")
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newStore(t)
			rec := commitOne(t, dir)
			tt.lose(t, dir)
			_, statErr := os.Stat(filepath.Join(dir, "index"))
			for range 2 { // a refusal changes nothing: the second open is refused too
				r, err := repo.Open(dir)
				if !tt.wantLost {
					if err != nil {
						t.Fatalf("Open after %s: %v", tt.name, err)
					}
					if _, err := r.Record(rec); err != nil {
						t.Errorf("record lost: %v", err)
					}
					r.Close()
					continue
				}
				if err == nil {
					r.Close()
					t.Fatalf("Open of a store whose index is lost succeeded")
				}
				if !errors.Is(err, repo.ErrIndexLost) || strings.Contains(err.Error(), "\n") ||
					!strings.Contains(err.Error(), "run smp index rebuild --store "+dir) {
					t.Errorf("Open = %q; want one line saying to run smp index rebuild --store %s (ErrIndexLost)", err, dir)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "index")); errors.Is(err, fs.ErrNotExist) != errors.Is(statErr, fs.ErrNotExist) {
				t.Errorf("a refused open created or removed the index directory")
			}
			rep, err := repo.RebuildIndex(dir)
			if err != nil || rep.Records != 1 {
				t.Fatalf("RebuildIndex = %+v, %v; want 1 record", rep, err)
			}
			if _, err := os.Stat(filepath.Join(dir, "index.rebuild")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("index.rebuild left behind (%v)", err)
			}
			r := openStore(t, dir)
			if _, err := r.Record(rec); err != nil {
				t.Errorf("record not back after the rebuild: %v", err)
			}
		})
	}
}

// TestOpenAcceptsNewStores: the states a new store passes through, crashes
// included, open normally: smp init writes no index, and the first open
// writes the schema key before any pack exists.
func TestOpenAcceptsNewStores(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"just initialised", func(t *testing.T, dir string) {}},
		{"first capture killed while writing its first pack", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "packs", "tmp", "x.tmp"), []byte("half a pack"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"first open killed before writing the schema key", func(t *testing.T, dir string) {
			newBadgerDir(t, filepath.Join(dir, "index"))
		}},
		{"first capture killed between committing and indexing a pack", func(t *testing.T, dir string) {
			closeStore(t, openStore(t, dir))
			packs, err := cas.NewPackDir(filepath.Join(dir, "packs"))
			if err != nil {
				t.Fatal(err)
			}
			defer packs.Close()
			p, err := packs.Create()
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Add(cas.BlobData, cas.ID{1}, cas.CompressionNone, []byte("x"), 1); err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := p.Commit(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newStore(t)
			if err := os.MkdirAll(filepath.Join(dir, "packs", "tmp"), 0o700); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, dir)
			r, err := repo.Open(dir)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			recs, err := r.Records()
			if err != nil || len(recs) != 0 {
				t.Errorf("Records = %d, %v", len(recs), err)
			}
			// The store works: a record commits and survives a reopen.
			e := putFile(t, r, "a.txt", text("new-store", 3000), 8000)
			id, err := r.CommitRecord(&manifest.Record{Computer: "PC1", Created: time.Now().UTC(), Tree: putTree(t, r, e)})
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			if _, err := openStore(t, dir).Record(id); err != nil {
				t.Errorf("record lost on reopen: %v", err)
			}
		})
	}
}

// dupFix is a store whose data packs hold two chunks each; the first chunk
// of every pack is flipped, then written again by a repair (which pairs
// chunks of different packs, so no repair pack replaces a damaged one by
// name): two copies each, the indexed one sound.
type dupFix struct {
	dir     string
	chunks  []cas.ID          // the repaired chunks
	damaged map[cas.ID]cas.ID // chunk -> pack of its damaged copy
	good    map[cas.ID]cas.ID // chunk -> pack of its repaired copy
	plain   map[cas.ID][]byte
}

func newDupFix(t *testing.T, n int, seed byte) *dupFix {
	t.Helper()
	f := &dupFix{dir: newStore(t), damaged: map[cas.ID]cas.ID{}, good: map[cas.ID]cas.ID{}, plain: map[cas.ID][]byte{}}
	setPackSize(t, f.dir, 1<<20)
	r := openStore(t, f.dir)
	var entries []manifest.Entry
	for i := range 2 * n {
		b := repairRandom(seed+byte(i), 600<<10)
		e := putFile(t, r, "f"+string(rune('a'+i)), b, len(b))
		entries = append(entries, e)
		if i%2 == 0 {
			f.chunks = append(f.chunks, e.Chunks[0].ID)
			f.plain[e.Chunks[0].ID] = b
		}
	}
	if _, err := r.CommitRecord(&manifest.Record{Computer: "PC1", Created: time.Now().UTC(), Tree: putTree(t, r, entries...)}); err != nil {
		t.Fatal(err)
	}
	want := map[cas.ID]bool{}
	var plains [][]byte
	for _, id := range f.chunks {
		loc := mustLookup(t, r, id)
		if slices.Contains(slices.Collect(maps.Values(f.damaged)), loc.Pack) {
			t.Fatalf("two flipped chunks share pack %s", loc.Pack.Short())
		}
		f.damaged[id] = loc.Pack
		flipAt(t, r.Packs().Path(loc.Pack), int64(loc.Offset)+int64(loc.StoredLen)/2)
		want[id] = true
		plains = append(plains, f.plain[id])
	}
	r.Packs().Close()
	rep, err := r.Repair(want, offerAll(plains...))
	if err != nil || len(rep.Repaired) != n {
		t.Fatalf("Repair = %+v, %v", rep, err)
	}
	for _, id := range f.chunks {
		f.good[id] = mustLookup(t, r, id).Pack
		if f.good[id] == f.damaged[id] {
			t.Fatalf("repair wrote chunk %s into its damaged pack", id.Short())
		}
	}
	closeStore(t, r)
	return f
}

func flipAt(t *testing.T, path string, off int64) {
	t.Helper()
	pf, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	one := make([]byte, 1)
	if _, err := pf.ReadAt(one, off); err != nil {
		t.Fatal(err)
	}
	one[0] ^= 0x21
	if _, err := pf.WriteAt(one, off); err != nil {
		t.Fatal(err)
	}
}

// TestRebuildPicksReadableCopy: after a repair and before gc, every
// repaired chunk has a damaged copy in its old pack and a sound one in the
// repair's pack. The rebuild indexes the sound copy whichever pack it reads
// last (packs are read in name order; both orders are checked); when no
// copy reads back, one is indexed and the blob is reported.
func TestRebuildPicksReadableCopy(t *testing.T) {
	var f *dupFix
	for try := range 4 {
		// Pack names are hashes: retry until some damaged copies come
		// after their repaired copy in name order and some before.
		f = newDupFix(t, 8, byte(16*try))
		last, first := 0, 0
		for _, id := range f.chunks {
			if f.damaged[id].String() > f.good[id].String() {
				last++
			} else {
				first++
			}
		}
		t.Logf("damaged copy read last for %d chunks, first for %d", last, first)
		if last > 0 && first > 0 {
			break
		}
	}
	// One chunk has no sound copy left at all.
	lost := f.chunks[0]
	r := openStore(t, f.dir)
	loc := mustLookup(t, r, lost)
	flipAt(t, r.Packs().Path(loc.Pack), int64(loc.Offset)+int64(loc.StoredLen)/3)
	closeStore(t, r)

	rep, err := repo.RebuildIndex(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 1 || rep.Duplicates != len(f.chunks) || len(rep.Unreadable) != 1 || !strings.Contains(rep.Unreadable[0], lost.String()) {
		t.Errorf("RebuildIndex = %+v; want 1 record, %d duplicated blobs, %s unreadable", rep, len(f.chunks), lost.Short())
	}
	r = openStore(t, f.dir)
	for _, id := range f.chunks[1:] {
		if got := mustLookup(t, r, id).Pack; got != f.good[id] {
			t.Errorf("chunk %s indexed in pack %s (damaged copy), want %s (repaired copy)", id.Short(), got.Short(), f.good[id].Short())
		}
		if b, err := r.ReadChunk(id, nil); err != nil || !slices.Equal(b, f.plain[id]) {
			t.Errorf("chunk %s after rebuild: %v", id.Short(), err)
		}
	}
	if p := mustLookup(t, r, lost).Pack; p != f.good[lost] && p != f.damaged[lost] {
		t.Errorf("unreadable chunk indexed in pack %s, which holds no copy", p.Short())
	}
	recs, err := r.Records()
	if err != nil {
		t.Fatal(err)
	}
	vrep, err := r.Verify(recs, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(vrep.Damaged) != 1 || vrep.Damaged[0].Blob != lost.String() {
		t.Errorf("verify after rebuild names %+v; want only %s", vrep.Damaged, lost.Short())
	}
}

// TestRebuildSoundDuplicates: two sound copies of a blob (a repair of a
// chunk that was not damaged) are counted, and nothing is reported.
func TestRebuildSoundDuplicates(t *testing.T) {
	dir := newStore(t)
	f := newRepairFix(t, dir)
	rep, err := f.r.Repair(map[cas.ID]bool{f.a2: true}, offerAll(f.plain[f.a2]))
	if err != nil || len(rep.Repaired) != 1 {
		t.Fatalf("Repair = %+v, %v", rep, err)
	}
	closeStore(t, f.r)
	rrep, err := repo.RebuildIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rrep.Duplicates != 1 || len(rrep.Unreadable) != 0 || rrep.Records != 1 {
		t.Errorf("RebuildIndex = %+v; want 1 duplicated blob, none unreadable, 1 record", rrep)
	}
	r := openStore(t, dir)
	if _, err := r.ReadChunk(f.a2, nil); err != nil {
		t.Error(err)
	}
}
