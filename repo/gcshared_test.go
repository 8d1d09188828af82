package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/index"
	"smp/keys"
	"smp/storage"
	"smp/storage/local"
)

// clockStorage is a storage whose clock (Now) runs ahead of the real one
// by *off: the objects' creation times stay real, so advancing off ages
// every pack and marks object at once, as waiting would.
type clockStorage struct {
	storage.Storage
	off *atomic.Int64
}

func (c clockStorage) Now(context.Context) (time.Time, error) {
	return time.Now().Add(time.Duration(c.off.Load())), nil
}

func (c clockStorage) Close() error { return nil } // shared by both writers; closed by the test

// sharedPair opens two writers, a and b, of one store whose objects
// both reach through one storage (as two servers share a bucket), each
// with its own index, both shared (gc's marks apply). The storage's
// clock is advanced through the returned counter.
func sharedPair(t *testing.T) (a, b *Repo, clock *atomic.Int64) { return sharedPairWith(t, nil) }

// sharedPairWith is sharedPair on a store encrypted with u when set.
func sharedPairWith(t *testing.T, u *keys.Unlocked) (a, b *Repo, clock *atomic.Int64) {
	t.Helper()
	dirA := gcNewStoreWith(t, u)
	st, err := local.Open(dirA, local.Options{TempDir: packPrefix + "tmp"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock = new(atomic.Int64)
	cs := clockStorage{Storage: st, off: clock}
	old := openStorage
	openStorage = func(string) (storage.Storage, error) { return cs, nil }
	t.Cleanup(func() { openStorage = old })
	dirB := filepath.Join(t.TempDir(), "b")
	if err := os.MkdirAll(dirB, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(dirA, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirB, "config.json"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if kr, ok := gcKeyrings.Load(dirA); ok {
		gcKeyrings.Store(dirB, kr)
	}
	a, b = gcOpen(t, dirA), gcOpen(t, dirB)
	for _, r := range []*Repo{a, b} {
		r.shared, r.sh = true, newSharedState()
	}
	t.Cleanup(func() { gcClose(t, a); gcClose(t, b) })
	return a, b, clock
}

func advance(clock *atomic.Int64, d time.Duration) { clock.Add(int64(d)) }

// sharedGC runs gc on a shared store with a one-hour grace.
func sharedGC(t *testing.T, r *Repo) *GCReport {
	t.Helper()
	rep, err := r.GC(context.Background(), GCOptions{Grace: time.Hour, RepackBelow: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("gc problems: %v", rep.Problems)
	}
	return rep
}

// commitFile stores content as one file of a record of computer and
// commits it through r.
func commitFile(t *testing.T, r *Repo, computer string, content []byte) (cas.ID, manifest.Entry, error) {
	t.Helper()
	e := gcFile(t, r, "f.bin", content)
	root := gcTree(t, r, e)
	id, err := r.CommitRecord(&manifest.Record{Computer: computer, Created: time.Unix(1, 0).UTC(), Tree: root, Files: 1, Bytes: uint64(len(content))})
	return id, e, err
}

// readAll reads and verifies every blob of every live record of r.
func readAll(t *testing.T, r *Repo, what string) {
	t.Helper()
	recs, err := r.Records()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		w := manifest.Walker{Load: r, Chunk: func(id cas.ID, _ *manifest.Entry) error {
			_, err := r.ReadChunk(id, nil)
			return err
		}}
		if err := w.Walk(context.Background(), rec.Tree); err != nil {
			t.Fatalf("%s: record %s of %s: %v", what, rec.ID.Short(), rec.Computer, err)
		}
	}
}

func countMarks(t *testing.T, r *Repo) int {
	t.Helper()
	n := 0
	if err := storage.Walk(context.Background(), r.st, marksPrefix, func(storage.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func refresh(t *testing.T, r *Repo) {
	t.Helper()
	if _, err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
}

// TestSharedGCTwoPhase walks the state machine of gc on a shared store
// with an injected storage clock: unreferenced packs are condemned, not
// deleted; a writer then answers "not held" for their blobs and stores
// them again; a pack a live record came to need is copied out and
// condemned again instead of deleted; ripe packs are deleted and every
// writer's refresh forgets them; every record reads back throughout.
func TestSharedGCTwoPhase(t *testing.T) {
	t.Run("clear", func(t *testing.T) { testSharedGCTwoPhase(t, nil) })
	t.Run("encrypted", func(t *testing.T) { testSharedGCTwoPhase(t, testKeys(t)) })
}

func testSharedGCTwoPhase(t *testing.T, u *keys.Unlocked) {
	a, b, clock := sharedPairWith(t, u)
	// r1 holds gone (whole packs of its own, and the start of the last)
	// and kept, whose chunks end that last pack; r2 holds kept only.
	gone := gcRandom(10, 40*gcChunk)
	kept := gcRandom(11, 3*gcChunk)
	goneEntry := gcFile(t, a, "gone.bin", gone)
	keptEntry := gcFile(t, a, "kept.bin", kept)
	r1, err := a.CommitRecord(&manifest.Record{Computer: "pc1", Created: time.Unix(1, 0).UTC(), Tree: gcTree(t, a, goneEntry, keptEntry), Files: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CommitRecord(&manifest.Record{Computer: "pc2", Created: time.Unix(1, 0).UTC(), Tree: gcTree(t, a, keptEntry), Files: 1}); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveRecord(r1); err != nil {
		t.Fatal(err)
	}
	refresh(t, b)
	probe := goneEntry.Chunks[0].ID
	if ok, _ := b.Has(cas.BlobData, probe); !ok {
		t.Fatal("b does not hold a chunk a stored")
	}

	// Young packs are never condemned.
	rep := sharedGC(t, a)
	if rep.PacksMarked != 0 || rep.PacksDeleted != 0 {
		t.Fatalf("young packs: %+v", rep)
	}
	// Old enough: condemned, nothing deleted.
	advance(clock, 2*time.Hour)
	rep = sharedGC(t, a)
	// The pack gone's last chunks share with kept's is sparse: kept's
	// chunks are copied to a new pack first, a replacement of the mark.
	if rep.PacksMarked == 0 || rep.PacksDeleted != 0 || rep.BlobsCopied == 0 || countMarks(t, a) != 1 {
		t.Fatalf("first run: %+v, %d marks", rep, countMarks(t, a))
	}
	readAll(t, a, "after marking")
	refresh(t, b)
	if ok, _ := b.Has(cas.BlobData, probe); ok {
		t.Fatal("b answers held for a chunk in a condemned pack")
	}
	// b captures the same data again (a new process: the probe above
	// reused nothing): it stores it anew (not held) and commits a
	// record that needs it.
	b.sh.touched = map[cas.ID]struct{}{}
	r3, _, err := commitFile(t, b, "pc3", gone)
	if err != nil {
		t.Fatal(err)
	}
	// Its copy is in a new pack, or (a store in clear names packs by
	// their contents alone) the condemned pack written again: revived.
	loc, err := b.Lookup(cas.BlobData, probe)
	if err != nil {
		t.Fatal(err)
	}
	if c, bad := b.sh.condemned[loc.Pack]; bad {
		if ok, err := b.revived(loc.Pack, c); err != nil || !ok {
			t.Fatalf("b's copy of the chunk is in a condemned pack: %v", err)
		}
	}

	// Ripe: the packs whose blobs r3 needs are copied out and condemned
	// again (a's index has the chunk in b's pack, which no mark names),
	// the others deleted.
	advance(clock, 2*time.Hour)
	rep = sharedGC(t, a)
	if _, err := a.Record(r3); err != nil {
		t.Fatalf("a does not list b's record: %v", err)
	}
	// Encrypted packs are sealed with fresh nonces: b's copy is a new
	// pack no mark names, so the condemned one is kept and condemned
	// again with b's pack as its replacement (which every writer indexes
	// again before it can go). In clear, b wrote the very same pack
	// again: revived, it is kept.
	if u != nil && rep.PacksMarked == 0 {
		t.Fatalf("the sweep over a pack a live record needs: %+v", rep)
	}
	readAll(t, a, "after the first sweep")
	refresh(t, b)
	readAll(t, b, "b after the first sweep")

	// Then everything condemned goes, and the records still read.
	for range 3 {
		advance(clock, 2*time.Hour)
		sharedGC(t, a)
		refresh(t, b)
		readAll(t, a, "a after sweeps")
		readAll(t, b, "b after sweeps")
	}
	a.sh.mu.Lock()
	left := len(a.sh.condemned)
	a.sh.mu.Unlock()
	if left != 0 || countMarks(t, a) != 0 {
		t.Fatalf("after the sweeps: %d packs still condemned, %d marks objects", left, countMarks(t, a))
	}
	// gone's chunks are held once more (b's copies), the removed
	// record's old packs are deleted, and b's index names no missing pack.
	for _, r := range []*Repo{a, b} {
		if err := r.ix.Blobs(func(l index.Location) error {
			if _, err := r.packs.Info(l.Pack); err != nil {
				return err
			}
			return nil
		}); err != nil {
			t.Fatalf("an index entry names a missing pack: %v", err)
		}
	}
}

// TestSharedGCCommitRefused: a writer that reused a chunk before gc
// condemned its pack fails its commit (nothing committed, nothing live)
// rather than reference it; run again it stores the chunk anew.
func TestSharedGCCommitRefused(t *testing.T) {
	a, b, clock := sharedPair(t)
	data := gcRandom(20, 20*gcChunk)
	r1, _, err := commitFile(t, a, "pc1", data)
	if err != nil {
		t.Fatal(err)
	}
	refresh(t, b)
	// b's capture reuses every chunk (held) ...
	e := gcFile(t, b, "f.bin", data)
	root := gcTree(t, b, e)
	// ... while the record holding them is removed and gc condemns them.
	if err := a.RemoveRecord(r1); err != nil {
		t.Fatal(err)
	}
	advance(clock, 2*time.Hour)
	if rep := sharedGC(t, a); rep.PacksMarked == 0 {
		t.Fatalf("nothing condemned: %+v", rep)
	}
	_, err = b.CommitRecord(&manifest.Record{Computer: "pc2", Created: time.Unix(1, 0).UTC(), Tree: root, Files: 1, Bytes: uint64(len(data))})
	if !errors.Is(err, ErrCondemned) {
		t.Fatalf("commit over condemned chunks: %v", err)
	}
	if recs, _ := b.Records(); len(recs) != 1 || recs[0].Computer != "pc1" {
		t.Fatalf("a refused commit left records: %v", recs)
	}
	// The run again (the refused commit forgot what it touched).
	if _, _, err := commitFile(t, b, "pc2", data); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		advance(clock, 2*time.Hour)
		sharedGC(t, a)
	}
	refresh(t, b)
	readAll(t, a, "a")
	readAll(t, b, "b")
	if recs, _ := a.Records(); len(recs) != 1 {
		t.Fatalf("a lists %d records, want 1", len(recs))
	}
}

// TestSharedCommitLate: a record stored too late for the run that
// deletes a pack it needs to be sure to see it is refused after the
// write, and its tombstone keeps it from going live anywhere.
func TestSharedCommitLate(t *testing.T) {
	a, _, _ := sharedPair(t)
	r1, e, err := commitFile(t, a, "pc1", gcRandom(30, 2*gcChunk))
	if err != nil {
		t.Fatal(err)
	}
	loc, err := a.Lookup(cas.BlobData, e.Chunks[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	info, err := a.packs.Info(loc.Pack)
	if err != nil {
		t.Fatal(err)
	}
	// A mark naming the pack, ripening before the record was surely
	// listed / long after.
	for _, tc := range []struct {
		grace time.Duration
		ok    bool
	}{{time.Second, false}, {time.Hour, true}} {
		a.sh.marks = map[string]*marksObject{}
		m := &marksObject{grace: tc.grace, condemned: []cas.ID{loc.Pack}}
		name := marksName(time.Now())
		if err := a.st.Put(context.Background(), name, encodeMarks(m)); err != nil {
			t.Fatal(err)
		}
		err := a.checkCommitted([]cas.ID{loc.Pack}, info.Created)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrCondemned)) {
			t.Fatalf("grace %v: %v", tc.grace, err)
		}
		if err := a.st.Delete(context.Background(), name); err != nil {
			t.Fatal(err)
		}
	}
	// A failed re-check tombstones the record.
	m := &marksObject{grace: time.Second, condemned: []cas.ID{loc.Pack}}
	if err := a.st.Put(context.Background(), marksName(time.Now()), encodeMarks(m)); err != nil {
		t.Fatal(err)
	}
	if err := a.recheckCommitted(r1, []cas.ID{loc.Pack}); !errors.Is(err, ErrCondemned) {
		t.Fatalf("recheck: %v", err)
	}
	if _, err := a.Record(r1); err == nil {
		t.Fatal("the refused record is still live")
	}
	tomb := a.Hasher.SumBlob(cas.BlobTombstone, r1[:])
	if ok, _ := a.ix.Has(cas.BlobTombstone, tomb); !ok {
		t.Fatal("no tombstone for the refused record")
	}
}

// TestSharedStaleNotHeld: past the refresh bound every blob is "not
// held" (the lazy refresh cannot catch up with a zero bound).
func TestSharedStaleNotHeld(t *testing.T) {
	a, _, _ := sharedPair(t)
	_, e, err := commitFile(t, a, "pc1", gcRandom(40, gcChunk))
	if err != nil {
		t.Fatal(err)
	}
	id := e.Chunks[0].ID
	if ok, _ := a.Has(cas.BlobData, id); !ok {
		t.Fatal("fresh index: not held")
	}
	a.sh.bound = 0
	if ok, _ := a.Has(cas.BlobData, id); ok {
		t.Fatal("stale index: held")
	}
	if _, err := a.LookupHeld(cas.BlobData, id); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("stale LookupHeld: %v", err)
	}
	if isNew, err := a.Reserve(cas.BlobData, id); err != nil || !isNew {
		t.Fatalf("stale Reserve: %v %v", isNew, err)
	}
	a.unreserve(cas.BlobKey{Type: cas.BlobData, ID: id})
}

// TestSharedGCGraceFloor: Maintain refuses a grace shorter than
// SharedMinGrace on a shared store unless told it is a test.
func TestSharedGCGraceFloor(t *testing.T) {
	a, _, _ := sharedPair(t)
	_, err := a.Maintain(context.Background(), MaintainOptions{GCOptions: GCOptions{Grace: time.Minute}})
	if err == nil || !strings.Contains(err.Error(), "too short") {
		t.Fatalf("short grace: %v", err)
	}
	if _, err := a.Maintain(context.Background(), MaintainOptions{GCOptions: GCOptions{Grace: time.Minute, ShortGraceOK: true}}); err != nil {
		t.Fatal(err)
	}
}

func TestMarksCodec(t *testing.T) {
	m := &marksObject{grace: 90 * time.Minute, condemned: []cas.ID{{1}, {2}}, replacements: []cas.ID{{3}}}
	got, err := decodeMarks(encodeMarks(m))
	if err != nil {
		t.Fatal(err)
	}
	if got.grace != m.grace || len(got.condemned) != 2 || got.condemned[1] != m.condemned[1] || got.replacements[0] != m.replacements[0] {
		t.Fatalf("round trip: %+v", got)
	}
	b := encodeMarks(m)
	for _, bad := range [][]byte{nil, b[:10], b[:len(b)-1], append(bytes.Clone(b), 0), append([]byte("SMPGCMK2"), b[8:]...)} {
		if _, err := decodeMarks(bad); !errors.Is(err, cas.ErrCorrupt) {
			t.Errorf("decode %d bytes: %v", len(bad), err)
		}
	}
}

func FuzzDecodeMarks(f *testing.F) {
	f.Add(encodeMarks(&marksObject{grace: time.Hour, condemned: []cas.ID{{1}}, replacements: []cas.ID{{2}, {3}}}))
	f.Add([]byte("SMPGCMK1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMarks(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeMarks(m), b) {
			t.Fatal("decoded marks do not encode to the same bytes")
		}
	})
}

// secondsStorage gives whole-second creation times and clock, as S3's
// Last-Modified and Date do.
type secondsStorage struct{ storage.Storage }

func (s secondsStorage) Stat(ctx context.Context, name string) (storage.Info, error) {
	info, err := s.Storage.Stat(ctx, name)
	info.Created = info.Created.Truncate(time.Second)
	return info, err
}

func (s secondsStorage) List(ctx context.Context, prefix, cursor string, limit int) ([]storage.Info, string, error) {
	page, next, err := s.Storage.List(ctx, prefix, cursor, limit)
	for i := range page {
		page[i].Created = page[i].Created.Truncate(time.Second)
	}
	return page, next, err
}

func (s secondsStorage) Now(ctx context.Context) (time.Time, error) {
	t, err := s.Storage.Now(ctx)
	return t.Truncate(time.Second), err
}

// TestSharedRekeySameSecond: on a storage with whole-second times, gc
// --rekey right after a capture condemns every pack under the old key,
// even those written in the second its marks object is written (which
// would otherwise read as written again after their mark and be kept),
// and a gc after the grace leaves the old key sealing nothing.
func TestSharedRekeySameSecond(t *testing.T) {
	for round := range 3 { // a fresh store each: the injected clock only runs ahead
		t.Run(fmt.Sprint(round), func(t *testing.T) { testSharedRekeySameSecond(t, round) })
	}
}

func testSharedRekeySameSecond(t *testing.T, round int) {
	u := testKeys(t)
	a, _, clock := sharedPairWith(t, u)
	dir := a.Dir
	gcClose(t, a)
	old := openStorage
	openStorage = func(s string) (storage.Storage, error) {
		st, err := old(s)
		return secondsStorage{st}, err
	}
	t.Cleanup(func() { openStorage = old })
	r := gcOpen(t, dir)
	r.shared, r.sh = true, newSharedState()
	// Packs under the previous key, written just now.
	for i := range 4 {
		content := []byte(strings.Repeat(fmt.Sprintf("same second %d %d ", round, i), 3000))
		if _, _, err := commitFile(t, r, fmt.Sprintf("pc%d-%d", round, i), content); err != nil {
			t.Fatal(err)
		}
	}
	gcClose(t, r)
	if _, err := u.Rotate(); err != nil {
		t.Fatal(err)
	}
	gcKeyrings.Store(dir, u.Keyring())
	r = gcOpen(t, dir)
	r.shared, r.sh = true, newSharedState()
	rep, err := r.GC(context.Background(), GCOptions{Grace: time.Hour, Rekey: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("round %d: gc --rekey right after the writes: %v", round, rep.Problems)
	}
	advance(clock, 2*time.Hour)
	rep, err = r.GC(context.Background(), GCOptions{Grace: time.Hour})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("round %d: gc after the grace: %v %v", round, err, rep.Problems)
	}
	usage, err := r.KeyUsage()
	if err != nil {
		t.Fatal(err)
	}
	cur := r.currentKey()
	for _, id := range r.sealingKeyring().IDs() {
		if id != cur && len(usage.Uses(id)) > 0 {
			t.Fatalf("round %d: after the grace, master key %d still seals %v", round, id, usage.Uses(id))
		}
	}
	readAll(t, r, "after rekey")
	gcClose(t, r)
}
