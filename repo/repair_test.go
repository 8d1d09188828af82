package repo_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/repo"
)

// repairRandom returns n deterministic incompressible bytes.
func repairRandom(seed byte, n int) []byte {
	var s [32]byte
	s[0], s[1] = seed, 0x7e
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// repairFix is a committed record holding a.bin (three chunks), b.txt (one
// compressible chunk) and c.txt (one tiny raw chunk) in one data pack.
type repairFix struct {
	r                  *repo.Repo
	rec                cas.ID
	tree               cas.ID
	a1, a2, a3, b, c   cas.ID
	plain              map[cas.ID][]byte
	dataPack, treePack cas.ID
}

func newRepairFix(t *testing.T, dir string) *repairFix {
	t.Helper()
	r := openStore(t, dir)
	f := &repairFix{r: r, plain: map[cas.ID][]byte{}}
	a := repairRandom(1, 3*(100<<10))
	b := text("repair-b", 60<<10)
	c := []byte("tiny")
	ea := putFile(t, r, "a.bin", a, 100<<10)
	eb := putFile(t, r, "b.txt", b, 100<<10)
	ec := putFile(t, r, "c.txt", c, 100<<10)
	f.a1, f.a2, f.a3 = ea.Chunks[0].ID, ea.Chunks[1].ID, ea.Chunks[2].ID
	f.b, f.c = eb.Chunks[0].ID, ec.Chunks[0].ID
	for i, id := range []cas.ID{f.a1, f.a2, f.a3} {
		f.plain[id] = a[i*(100<<10) : (i+1)*(100<<10)]
	}
	f.plain[f.b], f.plain[f.c] = b, c
	sub := putTree(t, r, eb)
	f.tree = putTree(t, r, ea, ec, manifest.Entry{Name: "sub", Type: manifest.TypeDir, Mode: 0o755, Subtree: sub})
	id, err := r.CommitRecord(&manifest.Record{Computer: "PC1", Created: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Tree: f.tree})
	if err != nil {
		t.Fatal(err)
	}
	f.rec = id
	f.dataPack = mustLookup(t, r, f.a1).Pack
	f.treePack = mustLookup(t, r, f.tree).Pack
	for _, id := range f.all() {
		if mustLookup(t, r, id).Pack != f.dataPack {
			t.Fatalf("fixture chunks are not in one data pack")
		}
	}
	return f
}

func (f *repairFix) all() []cas.ID { return []cas.ID{f.a1, f.a2, f.a3, f.b, f.c} }

// flip changes one byte in the middle of blob id's stored bytes.
func (f *repairFix) flip(t *testing.T, id cas.ID) {
	t.Helper()
	loc := mustLookup(t, f.r, id)
	pf, err := os.OpenFile(f.r.Packs().Path(loc.Pack), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	off := int64(loc.Offset) + int64(loc.StoredLen)/2
	one := make([]byte, 1)
	if _, err := pf.ReadAt(one, off); err != nil {
		t.Fatal(err)
	}
	one[0] ^= 0x21
	if _, err := pf.WriteAt(one, off); err != nil {
		t.Fatal(err)
	}
	f.r.Packs().Close() // no cached descriptor of the old file
}

// truncateAt cuts the data pack at blob id's first byte.
func (f *repairFix) truncateAt(t *testing.T, id cas.ID) {
	t.Helper()
	loc := mustLookup(t, f.r, id)
	if err := os.Truncate(f.r.Packs().Path(loc.Pack), int64(loc.Offset)); err != nil {
		t.Fatal(err)
	}
	f.r.Packs().Close()
}

func (f *repairFix) deleteDataPack(t *testing.T) {
	t.Helper()
	if err := os.Remove(f.r.Packs().Path(f.dataPack)); err != nil {
		t.Fatal(err)
	}
	f.r.Packs().Close()
}

// verify runs a full Verify and returns the damaged blob IDs, sorted.
func (f *repairFix) verify(t *testing.T) []string {
	t.Helper()
	recs, err := f.r.Records()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.r.Verify(recs, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, d := range rep.Damaged {
		out = append(out, d.Blob)
	}
	slices.Sort(out)
	return out
}

// packIDs lists the pack files on disk, readable or not.
func packIDs(t *testing.T, r *repo.Repo) map[cas.ID]bool {
	t.Helper()
	out := map[cas.ID]bool{}
	if err := r.Packs().Walk(func(id cas.ID, _ int64) error { out[id] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func offerAll(plains ...[]byte) func(func([]byte) error) error {
	return func(yield func([]byte) error) error {
		for _, p := range plains {
			if err := yield(p); err != nil {
				return err
			}
		}
		return nil
	}
}

func idStrings(ids ...cas.ID) []string {
	out := []string{}
	for _, id := range ids {
		out = append(out, id.String())
	}
	slices.Sort(out)
	return out
}

func TestRepair(t *testing.T) {
	type ids func(f *repairFix) []cas.ID
	tests := []struct {
		name     string
		damage   func(t *testing.T, f *repairFix)
		wanted   ids // the damaged set handed to Repair; nil: what verify finds
		offer    func(f *repairFix) [][]byte
		repaired ids
		packs    int  // new packs written
		samePack bool // the new pack is named like the damaged one
	}{
		{
			name:   "flipped chunk, original offered",
			damage: func(t *testing.T, f *repairFix) { f.flip(t, f.a2) },
			offer: func(f *repairFix) [][]byte {
				return [][]byte{f.plain[f.a1], f.plain[f.a2], f.plain[f.a3], f.plain[f.b]}
			},
			repaired: func(f *repairFix) []cas.ID { return []cas.ID{f.a2} },
			packs:    1,
		},
		{
			name:   "missing pack, every chunk offered",
			damage: func(t *testing.T, f *repairFix) { f.deleteDataPack(t) },
			offer: func(f *repairFix) [][]byte {
				return [][]byte{f.plain[f.c], f.plain[f.b], f.plain[f.a3], f.plain[f.a2], f.plain[f.a1]}
			},
			repaired: func(f *repairFix) []cas.ID { return f.all() },
			packs:    1,
		},
		{
			name:     "truncated pack, only one file offered",
			damage:   func(t *testing.T, f *repairFix) { f.truncateAt(t, f.a3) },
			offer:    func(f *repairFix) [][]byte { return [][]byte{f.plain[f.a1], f.plain[f.a2], f.plain[f.a3]} },
			repaired: func(f *repairFix) []cas.ID { return []cas.ID{f.a3} }, // b and c lay after a3 and stay missing
			packs:    1,
		},
		{
			// Same blobs, same order, same compression: the new pack has the
			// damaged one's trailer and name, and replaces its file.
			name:   "every chunk of a damaged pack, in pack order",
			damage: func(t *testing.T, f *repairFix) { f.flip(t, f.a2); f.flip(t, f.c) },
			wanted: func(f *repairFix) []cas.ID { return f.all() },
			offer: func(f *repairFix) [][]byte {
				return [][]byte{f.plain[f.a1], f.plain[f.a2], f.plain[f.a3], f.plain[f.b], f.plain[f.c]}
			},
			repaired: func(f *repairFix) []cas.ID { return f.all() },
			packs:    1,
			samePack: true,
		},
		{
			name:     "unrelated data repairs nothing",
			damage:   func(t *testing.T, f *repairFix) { f.flip(t, f.a2) },
			offer:    func(f *repairFix) [][]byte { return [][]byte{repairRandom(9, 100<<10), text("other", 5000), nil} },
			repaired: func(f *repairFix) []cas.ID { return nil },
		},
		{
			name:     "a chunk offered twice is written once",
			damage:   func(t *testing.T, f *repairFix) { f.flip(t, f.b) },
			offer:    func(f *repairFix) [][]byte { return [][]byte{f.plain[f.b], f.plain[f.b], f.plain[f.c]} },
			wanted:   func(f *repairFix) []cas.ID { return []cas.ID{f.b, f.c} }, // c is sound: rewriting it is harmless
			repaired: func(f *repairFix) []cas.ID { return []cas.ID{f.b, f.c} },
			packs:    1,
		},
		{
			name:     "a tree is not file data",
			damage:   func(t *testing.T, f *repairFix) { f.flip(t, f.tree) },
			offer:    func(f *repairFix) [][]byte { return [][]byte{f.plain[f.a1], f.plain[f.b]} },
			repaired: func(f *repairFix) []cas.ID { return nil },
		},
		{
			name:     "nothing damaged",
			damage:   func(t *testing.T, f *repairFix) {},
			offer:    func(f *repairFix) [][]byte { return [][]byte{f.plain[f.a1]} },
			repaired: func(f *repairFix) []cas.ID { return nil },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newRepairFix(t, newStore(t))
			before := packIDs(t, f.r)
			tc.damage(t, f)
			damaged := f.verify(t)
			wanted := map[cas.ID]bool{}
			if tc.wanted != nil {
				for _, id := range tc.wanted(f) {
					wanted[id] = true
				}
			} else {
				for _, s := range damaged {
					id, _ := cas.ParseID(s)
					wanted[id] = true
				}
			}
			offered := 0
			offer := offerAll(tc.offer(f)...)
			rep, err := f.r.Repair(wanted, func(yield func([]byte) error) error {
				offered++
				return offer(yield)
			})
			if err != nil {
				t.Fatalf("Repair: %v", err)
			}
			if len(wanted) == 0 && offered != 0 {
				t.Errorf("offer called with nothing to repair")
			}
			want := idStrings(tc.repaired(f)...)
			if !slices.Equal(rep.Repaired, want) {
				t.Errorf("repaired %q, want %q", rep.Repaired, want)
			}
			var wantMissing []string
			for id := range wanted {
				if !slices.Contains(want, id.String()) {
					wantMissing = append(wantMissing, id.String())
				}
			}
			slices.Sort(wantMissing)
			if rep.Wanted != len(wanted) || !slices.Equal(rep.Missing, append([]string{}, wantMissing...)) {
				t.Errorf("wanted %d, missing %q; want %d, %q", rep.Wanted, rep.Missing, len(wanted), wantMissing)
			}
			if len(rep.Packs) != tc.packs || len(rep.Problems) != 0 {
				t.Errorf("packs %q, problems %q; want %d packs, no problem", rep.Packs, rep.Problems, tc.packs)
			}
			// New packs are exactly the report's, committed and indexed.
			var added []string
			for id := range packIDs(t, f.r) {
				if !before[id] {
					added = append(added, id.String())
				}
			}
			slices.Sort(added)
			if tc.samePack {
				if len(added) != 0 || !slices.Equal(rep.Packs, []string{f.dataPack.String()}) {
					t.Errorf("packs added %q, report says %q; want the damaged pack %s replaced", added, rep.Packs, f.dataPack.Short())
				}
				if n := copiesOf(t, f.r, f.a2); n != 1 {
					t.Errorf("%d copies of a2, want 1", n)
				}
			} else if !slices.Equal(added, rep.Packs) {
				t.Errorf("packs on disk added %q, report says %q", added, rep.Packs)
			}
			// The index serves the new copy of every repaired chunk.
			for _, s := range rep.Repaired {
				id, _ := cas.ParseID(s)
				loc := mustLookup(t, f.r, id)
				if !slices.Contains(rep.Packs, loc.Pack.String()) {
					t.Errorf("chunk %s indexed in pack %s, not in a repair pack", id.Short(), loc.Pack.Short())
				}
				got, err := f.r.ReadChunk(id, nil)
				if err != nil || !bytes.Equal(got, f.plain[id]) {
					t.Errorf("ReadChunk(%s) after repair: %v", id.Short(), err)
				}
			}
			// Verify now finds exactly what was damaged and not repaired.
			var still []string
			for _, s := range damaged {
				if !slices.Contains(rep.Repaired, s) {
					still = append(still, s)
				}
			}
			if got := f.verify(t); !slices.Equal(got, append([]string{}, still...)) {
				t.Errorf("verify after repair finds %q, want %q", got, still)
			}
		})
	}
}

// TestRepairStopsWhenAllFound: yield says ErrRepairDone as soon as every
// damaged chunk is found; Repair does not report that as an error.
func TestRepairStopsWhenAllFound(t *testing.T) {
	f := newRepairFix(t, newStore(t))
	f.flip(t, f.a1)
	f.flip(t, f.b)
	after := 0
	var done error
	rep, err := f.r.Repair(map[cas.ID]bool{f.a1: true, f.b: true}, func(yield func([]byte) error) error {
		for _, p := range [][]byte{f.plain[f.c], f.plain[f.b], f.plain[f.a1], f.plain[f.a2], f.plain[f.a3]} {
			if done != nil {
				after++
			}
			if err := yield(p); err != nil {
				done = err
				return err
			}
		}
		return nil
	})
	if err != nil || !errors.Is(done, repo.ErrRepairDone) || after != 0 {
		t.Fatalf("Repair = %v; yield said %v; %d offers after it", err, done, after)
	}
	if rep.ChunksOffered != 3 || len(rep.Repaired) != 2 || len(rep.Missing) != 0 {
		t.Errorf("report %+v; want 3 chunks offered, 2 repaired", rep)
	}
	if got := f.verify(t); len(got) != 0 {
		t.Errorf("verify after repair: %q", got)
	}
}

// TestRepairOfferError: an offer that fails midway still gets the chunks it
// found written; the error comes back with the report.
func TestRepairOfferError(t *testing.T) {
	f := newRepairFix(t, newStore(t))
	f.deleteDataPack(t)
	boom := errors.New("source disk gone")
	wanted := map[cas.ID]bool{}
	for _, id := range f.all() {
		wanted[id] = true
	}
	rep, err := f.r.Repair(wanted, func(yield func([]byte) error) error {
		if err := yield(f.plain[f.a2]); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || rep == nil {
		t.Fatalf("Repair = %+v, %v; want the report and %v", rep, err, boom)
	}
	if !slices.Equal(rep.Repaired, idStrings(f.a2)) || len(rep.Missing) != 4 {
		t.Errorf("repaired %q, missing %q; want a2 repaired, 4 missing", rep.Repaired, rep.Missing)
	}
	if got, err := f.r.ReadChunk(f.a2, nil); err != nil || !bytes.Equal(got, f.plain[f.a2]) {
		t.Errorf("ReadChunk(a2) = %v", err)
	}
}

// TestRepairPacksRollOver: repaired chunks fill packs of the store's pack
// size like any write.
func TestRepairPacksRollOver(t *testing.T) {
	dir := newStore(t)
	setPackSize(t, dir, 1<<20)
	r := openStore(t, dir)
	var plains [][]byte
	wanted := map[cas.ID]bool{}
	for i := range 8 {
		p := repairRandom(byte(20+i), 300<<10)
		id, _, err := r.PutBlob(cas.BlobData, p)
		if err != nil {
			t.Fatal(err)
		}
		plains = append(plains, p)
		wanted[id] = true
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	for id := range packFiles(t, r) {
		if err := os.Remove(r.Packs().Path(id)); err != nil {
			t.Fatal(err)
		}
	}
	r.Packs().Close()
	rep, err := r.Repair(wanted, offerAll(plains...))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Repaired) != 8 || len(rep.Packs) < 2 {
		t.Fatalf("repaired %d chunks into %d packs; want 8 into at least 2", len(rep.Repaired), len(rep.Packs))
	}
	for i, p := range plains {
		id := r.Hasher.Sum(p)
		if got, err := r.ReadChunk(id, nil); err != nil || !bytes.Equal(got, p) {
			t.Errorf("chunk %d: %v", i, err)
		}
	}
}

// TestRepairThenGC: after a repair, gc keeps the good copy (the one the
// index names) whatever its threshold, and a rewrite of the damaged pack
// drops the damaged copy.
func TestRepairThenGC(t *testing.T) {
	for _, tc := range []struct {
		repackBelow float64
		oldGone     bool
	}{{0, false}, {0.5, false}, {1, true}} {
		f := newRepairFix(t, newStore(t))
		f.flip(t, f.a2)
		rep, err := f.r.Repair(map[cas.ID]bool{f.a2: true}, offerAll(f.plain[f.a2]))
		if err != nil || len(rep.Repaired) != 1 {
			t.Fatalf("Repair = %+v, %v", rep, err)
		}
		if n := copiesOf(t, f.r, f.a2); n != 2 {
			t.Errorf("%d copies of the repaired chunk before gc, want 2 (damaged and new)", n)
		}
		gc, err := f.r.GC(context.Background(), repo.GCOptions{RepackBelow: tc.repackBelow})
		if err != nil || len(gc.Problems) != 0 {
			t.Fatalf("GC(%v) = %+v, %v", tc.repackBelow, gc, err)
		}
		_, statErr := f.r.Packs().Stat(f.dataPack)
		if gone := errors.Is(statErr, cas.ErrNotFound); gone != tc.oldGone {
			t.Errorf("repack below %v: damaged pack gone = %v, want %v", tc.repackBelow, gone, tc.oldGone)
		}
		if tc.oldGone && copiesOf(t, f.r, f.a2) != 1 {
			t.Errorf("repack below %v: the damaged copy survived the rewrite", tc.repackBelow)
		}
		if got := f.verify(t); len(got) != 0 {
			t.Errorf("repack below %v: verify after repair and gc: %q", tc.repackBelow, got)
		}
		for _, id := range f.all() {
			if got, err := f.r.ReadChunk(id, nil); err != nil || !bytes.Equal(got, f.plain[id]) {
				t.Errorf("repack below %v: chunk %s: %v", tc.repackBelow, id.Short(), err)
			}
		}
	}
}

// TestRepairOfferFiles walks a directory with the store's chunker: files
// holding the damaged chunks repair them; symlinks, FIFOs and skipped
// directories are not read.
func TestRepairOfferFiles(t *testing.T) {
	params, err := cas.ChunkerParamsForAvg(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "store")
	if _, err := repo.Init(dir, params); err != nil {
		t.Fatal(err)
	}
	r := openStore(t, dir)
	src := t.TempDir()
	files := map[string][]byte{
		"big.bin":        repairRandom(40, 700<<10),
		"docs/notes.txt": text("notes", 150<<10),
		"small":          []byte("a small file"),
	}
	chunks := map[string][]cas.ID{}
	for name, data := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		ch := cas.NewChunker(bytes.NewReader(data), params)
		for {
			c, err := ch.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			id, _, err := r.PutBlob(cas.BlobData, c)
			if err != nil {
				t.Fatal(err)
			}
			chunks[name] = append(chunks[name], id)
		}
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(chunks["big.bin"]) < 3 {
		t.Fatalf("big.bin cut into %d chunks, want several", len(chunks["big.bin"]))
	}
	wanted := map[cas.ID]bool{}
	for _, ids := range chunks {
		for _, id := range ids {
			wanted[id] = true
		}
	}
	// Every pack is lost.
	for id := range packFiles(t, r) {
		if err := os.Remove(r.Packs().Path(id)); err != nil {
			t.Fatal(err)
		}
	}
	r.Packs().Close()

	// A directory where the data is reachable only through a symlink, in a
	// skipped directory, or not at all, plus a FIFO: nothing is repaired
	// and nothing blocks.
	decoy := t.TempDir()
	if err := os.Symlink(filepath.Join(src, "big.bin"), filepath.Join(decoy, "link")); err != nil {
		t.Fatal(err)
	}
	if err := mkfifo(filepath.Join(decoy, "fifo")); err != nil {
		t.Fatal(err)
	}
	skipped := filepath.Join(decoy, "skipped")
	if err := os.MkdirAll(skipped, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(skipped, "small"), files["small"], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(decoy, "empty"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var warned []string
	warn := func(p string, err error) { warned = append(warned, p+": "+err.Error()) }
	rep, err := r.Repair(wanted, repo.OfferFiles([]string{decoy}, params, []string{skipped}, warn))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Repaired) != 0 || rep.ChunksOffered != 0 || len(rep.Packs) != 0 || len(warned) != 0 {
		t.Fatalf("decoy directory: repaired %d, offered %d, packs %d, warnings %q; want nothing", len(rep.Repaired), rep.ChunksOffered, len(rep.Packs), warned)
	}
	if _, err := r.Repair(wanted, repo.OfferFiles([]string{filepath.Join(decoy, "nope")}, params, nil, warn)); err == nil {
		t.Errorf("a missing --from root is not an error")
	}

	// The original directory (given relative to the working directory
	// would work too; here absolute) repairs everything.
	rep, err = r.Repair(wanted, repo.OfferFiles([]string{decoy, src}, params, []string{skipped}, warn))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Repaired) != len(wanted) || len(rep.Missing) != 0 || len(warned) != 0 {
		t.Fatalf("repaired %d of %d, missing %q, warnings %q", len(rep.Repaired), len(wanted), rep.Missing, warned)
	}
	for name, ids := range chunks {
		var got []byte
		for _, id := range ids {
			b, err := r.ReadChunk(id, nil)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got = append(got, b...)
		}
		if !bytes.Equal(got, files[name]) {
			t.Errorf("%s reads back different after repair", name)
		}
	}
}

// TestRepairDamagedDataOfVerifyReport picks the data chunks out of a verify report.
func TestRepairDamagedDataOfVerifyReport(t *testing.T) {
	a, b := cas.ID{1}, cas.ID{2}
	rep := &repo.VerifyReport{Damaged: []*repo.Damage{
		{Blob: a.String(), Type: "data"},
		{Blob: b.String(), Type: "tree"},
		{Blob: "not hex", Type: "data"},
	}}
	got := rep.DamagedData()
	if len(got) != 1 || !got[a] {
		t.Errorf("DamagedData = %v, want only %s", got, a.Short())
	}
}
