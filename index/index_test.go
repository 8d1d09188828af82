package index_test

import (
	"encoding/binary"
	"errors"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"smp/cas"
	"smp/index"
)

func idN(n uint64) cas.ID {
	var id cas.ID
	binary.BigEndian.PutUint64(id[:8], n*0x9e3779b97f4a7c15) // spread over the key space
	binary.BigEndian.PutUint64(id[24:], n)
	id[16] = 0x5a // never the zero ID
	return id
}

func openIndex(t testing.TB, dir string) *index.Index {
	t.Helper()
	ix, err := index.Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return ix
}

// packEntries returns n entries of varied types and compressions laid out
// back to back, with blob IDs from idN(base..base+n).
func packEntries(base uint64, n int) []cas.PackEntry {
	var out []cas.PackEntry
	off := uint64(cas.PackHeaderSize)
	for i := range n {
		e := cas.PackEntry{
			Type:        cas.BlobType(1 + i%4),
			Compression: cas.Compression(i % 2),
			ID:          idN(base + uint64(i)),
			Offset:      off,
			StoredLen:   uint32(100 + i),
			RawLen:      uint32(100 + i),
		}
		if e.Compression == cas.CompressionZstd {
			e.RawLen = uint32(1000 + 7*i)
		}
		off += uint64(e.StoredLen)
		out = append(out, e)
	}
	return out
}

func TestAddPackGet(t *testing.T) {
	ix := openIndex(t, t.TempDir())
	defer ix.Close()
	packA, packB := idN(1<<40), idN(1<<40+1)
	entA, entB := packEntries(0, 9), packEntries(100, 3)
	// Extremes of every field survive the encoding.
	entB = append(entB, cas.PackEntry{Type: cas.BlobTombstone, Compression: cas.CompressionZstd, ID: idN(999),
		Offset: 1<<64 - 1, StoredLen: cas.MaxBlobSize, RawLen: cas.MaxBlobSize})
	if err := ix.AddPack(packA, 5000, entA); err != nil {
		t.Fatal(err)
	}
	if err := ix.AddPack(packB, 1<<62, entB); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		pack    cas.ID
		entries []cas.PackEntry
	}{{packA, entA}, {packB, entB}}
	for _, tt := range tests {
		for _, e := range tt.entries {
			got, err := ix.Get(e.Type, e.ID)
			if err != nil {
				t.Errorf("Get(%v) = %v", e.ID.Short(), err)
				continue
			}
			if want := (index.Location{Pack: tt.pack, PackEntry: e}); got != want {
				t.Errorf("Get(%v) = %+v, want %+v", e.ID.Short(), got, want)
			}
			if has, err := ix.Has(e.Type, e.ID); !has || err != nil {
				t.Errorf("Has(%v) = %v, %v; want true", e.ID.Short(), has, err)
			}
		}
	}
	// A known ID under another type is not indexed either.
	if _, err := ix.Get(cas.BlobTree, entA[0].ID); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("Get(tree, data blob %v) = %v, want ErrNotFound", entA[0].ID.Short(), err)
	}
	for _, miss := range []cas.ID{{}, idN(50), packA, idN(1 << 50)} {
		if _, err := ix.Get(cas.BlobData, miss); !errors.Is(err, cas.ErrNotFound) {
			t.Errorf("Get(%v) = %v, want ErrNotFound", miss.Short(), err)
		}
		if has, err := ix.Has(cas.BlobTree, miss); has || err != nil {
			t.Errorf("Has(%v) = %v, %v; want false, nil", miss.Short(), has, err)
		}
	}
}

func TestAddPackLaterWins(t *testing.T) {
	// A blob written again (e.g. after a crash before indexing) points at
	// the pack indexed last.
	ix := openIndex(t, t.TempDir())
	defer ix.Close()
	e := packEntries(0, 1)
	if err := ix.AddPack(idN(1000), 100, e); err != nil {
		t.Fatal(err)
	}
	if err := ix.AddPack(idN(1001), 100, e); err != nil {
		t.Fatal(err)
	}
	if got, err := ix.Get(e[0].Type, e[0].ID); err != nil || got.Pack != idN(1001) {
		t.Errorf("Get = %v, %v; want pack %v", got.Pack.Short(), err, idN(1001).Short())
	}
}

func TestAddEmptyPack(t *testing.T) {
	ix := openIndex(t, t.TempDir())
	defer ix.Close()
	if err := ix.AddPack(idN(7), 32, nil); err != nil {
		t.Fatal(err)
	}
	var got []index.PackInfo
	if err := ix.Packs(func(p index.PackInfo) error { got = append(got, p); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []index.PackInfo{{ID: idN(7), Size: 32, Blobs: 0}}; !slices.Equal(got, want) {
		t.Errorf("Packs = %+v, want %+v", got, want)
	}
}

func collectPacks(t testing.TB, ix *index.Index) map[cas.ID]index.PackInfo {
	t.Helper()
	got := map[cas.ID]index.PackInfo{}
	if err := ix.Packs(func(p index.PackInfo) error {
		if _, dup := got[p.ID]; dup {
			t.Errorf("Packs listed %v twice", p.ID.Short())
		}
		got[p.ID] = p
		return nil
	}); err != nil {
		t.Fatalf("Packs: %v", err)
	}
	return got
}

func collectBlobs(t testing.TB, ix *index.Index) map[cas.ID]index.Location {
	t.Helper()
	got := map[cas.ID]index.Location{}
	if err := ix.Blobs(func(l index.Location) error {
		if _, dup := got[l.ID]; dup {
			t.Errorf("Blobs listed %v twice", l.ID.Short())
		}
		got[l.ID] = l
		return nil
	}); err != nil {
		t.Fatalf("Blobs: %v", err)
	}
	return got
}

func collectRecords(t testing.TB, ix *index.Index) map[cas.ID]string {
	t.Helper()
	got := map[cas.ID]string{}
	if err := ix.Records(func(id cas.ID, b []byte) error {
		got[id] = string(b)
		return nil
	}); err != nil {
		t.Fatalf("Records: %v", err)
	}
	return got
}

func TestPacksAndBlobsScan(t *testing.T) {
	ix := openIndex(t, t.TempDir())
	defer ix.Close()
	wantPacks := map[cas.ID]index.PackInfo{}
	wantBlobs := map[cas.ID]index.Location{}
	for p := range 5 {
		pid := idN(uint64(1<<30 + p))
		entries := packEntries(uint64(p*100), 10+p)
		size := int64(1000 * (p + 1))
		if err := ix.AddPack(pid, size, entries); err != nil {
			t.Fatal(err)
		}
		wantPacks[pid] = index.PackInfo{ID: pid, Size: size, Blobs: len(entries)}
		for _, e := range entries {
			wantBlobs[e.ID] = index.Location{Pack: pid, PackEntry: e}
		}
	}
	// Records share the key space but must not show up as blobs or packs.
	if err := ix.PutRecord(idN(1<<20), []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if got := collectPacks(t, ix); !maps.Equal(got, wantPacks) {
		t.Errorf("Packs = %v\nwant %v", got, wantPacks)
	}
	if got := collectBlobs(t, ix); !maps.Equal(got, wantBlobs) {
		t.Errorf("Blobs: got %d, want %d (or contents differ)", len(got), len(wantBlobs))
	}
	stop := errors.New("stop")
	n := 0
	if err := ix.Blobs(func(index.Location) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("Blobs did not stop at fn's error: %v after %d calls", err, n)
	}
	if err := ix.Packs(func(index.PackInfo) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Packs did not return fn's error: %v", err)
	}
}

func TestRecords(t *testing.T) {
	ix := openIndex(t, t.TempDir())
	defer ix.Close()
	if got := collectRecords(t, ix); len(got) != 0 {
		t.Fatalf("new index has records %v", got)
	}
	recs := map[cas.ID]string{idN(1): `{"a":1}`, idN(2): `{"b":2}`, idN(3): `{"c":3}`}
	for id, b := range recs {
		if err := ix.PutRecord(id, []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	if got := collectRecords(t, ix); !maps.Equal(got, recs) {
		t.Errorf("Records = %v, want %v", got, recs)
	}
	// Put replaces.
	if err := ix.PutRecord(idN(2), []byte(`{"b":22}`)); err != nil {
		t.Fatal(err)
	}
	recs[idN(2)] = `{"b":22}`
	if err := ix.DeleteRecord(idN(1)); err != nil {
		t.Fatal(err)
	}
	delete(recs, idN(1))
	// Deleting a missing record is not an error.
	if err := ix.DeleteRecord(idN(99)); err != nil {
		t.Errorf("DeleteRecord(missing) = %v", err)
	}
	if got := collectRecords(t, ix); !maps.Equal(got, recs) {
		t.Errorf("Records after put/delete = %v, want %v", got, recs)
	}
	// Records are not blobs.
	if has, _ := ix.Has(cas.BlobRecord, idN(2)); has {
		t.Errorf("a record ID is reported as an indexed blob")
	}
	// The encoded bytes handed to fn are a copy fn may keep.
	var kept [][]byte
	_ = ix.Records(func(_ cas.ID, b []byte) error { kept = append(kept, b); return nil })
	var got []string
	for _, b := range kept {
		got = append(got, string(b))
	}
	sort.Strings(got)
	if want := []string{`{"b":22}`, `{"c":3}`}; !slices.Equal(got, want) {
		t.Errorf("kept record bytes = %q, want %q", got, want)
	}
}

func TestReopenPersists(t *testing.T) {
	dir := t.TempDir()
	ix := openIndex(t, dir)
	entries := packEntries(0, 20)
	if err := ix.AddPack(idN(500), 4242, entries); err != nil {
		t.Fatal(err)
	}
	if err := ix.PutRecord(idN(600), []byte("rec")); err != nil {
		t.Fatal(err)
	}
	if err := ix.PutRecord(idN(601), []byte("gone")); err != nil {
		t.Fatal(err)
	}
	if err := ix.DeleteRecord(idN(601)); err != nil {
		t.Fatal(err)
	}
	if err := ix.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	ix = openIndex(t, dir)
	defer ix.Close()
	for _, e := range entries {
		if got, err := ix.Get(e.Type, e.ID); err != nil || got != (index.Location{Pack: idN(500), PackEntry: e}) {
			t.Errorf("after reopen Get(%v) = %+v, %v", e.ID.Short(), got, err)
		}
	}
	if got := collectPacks(t, ix); len(got) != 1 || got[idN(500)] != (index.PackInfo{ID: idN(500), Size: 4242, Blobs: 20}) {
		t.Errorf("after reopen Packs = %v", got)
	}
	if got := collectRecords(t, ix); !maps.Equal(got, map[cas.ID]string{idN(600): "rec"}) {
		t.Errorf("after reopen Records = %v", got)
	}
}

// rawOptions are small-footprint Badger options for poking at an index
// directly (the defaults allocate 64 MiB memtables and open slowly).
func rawOptions(dir string) badger.Options {
	return badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(8 << 20).
		WithValueLogFileSize(64 << 20).WithBlockCacheSize(1 << 20).WithIndexCacheSize(1 << 20)
}

// writeRaw writes key=value straight into the Badger database in dir.
func writeRaw(t testing.TB, dir string, kv map[string][]byte) {
	t.Helper()
	db, err := badger.Open(rawOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		for k, v := range kv {
			if err := txn.Set([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaMismatch(t *testing.T) {
	tests := []struct {
		name    string
		version string
	}{
		{"future", "999"},
		{"zero", "0"},
		{"garbage", "one"},
		{"empty", ""},
		{"padded", "1 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ix := openIndex(t, dir)
			if err := ix.Close(); err != nil {
				t.Fatal(err)
			}
			writeRaw(t, dir, map[string][]byte{"v": []byte(tt.version)})
			ix, err := index.Open(dir)
			if !errors.Is(err, index.ErrSchema) {
				if ix != nil {
					ix.Close()
				}
				t.Fatalf("Open with schema %q = %v, want ErrSchema", tt.version, err)
			}
			if ix != nil {
				t.Errorf("Open returned an index with an error")
			}
			// The refused database was closed: it can be opened again (Badger
			// holds a directory lock while open).
			writeRaw(t, dir, map[string][]byte{"v": []byte("2")})
			ix = openIndex(t, dir)
			ix.Close()
		})
	}
}

func TestOpenWritesSchemaVersion(t *testing.T) {
	dir := t.TempDir()
	openIndex(t, dir).Close()
	db, err := badger.Open(rawOptions(dir).WithReadOnly(true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v []byte
	err = db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("v"))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if err != nil || string(v) != "2" {
		t.Errorf("schema key = %q, %v; want \"2\"", v, err)
	}
}

func TestOpenTwiceFails(t *testing.T) {
	dir := t.TempDir()
	ix := openIndex(t, dir)
	defer ix.Close()
	if ix2, err := index.Open(dir); err == nil {
		ix2.Close()
		t.Errorf("second Open of an open index succeeded")
	}
}

func TestCorruptEntries(t *testing.T) {
	dir := t.TempDir()
	openIndex(t, dir).Close()
	good := idN(1)
	short := idN(2)
	over := idN(3)
	loc := func(stored, raw uint32) []byte {
		b := []byte{1, 0}
		b = binary.LittleEndian.AppendUint64(b, 16)
		b = binary.LittleEndian.AppendUint32(b, stored)
		b = binary.LittleEndian.AppendUint32(b, raw)
		return append(b, make([]byte, 32)...)
	}
	writeRaw(t, dir, map[string][]byte{
		"t\x01" + string(good[:]):  loc(5, 5),
		"t\x01" + string(short[:]): loc(5, 5)[:40],
		"t\x01" + string(over[:]):  loc(cas.MaxBlobSize+1, 5),
		"t\x02" + string(good[:]):  loc(5, 5), // says data under a tree key
	})
	ix := openIndex(t, dir)
	defer ix.Close()
	if _, err := ix.Get(cas.BlobTree, good); !errors.Is(err, cas.ErrCorrupt) {
		t.Errorf("Get(tree, good) of an entry saying data = %v, want ErrCorrupt", err)
	}
	if got, err := ix.Get(cas.BlobData, good); err != nil || got.StoredLen != 5 || got.Offset != 16 || got.Type != cas.BlobData {
		t.Errorf("Get(good) = %+v, %v", got, err)
	}
	for _, id := range []cas.ID{short, over} {
		if _, err := ix.Get(cas.BlobData, id); !errors.Is(err, cas.ErrCorrupt) {
			t.Errorf("Get(%v) = %v, want ErrCorrupt", id.Short(), err)
		}
		if has, err := ix.Has(cas.BlobData, id); has || !errors.Is(err, cas.ErrCorrupt) {
			t.Errorf("Has(%v) = %v, %v; want false, ErrCorrupt", id.Short(), has, err)
		}
	}
	if err := ix.Blobs(func(index.Location) error { return nil }); !errors.Is(err, cas.ErrCorrupt) {
		t.Errorf("Blobs over a corrupt entry = %v, want ErrCorrupt", err)
	}
}

func TestConcurrentAccess(t *testing.T) {
	ix := openIndex(t, t.TempDir())
	defer ix.Close()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for p := range 10 {
				base := uint64(g*10000 + p*100)
				entries := packEntries(base, 20)
				if err := ix.AddPack(idN(1<<40+base), 100, entries); err != nil {
					t.Error(err)
					return
				}
				for _, e := range entries {
					if _, err := ix.Get(e.Type, e.ID); err != nil {
						t.Errorf("Get right after AddPack: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if got := len(collectBlobs(t, ix)); got != 4*10*20 {
		t.Errorf("Blobs = %d, want %d", got, 4*10*20)
	}
}

// BenchmarkIndexGet measures lookups in an index of 200k blobs, as a store
// of ~200 GB of 1 MiB chunks would hold.
// BenchmarkIndexGet measures lookups in an index of SMP_BENCH_INDEX_CHUNKS
// chunks (default 200,000; the figure is 10,000,000, which takes a
// few minutes to load):
//
//	SMP_BENCH_INDEX_CHUNKS=10000000 go test ./index -run XXX -bench IndexGet -benchtime 100000x -timeout 1h
func BenchmarkIndexGet(b *testing.B) {
	total, batch := 200_000, 10_000
	if s := os.Getenv("SMP_BENCH_INDEX_CHUNKS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < batch {
			b.Fatalf("SMP_BENCH_INDEX_CHUNKS=%q: want a number >= %d", s, batch)
		}
		total = n / batch * batch
	}
	ix := openIndex(b, b.TempDir())
	defer ix.Close()
	for p := 0; p < total/batch; p++ {
		if err := ix.AddPack(idN(1<<40+uint64(p)), 32<<20, packEntries(uint64(p*batch), batch)); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("hit", func(b *testing.B) {
		i := uint64(0)
		for b.Loop() {
			if _, err := ix.Get(cas.BlobData, idN(i%uint64(total))); err != nil {
				b.Fatal(err)
			}
			i += 7919
		}
	})
	b.Run("miss", func(b *testing.B) {
		i := uint64(total)
		for b.Loop() {
			if _, err := ix.Get(cas.BlobData, idN(i)); !errors.Is(err, cas.ErrNotFound) {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("has-hit", func(b *testing.B) {
		i := uint64(0)
		for b.Loop() {
			if ok, err := ix.Has(cas.BlobData, idN(i%uint64(total))); !ok || err != nil {
				b.Fatal(ok, err)
			}
			i += 7919
		}
	})
}
