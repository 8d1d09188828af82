package repo

// Internal tests: they set the gcFailAfter hook to simulate a crash between
// GC steps.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/index"
	"smp/keys"
)

const gcChunk = 64 << 10

// gcRandom returns n incompressible bytes unique to seed.
func gcRandom(seed uint64, n int) []byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// gcNewStore makes a store with 1 MiB packs, the smallest allowed, so a few
// records spread over several packs.
func gcNewStore(t testing.TB) string { return gcNewStoreWith(t, nil) }

// gcKeyrings holds the keyring of each encrypted store gcNewStoreWith made,
// by directory, for gcOpen.
var gcKeyrings sync.Map // string -> *keys.Keyring

// gcNewStoreWith makes a store with 1 MiB packs, encrypted with u when set.
func gcNewStoreWith(t testing.TB, u *keys.Unlocked) string { return gcNewStoreCipher(t, u, 0) }

// gcNewStoreCipher is gcNewStoreWith sealing packs with c (zero: the
// default).
func gcNewStoreCipher(t testing.TB, u *keys.Unlocked, c cas.Cipher) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if _, err := InitWith(dir, InitOptions{Params: cas.DefaultChunkerParams(), Keys: u, Cipher: c}); err != nil {
		t.Fatal(err)
	}
	if u != nil {
		gcKeyrings.Store(dir, u.Keyring())
	}
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["pack_size"] = 1 << 20
	b, _ = json.Marshal(m)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func gcOpen(t testing.TB, dir string) *Repo {
	t.Helper()
	var o OpenOptions
	if kr, ok := gcKeyrings.Load(dir); ok {
		o.Keyring = kr.(*keys.Keyring)
	}
	r, err := OpenWith(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	close := sync.OnceValue(r.Close)
	gcClosers.Store(r, close)
	t.Cleanup(func() { close() })
	return r
}

// gcClosers holds a once-only Close per repo gcOpen opened.
var gcClosers sync.Map // *Repo -> func() error

// gcClose closes r as a process exit would, before its test ends.
func gcClose(t testing.TB, r *Repo) {
	t.Helper()
	c, _ := gcClosers.Load(r)
	if err := c.(func() error)(); err != nil {
		t.Fatal(err)
	}
}

// gcFile stores content in gcChunk chunks and returns its entry.
func gcFile(t testing.TB, r *Repo, name string, content []byte) manifest.Entry {
	t.Helper()
	e := manifest.Entry{Name: name, Type: manifest.TypeFile, Mode: 0o644, MTimeNs: 1, Size: uint64(len(content))}
	for off := 0; off < len(content); off += gcChunk {
		piece := content[off:min(off+gcChunk, len(content))]
		id, _, err := r.PutBlob(cas.BlobData, piece)
		if err != nil {
			t.Fatal(err)
		}
		e.Chunks = append(e.Chunks, manifest.Chunk{ID: id, Size: uint32(len(piece))})
	}
	return e
}

func gcTree(t testing.TB, r *Repo, entries ...manifest.Entry) cas.ID {
	t.Helper()
	id, err := r.PutTree(&manifest.Tree{Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func gcChunks(e manifest.Entry) []cas.ID {
	var out []cas.ID
	for _, c := range e.Chunks {
		out = append(out, c.ID)
	}
	return out
}

// gcFix is two records sharing common/shared.bin (a shared subtree). The
// dropped record is written first, so its data pack holds the shared chunks
// too: once it is removed that pack is mostly garbage.
type gcFix struct {
	dir              string
	keep, drop       cas.ID
	keepRoot         cas.ID
	dropRoot, common cas.ID
	shared           []cas.ID
	keepOnly         []cas.ID
	dropOnly         []cas.ID
	files            map[string][]byte // the kept record's files by path
}

func newGCFix(t testing.TB) (*gcFix, *Repo) { return newGCFixWith(t, nil) }

// newGCFixWith is newGCFix on a store encrypted with u when set.
func newGCFixWith(t testing.TB, u *keys.Unlocked) (*gcFix, *Repo) { return newGCFixCipher(t, u, 0) }

// newGCFixCipher is newGCFixWith sealing packs with c (zero: the default).
func newGCFixCipher(t testing.TB, u *keys.Unlocked, c cas.Cipher) (*gcFix, *Repo) {
	t.Helper()
	f := &gcFix{dir: gcNewStoreCipher(t, u, c), files: map[string][]byte{}}
	r := gcOpen(t, f.dir)
	sharedData := gcRandom(1, 2*gcChunk)
	dropData := gcRandom(2, 12*gcChunk)
	keepData := gcRandom(3, 4*gcChunk+1000)
	created := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

	shared := gcFile(t, r, "shared.bin", sharedData)
	f.shared = gcChunks(shared)
	f.common = gcTree(t, r, shared)
	dirEntry := manifest.Entry{Name: "common", Type: manifest.TypeDir, Mode: 0o755, Subtree: f.common}
	drop := gcFile(t, r, "drop.bin", dropData)
	f.dropOnly = gcChunks(drop)
	f.dropRoot = gcTree(t, r, dirEntry, drop)
	var err error
	f.drop, err = r.CommitRecord(&manifest.Record{Computer: "PC2", Created: created, Tree: f.dropRoot, Files: 2, Bytes: uint64(len(sharedData) + len(dropData))})
	if err != nil {
		t.Fatal(err)
	}

	keep := gcFile(t, r, "keep.bin", keepData)
	f.keepOnly = gcChunks(keep)
	shared2 := gcFile(t, r, "shared.bin", sharedData)
	if gcTree(t, r, shared2) != f.common {
		t.Fatal("identical subtree has another ID")
	}
	link := manifest.Entry{Name: "linked.txt", Type: manifest.TypeFile, Mode: 0o644, Size: 5,
		Link: &manifest.Link{Method: manifest.LinkHard, Object: "set1/0/1"}}
	f.keepRoot = gcTree(t, r, dirEntry, keep, link)
	f.keep, err = r.CommitRecord(&manifest.Record{Computer: "PC1", Created: created.Add(time.Hour), Tree: f.keepRoot, Files: 3, Bytes: uint64(len(sharedData) + len(keepData))})
	if err != nil {
		t.Fatal(err)
	}
	f.files["common/shared.bin"] = sharedData
	f.files["keep.bin"] = keepData
	return f, r
}

func (f *gcFix) remove(t testing.TB, r *Repo) {
	t.Helper()
	if err := r.RemoveRecord(f.drop); err != nil {
		t.Fatal(err)
	}
}

// checkKept restores every file of the kept record from the store and
// compares it with what was captured, and runs a full Verify.
func (f *gcFix) checkKept(t testing.TB, r *Repo) {
	t.Helper()
	recs, err := r.Records()
	if err != nil {
		t.Fatal(err)
	}
	var kept *RecordInfo
	for i := range recs {
		if recs[i].ID == f.keep {
			kept = &recs[i]
		}
	}
	if kept == nil {
		t.Fatalf("record %s is gone", f.keep.Short())
	}
	got := map[string][]byte{}
	var walk func(id cas.ID, dir string)
	walk = func(id cas.ID, dir string) {
		tree, err := r.LoadTree(id)
		if err != nil {
			t.Fatalf("load tree %s: %v", dir, err)
		}
		for _, e := range tree.Entries {
			p := filepath.Join(dir, e.Name)
			switch {
			case e.Type == manifest.TypeDir:
				walk(e.Subtree, p)
			case e.Link != nil:
			default:
				var data []byte
				for _, c := range e.Chunks {
					b, err := r.ReadChunk(c.ID, nil)
					if err != nil {
						t.Fatalf("%s: read chunk %s: %v", p, c.ID.Short(), err)
					}
					data = append(data, b...)
				}
				got[p] = data
			}
		}
	}
	walk(kept.Tree, "")
	if len(got) != len(f.files) {
		t.Errorf("restored %d files, want %d", len(got), len(f.files))
	}
	for p, want := range f.files {
		if !bytes.Equal(got[p], want) {
			t.Errorf("%s restored differs (%d bytes, want %d)", p, len(got[p]), len(want))
		}
	}
	rep, err := r.Verify(recs, true, nil)
	if err != nil || len(rep.Damaged) != 0 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

// checkConsistent checks the invariant GC must keep at every step: no index
// entry points into a pack file that is missing.
func checkConsistent(t testing.TB, r *Repo) {
	t.Helper()
	err := r.ix.Blobs(func(l index.Location) error {
		if _, err := r.packs.Stat(l.Pack); err != nil {
			t.Errorf("blob %s (%s) indexed in pack %s: %v", l.ID.Short(), l.Type, l.Pack.Short(), err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = r.ix.Packs(func(p index.PackInfo) error {
		if _, err := r.packs.Stat(p.ID); err != nil {
			t.Errorf("indexed pack %s: %v", p.ID.Short(), err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkClean checks that the store holds exactly the indexed packs and no
// retired pack marks: GC finished its job.
func checkClean(t testing.TB, r *Repo) {
	t.Helper()
	checkConsistent(t, r)
	indexed := map[cas.ID]bool{}
	if err := r.ix.Packs(func(p index.PackInfo) error { indexed[p.ID] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	err := r.packs.Walk(func(id cas.ID, _ int64) error {
		if !indexed[id] {
			t.Errorf("pack %s on disk is not indexed", id.Short())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ix.RetiredPacks(func(id cas.ID, _ int64) error {
		t.Errorf("pack %s still marked retired", id.Short())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// mustGone checks that no blob of any type with one of the IDs is indexed.
func mustGone(t testing.TB, r *Repo, what string, ids ...cas.ID) {
	t.Helper()
	for _, id := range ids {
		for bt := cas.BlobData; bt <= cas.BlobTombstone; bt++ {
			if loc, err := r.Lookup(bt, id); !errors.Is(err, cas.ErrNotFound) {
				t.Errorf("%s %s: Lookup(%s) = %v in pack %s, want ErrNotFound", what, id.Short(), bt, err, loc.Pack.Short())
			}
		}
	}
}

func mustHave(t testing.TB, r *Repo, bt cas.BlobType, what string, ids ...cas.ID) index.Location {
	t.Helper()
	var loc index.Location
	for _, id := range ids {
		var err error
		if loc, err = r.Lookup(bt, id); err != nil {
			t.Errorf("%s %s: Lookup = %v", what, id.Short(), err)
		}
	}
	return loc
}

func storedBytes(t testing.TB, r *Repo) uint64 {
	t.Helper()
	s, err := r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s.StoredBytes
}

func runGC(t testing.TB, r *Repo, opts GCOptions) *GCReport {
	t.Helper()
	rep, err := r.GC(context.Background(), opts)
	if err != nil {
		t.Fatalf("GC(%+v) = %v", opts, err)
	}
	if len(rep.Problems) != 0 {
		t.Errorf("GC problems: %q", rep.Problems)
	}
	return rep
}

func TestGC(t *testing.T) {
	tests := []struct {
		name        string
		repackBelow float64
		rewritten   int  // D's data pack and D's tree pack (holding the shared subtree)
		deleted     int  // D's record pack
		moved       bool // shared blobs are at new locations
	}{
		{"default threshold", 0.5, 2, 1, true},
		{"never repack", 0, 0, 1, false},
		{"repack any garbage", 1, 2, 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, r := newGCFix(t)
			f.remove(t, r)
			tomb := r.Hasher.SumBlob(cas.BlobTombstone, f.drop[:])
			sharedBefore := mustHave(t, r, cas.BlobData, "shared chunk", f.shared[0])
			commonBefore := mustHave(t, r, cas.BlobTree, "common tree", f.common)
			before := storedBytes(t, r)

			rep := runGC(t, r, GCOptions{RepackBelow: tc.repackBelow})
			if rep.PacksRewritten != tc.rewritten || rep.PacksDeleted != tc.deleted {
				t.Errorf("rewritten %d, deleted %d packs; want %d, %d (%+v)", rep.PacksRewritten, rep.PacksDeleted, tc.rewritten, tc.deleted, rep)
			}
			// 12 unique chunks, the dropped root tree and the record blob.
			if rep.BlobsRemoved != 14 || rep.Records != 1 || rep.TombstonesWritten != 0 {
				t.Errorf("report %+v: want 14 blobs removed, 1 record, no tombstone written", rep)
			}
			mustGone(t, r, "dropped chunk", f.dropOnly...)
			mustGone(t, r, "dropped tree", f.dropRoot)
			mustGone(t, r, "dropped record", f.drop)
			mustHave(t, r, cas.BlobData, "shared chunk", f.shared...)
			mustHave(t, r, cas.BlobData, "kept chunk", f.keepOnly...)
			mustHave(t, r, cas.BlobTree, "kept tree", f.keepRoot, f.common)
			mustHave(t, r, cas.BlobRecord, "kept record", f.keep)
			mustHave(t, r, cas.BlobTombstone, "tombstone", tomb)
			if moved := mustHave(t, r, cas.BlobData, "shared", f.shared[0]).Pack != sharedBefore.Pack; moved != tc.moved {
				t.Errorf("shared chunk moved = %v, want %v", moved, tc.moved)
			}
			if moved := mustHave(t, r, cas.BlobTree, "common", f.common).Pack != commonBefore.Pack; moved != tc.moved {
				t.Errorf("shared tree moved = %v, want %v", moved, tc.moved)
			}
			after := storedBytes(t, r)
			wantDrop := uint64(0)
			if tc.moved {
				wantDrop = uint64(len(f.dropOnly) * gcChunk)
			}
			if after >= before || before-after < wantDrop || int64(before-after) != rep.BytesFreed {
				t.Errorf("stored bytes %d -> %d, report says %d freed; want a drop of at least %d", before, after, rep.BytesFreed, wantDrop)
			}
			if recs, _ := r.Records(); len(recs) != 1 {
				t.Errorf("%d records after gc, want 1", len(recs))
			}
			f.checkKept(t, r)
			checkClean(t, r)

			// A second run finds nothing to do.
			again := runGC(t, r, GCOptions{RepackBelow: tc.repackBelow})
			if again.PacksDeleted+again.PacksRewritten+again.PacksWritten+again.BlobsRemoved != 0 || again.BytesFreed != 0 {
				t.Errorf("second run: %+v", again)
			}
			// Everything survives a reopen.
			gcClose(t, r)
			r = gcOpen(t, f.dir)
			f.checkKept(t, r)
			mustGone(t, r, "dropped chunk", f.dropOnly...)
		})
	}
}

// snapshot is every pack file and index entry.
func snapshot(t testing.TB, r *Repo) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	if err := r.packs.Walk(func(id cas.ID, size int64) error { out["file "+id.String()] = size; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := r.ix.Blobs(func(l index.Location) error { out["blob "+l.ID.String()+" "+l.Pack.String()] = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := r.ix.Packs(func(p index.PackInfo) error { out["pack "+p.ID.String()] = p.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := r.ix.Records(func(id cas.ID, _ []byte) error { out["record "+id.String()] = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGCDryRun(t *testing.T) {
	for _, below := range []float64{0, 0.5} {
		f, r := newGCFix(t)
		f.remove(t, r)
		before := snapshot(t, r)
		dry := runGC(t, r, GCOptions{DryRun: true, RepackBelow: below})
		after := snapshot(t, r)
		if len(before) != len(after) {
			t.Errorf("dry run changed the store: %d entries, then %d", len(before), len(after))
		}
		for k, v := range before {
			if after[k] != v {
				t.Errorf("dry run changed %s", k)
			}
		}
		if !dry.DryRun || dry.BlobsRemoved != 14 || dry.BytesFreed <= 0 {
			t.Errorf("dry run report %+v", dry)
		}
		real := runGC(t, r, GCOptions{RepackBelow: below})
		// The dry run predicts the real one exactly.
		dry.DryRun, dry.Seconds, real.Seconds = false, 0, 0
		dj, _ := json.Marshal(dry)
		rj, _ := json.Marshal(real)
		if !bytes.Equal(dj, rj) {
			t.Errorf("threshold %v: dry run\n%s\nreal run\n%s", below, dj, rj)
		}
	}
}

// TestGCEncrypted: on an encrypted store, whose pack trailers are sealed,
// the dry run predicts the real run exactly, and a pack with no garbage
// scores a live fraction of exactly 1: gc --repack-below 1 rewrites the
// packs that hold garbage once, and then none.
func TestGCEncrypted(t *testing.T) {
	for _, below := range []float64{0.5, 1} {
		f, r := newGCFixWith(t, testKeys(t))
		f.remove(t, r)
		dry := runGC(t, r, GCOptions{DryRun: true, RepackBelow: below})
		real := runGC(t, r, GCOptions{RepackBelow: below})
		if real.PacksRewritten == 0 || real.BlobsRemoved != 14 {
			t.Errorf("threshold %v: %+v; want packs rewritten and 14 blobs removed", below, real)
		}
		dry.DryRun, dry.Seconds, real.Seconds = false, 0, 0
		dj, _ := json.Marshal(dry)
		rj, _ := json.Marshal(real)
		if !bytes.Equal(dj, rj) {
			t.Errorf("threshold %v: dry run\n%s\nreal run\n%s", below, dj, rj)
		}
		if again := runGC(t, r, GCOptions{RepackBelow: 1}); again.PacksRewritten+again.PacksDeleted+again.PacksWritten != 0 || again.BytesFreed != 0 {
			t.Errorf("threshold %v: a second gc --repack-below 1 rewrote packs without garbage: %+v", below, again)
		}
		f.checkKept(t, r)
		checkClean(t, r)
	}
}

// TestGCCrash stops GC after each step, as a crash would, then checks that
// the kept record is whole (in a new process) and that a second run
// finishes the job.
func TestGCCrash(t *testing.T) {
	steps := []struct {
		step int
		name string
	}{
		{gcStepPackWritten, "new pack written, not indexed"},
		{gcStepIndexed, "new packs indexed"},
		{gcStepBlobsDeleted, "dead index entries deleted"},
		{gcStepRetired, "old packs retired"},
		{gcStepFileDeleted, "one old pack file deleted"},
	}
	for _, tc := range steps {
		t.Run(tc.name, func(t *testing.T) {
			f, r := newGCFix(t)
			f.remove(t, r)
			before := storedBytes(t, r)
			gcFailAfter = tc.step
			_, err := r.GC(context.Background(), GCOptions{RepackBelow: 0.5})
			gcFailAfter = 0
			if !errors.Is(err, errGCInjected) {
				t.Fatalf("GC with a failure after step %d = %v", tc.step, err)
			}
			gcClose(t, r)
			r = gcOpen(t, f.dir)
			checkConsistent(t, r)
			f.checkKept(t, r)

			rep := runGC(t, r, GCOptions{RepackBelow: 0.5})
			if rep.PacksDeleted+rep.PacksRewritten == 0 {
				t.Errorf("re-run deleted nothing: %+v", rep)
			}
			f.checkKept(t, r)
			checkClean(t, r)
			mustGone(t, r, "dropped chunk", f.dropOnly...)
			mustGone(t, r, "dropped record", f.drop)
			mustHave(t, r, cas.BlobTombstone, "tombstone", r.Hasher.SumBlob(cas.BlobTombstone, f.drop[:]))
			if after := storedBytes(t, r); before-after < uint64(len(f.dropOnly)*gcChunk) {
				t.Errorf("stored bytes %d -> %d after the re-run", before, after)
			}
			if again := runGC(t, r, GCOptions{RepackBelow: 0.5}); again.BytesFreed != 0 || again.BlobsRemoved != 0 {
				t.Errorf("third run: %+v", again)
			}
		})
	}
}

func TestGCBusy(t *testing.T) {
	r := gcOpen(t, gcNewStore(t))
	id, _, err := r.PutBlob(cas.BlobData, gcRandom(9, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.GC(context.Background(), GCOptions{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("GC with an open pack = %v, want ErrBusy", err)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	// Flushed but referenced by no record: garbage.
	rep := runGC(t, r, GCOptions{})
	if rep.BlobsRemoved != 1 || rep.PacksDeleted != 1 {
		t.Errorf("report %+v", rep)
	}
	mustGone(t, r, "unreferenced chunk", id)
	checkClean(t, r)
	if _, err := r.GC(context.Background(), GCOptions{RepackBelow: 1.5}); err == nil {
		t.Error("GC accepted a threshold of 1.5")
	}
}

// A record blob committed but never made live (a crash inside
// CommitRecord) gets a tombstone before its chunks go, so an index rebuild
// from packs cannot bring it back without its data.
func TestGCNeverLiveRecord(t *testing.T) {
	f, r := newGCFix(t)
	orphan := gcFile(t, r, "orphan.bin", gcRandom(7, 3*gcChunk))
	root := gcTree(t, r, orphan)
	b, err := (&manifest.Record{Computer: "PC3", Created: time.Now().UTC(), Tree: root}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := r.PutBlob(cas.BlobRecord, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	rep := runGC(t, r, GCOptions{RepackBelow: 0.5})
	if rep.TombstonesWritten != 1 || rep.BlobsRemoved != 5 {
		t.Errorf("report %+v: want 1 tombstone written, 5 blobs removed", rep)
	}
	mustGone(t, r, "never-live record", rec)
	mustGone(t, r, "its chunk", gcChunks(orphan)...)
	mustHave(t, r, cas.BlobTombstone, "its tombstone", r.Hasher.SumBlob(cas.BlobTombstone, rec[:]))
	// Both fixture records are still live.
	if recs, _ := r.Records(); len(recs) != 2 {
		t.Errorf("%d records, want 2", len(recs))
	}
	f.checkKept(t, r)
	checkClean(t, r)
	if again := runGC(t, r, GCOptions{RepackBelow: 0.5}); again.TombstonesWritten != 0 || again.BlobsRemoved != 0 {
		t.Errorf("second run: %+v", again)
	}
}

// writeUnindexed commits a pack holding blobs without indexing it, as a
// crash between commit and indexing leaves one.
func writeUnindexed(t testing.TB, r *Repo, t2 cas.BlobType, plains ...[]byte) cas.ID {
	t.Helper()
	p, err := r.packs.Create()
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range plains {
		stored, c := cas.Compress(nil, plain)
		if err := p.Add(t2, r.Hasher.SumBlob(t2, plain), c, stored, len(plain)); err != nil {
			t.Fatal(err)
		}
	}
	id, _, _, err := p.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestGCUnindexedPacks(t *testing.T) {
	f, r := newGCFix(t)
	sharedData := f.files["common/shared.bin"]
	// A copy of live blobs indexed elsewhere: redundant, deleted.
	copyPack := writeUnindexed(t, r, cas.BlobData, sharedData[:gcChunk], sharedData[gcChunk:])
	// A blob found nowhere else: kept for an index rebuild.
	onlyPack := writeUnindexed(t, r, cas.BlobData, gcRandom(11, 5000))
	rep := runGC(t, r, GCOptions{RepackBelow: 0.5})
	if rep.UnindexedPacks != 1 || rep.PacksDeleted != 1 {
		t.Errorf("report %+v: want 1 unindexed pack kept, 1 deleted", rep)
	}
	if _, err := r.packs.Stat(copyPack); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("redundant unindexed pack: %v", err)
	}
	if _, err := r.packs.Stat(onlyPack); err != nil {
		t.Errorf("unindexed pack with unique data: %v", err)
	}
	f.checkKept(t, r)
	checkConsistent(t, r)
}

// A live blob that fails verification keeps its pack: it is reported, not
// rewritten, and nothing it holds is lost.
func TestGCDamagedBlobKeepsPack(t *testing.T) {
	f, r := newGCFix(t)
	f.remove(t, r)
	loc := mustHave(t, r, cas.BlobData, "shared", f.shared[1])
	path := r.packs.Path(loc.Pack)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[loc.Offset+10] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := r.GC(context.Background(), GCOptions{RepackBelow: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 {
		t.Errorf("problems %q, want one", rep.Problems)
	}
	if _, err := r.packs.Stat(loc.Pack); err != nil {
		t.Errorf("pack with a damaged live blob: %v", err)
	}
	if got := mustHave(t, r, cas.BlobData, "damaged shared", f.shared[1]); got.Pack != loc.Pack {
		t.Errorf("damaged blob moved to %s", got.Pack.Short())
	}
	mustHave(t, r, cas.BlobData, "shared", f.shared[0])
	mustGone(t, r, "dropped chunk", f.dropOnly...)
	checkConsistent(t, r)
}

// TestGCGraceAndPins: blobs no record references (an interrupted remote
// capture's uploads) survive while their pack is younger than the grace
// period, or while pinned by an open session, and go once neither holds.
func TestGCGraceAndPins(t *testing.T) {
	dir := gcNewStore(t)
	r := gcOpen(t, dir)
	orphan := gcFile(t, r, "orphan", gcRandom(42, 3*gcChunk))
	pinnedOnly := gcFile(t, r, "pinned", gcRandom(43, gcChunk))
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	ids := gcChunks(orphan)
	now := time.Now()
	tests := []struct {
		name       string
		opts       GCOptions
		keepOrphan bool
	}{
		{"young pack kept", GCOptions{Grace: time.Hour, Now: func() time.Time { return now }}, true},
		{"pinned kept after grace", GCOptions{Grace: time.Hour, Now: func() time.Time { return now.Add(2 * time.Hour) },
			Pinned: func(keep func(cas.BlobKey)) {
				for _, id := range append(ids, gcChunks(pinnedOnly)...) {
					keep(cas.BlobKey{Type: cas.BlobData, ID: id})
				}
			}}, true},
		{"old and unpinned removed", GCOptions{Grace: time.Hour, Now: func() time.Time { return now.Add(2 * time.Hour) }}, false},
	}
	for _, tc := range tests {
		rep := runGC(t, r, tc.opts)
		if tc.keepOrphan {
			mustHave(t, r, cas.BlobData, tc.name, ids...)
			if rep.BlobsRemoved != 0 {
				t.Errorf("%s: removed %d blobs", tc.name, rep.BlobsRemoved)
			}
		} else {
			mustGone(t, r, tc.name, ids...)
			mustGone(t, r, tc.name, gcChunks(pinnedOnly)...)
		}
	}
}
