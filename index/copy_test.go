package index_test

import (
	"errors"
	"maps"
	"path/filepath"
	"testing"

	"smp/cas"
	"smp/index"
)

// TestCopyToEncrypted: CopyTo moves an index in clear, with blobs, packs,
// records and a retired pack, into a new index under a key. The copy holds
// exactly the live entries (a deleted record and blob are not in it); it
// opens with the key only; the index in clear does not open with the key
// (ErrWrongKey, which a store being converted relies on to fall back to
// it), whether its data is still in the memtable or flushed to tables.
func TestCopyToEncrypted(t *testing.T) {
	for _, flushed := range []bool{false, true} {
		src := filepath.Join(t.TempDir(), "src")
		ix := openIndex(t, src)
		p1, p2 := idN(1000), idN(1001)
		e1, e2 := packEntries(1, 40), packEntries(100, 5)
		if err := ix.AddPack(p1, 5000, e1); err != nil {
			t.Fatal(err)
		}
		if err := ix.AddPack(p2, 600, e2); err != nil {
			t.Fatal(err)
		}
		ix.PutRecord(idN(7), []byte(`{"computer":"pc"}`))
		ix.PutRecord(idN(8), []byte(`{"computer":"gone"}`))
		ix.DeleteRecord(idN(8))
		if err := ix.DeleteBlobs([]cas.BlobKey{e1[0].Key()}); err != nil {
			t.Fatal(err)
		}
		if err := ix.RetirePack(p2); err != nil {
			t.Fatal(err)
		}
		if flushed {
			ix.Close()
			ix = openIndex(t, src) // a reopen flushes the memtable to a table
		}
		key := make([]byte, 32)
		key[3] = 9
		dst := filepath.Join(t.TempDir(), "dst")
		if err := ix.CopyTo(dst, index.Options{EncryptionKey: key}); err != nil {
			t.Fatal(err)
		}
		wantPacks, wantBlobs, wantRecs := collectPacks(t, ix), collectBlobs(t, ix), collectRecords(t, ix)
		ix.Close()

		if c, err := index.OpenExisting(dst); err == nil || !errors.Is(err, index.ErrWrongKey) {
			t.Fatalf("flushed=%v: the copy opens without the key: %v", flushed, err)
		} else if c != nil {
			c.Close()
		}
		if c, err := index.OpenExisting(src, index.Options{EncryptionKey: key}); !errors.Is(err, index.ErrWrongKey) {
			t.Fatalf("flushed=%v: the index in clear opened with a key: %v", flushed, err)
		} else if c != nil {
			c.Close()
		}
		c, err := index.OpenExisting(dst, index.Options{EncryptionKey: key})
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(collectPacks(t, c), wantPacks) || !maps.Equal(collectBlobs(t, c), wantBlobs) || !maps.Equal(collectRecords(t, c), wantRecs) {
			t.Errorf("flushed=%v: the copy differs", flushed)
		}
		if _, ok := wantRecs[idN(8)]; ok || len(wantRecs) != 1 || len(wantBlobs) != 44 || len(wantPacks) != 1 {
			t.Errorf("flushed=%v: the source holds %d records, %d blobs, %d packs", flushed, len(wantRecs), len(wantBlobs), len(wantPacks))
		}
		retired := 0
		c.RetiredPacks(func(id cas.ID, _ int64) error { retired++; return nil })
		if retired != 1 {
			t.Errorf("flushed=%v: %d retired packs in the copy", flushed, retired)
		}
		c.Close()
	}
}
