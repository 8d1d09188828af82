package index_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"smp/cas"
	"smp/index"
)

// TestDataAndTreeShareID: a data chunk whose bytes are a tree's prefixed
// encoding has that tree's ID. Both are indexed, each under its own type,
// and neither hides or replaces the other.
func TestDataAndTreeShareID(t *testing.T) {
	ix := openIndex(t, t.TempDir())
	defer ix.Close()
	id := idN(7)
	data := cas.PackEntry{Type: cas.BlobData, ID: id, Offset: cas.PackHeaderSize, StoredLen: 30, RawLen: 30}
	tree := cas.PackEntry{Type: cas.BlobTree, ID: id, Offset: cas.PackHeaderSize + 30, StoredLen: 20, RawLen: 20}
	if err := ix.AddPack(idN(100), 1000, []cas.PackEntry{data}); err != nil {
		t.Fatal(err)
	}
	if has, err := ix.Has(cas.BlobTree, id); has || err != nil {
		t.Fatalf("Has(tree) with only the data chunk indexed = %v, %v; want false", has, err)
	}
	if err := ix.AddPack(idN(101), 1000, []cas.PackEntry{tree}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []index.Location{{Pack: idN(100), PackEntry: data}, {Pack: idN(101), PackEntry: tree}} {
		if got, err := ix.Get(want.Type, id); err != nil || got != want {
			t.Errorf("Get(%s) = %+v, %v; want %+v", want.Type, got, err, want)
		}
	}
	n := 0
	if err := ix.Blobs(func(index.Location) error { n++; return nil }); err != nil || n != 2 {
		t.Errorf("Blobs listed %d, %v; want both", n, err)
	}
	if err := ix.DeleteBlobs([]cas.BlobKey{data.Key()}); err != nil {
		t.Fatal(err)
	}
	if has, err := ix.Has(cas.BlobData, id); has || err != nil {
		t.Errorf("Has(data) after deleting it = %v, %v", has, err)
	}
	if got, err := ix.Get(cas.BlobTree, id); err != nil || got.Pack != idN(101) {
		t.Errorf("Get(tree) after deleting the data chunk = %+v, %v", got, err)
	}
}

// writeV1 writes an index as schema 1 did: "b" + ID keys, whose location
// value names the type.
func writeV1(t *testing.T, dir string, pack cas.ID, entries []cas.PackEntry, extra map[string][]byte) {
	t.Helper()
	kv := map[string][]byte{"v": []byte("1")}
	for _, e := range entries {
		b := []byte{byte(e.Type), byte(e.Compression)}
		b = binary.LittleEndian.AppendUint64(b, e.Offset)
		b = binary.LittleEndian.AppendUint32(b, e.StoredLen)
		b = binary.LittleEndian.AppendUint32(b, e.RawLen)
		kv["b"+string(e.ID[:])] = append(b, pack[:]...)
	}
	info := binary.LittleEndian.AppendUint64(nil, 4242)
	kv["p"+string(pack[:])] = binary.LittleEndian.AppendUint32(info, uint32(len(entries)))
	for k, v := range extra {
		kv[k] = v
	}
	writeRaw(t, dir, kv)
}

// rawKeys counts the keys under prefix and returns the schema version.
func rawKeys(t *testing.T, dir string, prefix string) (int, string) {
	t.Helper()
	db, err := badger.Open(rawOptions(dir).WithReadOnly(true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, v := 0, ""
	err = db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(prefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		item, err := txn.Get([]byte("v"))
		if err != nil {
			return err
		}
		b, err := item.ValueCopy(nil)
		v = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, v
}

// TestMigrateV1: a writable open rewrites a schema 1 index in place; every
// blob reads back under its type, and packs and records are kept. A
// read-only open refuses it, changing nothing.
func TestMigrateV1(t *testing.T) {
	dir := t.TempDir()
	pack := idN(500)
	entries := packEntries(0, 12)
	rec := idN(600)
	writeV1(t, dir, pack, entries, map[string][]byte{"r" + string(rec[:]): []byte("rec")})

	if ro, err := index.OpenReadOnly(dir); !errors.Is(err, index.ErrSchema) {
		if ro != nil {
			ro.Close()
		}
		t.Fatalf("OpenReadOnly of a schema 1 index = %v, want ErrSchema", err)
	}
	if n, v := rawKeys(t, dir, "b"); n != len(entries) || v != "1" {
		t.Fatalf("after the refused read-only open: %d old keys, schema %q", n, v)
	}

	ix, err := index.OpenExisting(dir)
	if err != nil {
		t.Fatalf("OpenExisting of a schema 1 index: %v", err)
	}
	checkMigrated(t, ix, pack, entries)
	if b, err := ix.Record(idN(600)); err != nil || string(b) != "rec" {
		t.Errorf("Record after migration = %q, %v", b, err)
	}
	var packs []index.PackInfo
	if err := ix.Packs(func(p index.PackInfo) error { packs = append(packs, p); return nil }); err != nil ||
		len(packs) != 1 || packs[0] != (index.PackInfo{ID: pack, Size: 4242, Blobs: len(entries)}) {
		t.Errorf("Packs after migration = %+v, %v", packs, err)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	if n, v := rawKeys(t, dir, "b"); n != 0 || v != "2" {
		t.Errorf("after migration: %d old keys left, schema %q; want 0, \"2\"", n, v)
	}
	ro, err := index.OpenReadOnly(dir)
	if err != nil {
		t.Fatalf("OpenReadOnly after migration: %v", err)
	}
	checkMigrated(t, ro, pack, entries)
	ro.Close()
}

// TestMigrateV1Interrupted: a migration cut short (typed keys written for
// some blobs, old keys of some deleted, schema still 1) is finished by the
// next writable open.
func TestMigrateV1Interrupted(t *testing.T) {
	dir := t.TempDir()
	pack := idN(500)
	entries := packEntries(0, 8)
	// Typed keys for entries[:4] were written, the old keys of entries[:2]
	// deleted; the schema is still 1.
	ix := openIndex(t, dir)
	if err := ix.AddPack(pack, 4242, entries[:4]); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	writeV1(t, dir, pack, entries[2:], nil)
	ix, err := index.OpenExisting(dir)
	if err != nil {
		t.Fatalf("open of a half-migrated index: %v", err)
	}
	defer ix.Close()
	checkMigrated(t, ix, pack, entries)
}

func checkMigrated(t *testing.T, ix *index.Index, pack cas.ID, entries []cas.PackEntry) {
	t.Helper()
	for _, e := range entries {
		if got, err := ix.Get(e.Type, e.ID); err != nil || got != (index.Location{Pack: pack, PackEntry: e}) {
			t.Errorf("Get(%s %v) = %+v, %v", e.Type, e.ID.Short(), got, err)
		}
	}
	n := 0
	if err := ix.Blobs(func(index.Location) error { n++; return nil }); err != nil || n != len(entries) {
		t.Errorf("Blobs = %d, %v; want %d", n, err, len(entries))
	}
}
