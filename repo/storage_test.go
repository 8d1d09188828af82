package repo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"smp/cas"
	"smp/repo"
	"smp/storage"
	"smp/storage/storagetest"
)

// TestStoreOverPlainStorage runs a store over a storage without the local
// directory's optional capabilities (a streaming writer, open handles),
// as an object store would be: packs are buffered and put whole, blobs
// read by ranged gets. The layout is the local one, a failed pack put
// fails the flushes waiting for it and loses nothing else, and gc deletes
// through the storage.
func TestStoreOverPlainStorage(t *testing.T) {
	var failPuts atomic.Bool
	var puts, deletes atomic.Int64
	restore := repo.SetStorage(func(st storage.Storage) storage.Storage {
		return &storagetest.Faulty{Storage: st, Hook: func(op storagetest.Op, name string) error {
			if !strings.HasPrefix(name, "packs/") {
				return nil
			}
			switch op {
			case storagetest.OpPut:
				if failPuts.Load() {
					return errors.New("injected put failure")
				}
				puts.Add(1)
			case storagetest.OpDelete:
				deletes.Add(1)
			}
			return nil
		}}
	})
	defer restore()

	dir := newStore(t)
	r := openStore(t, dir)
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	f := newFixture(t, r, "PC1", t0)
	if puts.Load() == 0 {
		t.Fatal("the packs were not put through the storage")
	}
	recs, err := r.Records()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Verify(recs, true, nil)
	if err != nil || len(rep.Damaged) != 0 || rep.Chunks != 3 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	loc := mustLookup(t, r, f.b1)
	s := loc.Pack.String()
	if _, err := os.Stat(filepath.Join(dir, "packs", s[:2], s+".pack")); err != nil {
		t.Fatalf("pack not in the local layout: %v", err)
	}

	// A put that fails loses its pack's blobs only, which store again.
	failPuts.Store(true)
	plain := text("lost-then-stored", 4000)
	id, isNew, err := r.PutBlob(cas.BlobData, plain)
	if err != nil || !isNew {
		t.Fatalf("PutBlob = %v, %v", isNew, err)
	}
	if err := r.Flush(); err == nil || !strings.Contains(err.Error(), "injected put failure") {
		t.Fatalf("Flush with a failing put = %v", err)
	}
	failPuts.Store(false)
	mark := r.Mark()
	if _, isNew, err := r.PutBlob(cas.BlobData, plain); err != nil || !isNew {
		t.Fatalf("PutBlob again after the failure = %v, %v; want stored anew", isNew, err)
	}
	if err := r.FlushSince(mark); err != nil {
		t.Fatal(err)
	}
	if got, err := r.ReadChunk(id, nil); err != nil || string(got) != string(plain) {
		t.Fatalf("ReadChunk after the retry = %d bytes, %v", len(got), err)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "packs", "tmp")); len(left) != 0 {
		t.Errorf("the buffered writer left temporary files: %d", len(left))
	}

	// gc deletes the record's packs through the storage.
	if err := r.RemoveRecord(f.rec); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GC(context.Background(), repo.GCOptions{RepackBelow: 1}); err != nil {
		t.Fatal(err)
	}
	if deletes.Load() == 0 {
		t.Error("gc deleted no pack through the storage")
	}
	if _, err := os.Stat(filepath.Join(dir, "packs", s[:2], s+".pack")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the removed record's pack is still there: %v", err)
	}
	// The store reopens over the same storage with nothing lost: a
	// second record (in a new open: CommitRecord reports the injected
	// failure of this one) verifies after another reopen.
	closeStore(t, r)
	r = openStore(t, dir)
	g := newFixture(t, r, "PC2", t0.Add(time.Hour))
	closeStore(t, r)
	r = openStore(t, dir)
	recs, err = r.Records()
	if err != nil || len(recs) != 1 || recs[0].ID != g.rec {
		t.Fatalf("Records after reopen = %v, %v", recs, err)
	}
	if rep, err := r.Verify(recs, true, nil); err != nil || len(rep.Damaged) != 0 || len(rep.UnindexedPacks) != 0 {
		t.Fatalf("Verify after reopen = %+v, %v", rep, err)
	}
}

// TestPackSymlinkNotFollowed: a pack replaced by a symbolic link (someone
// with write access to the store's directory pointing it at a file of
// their choice) is not read through the link: the blob is unreadable, and
// verify reports it damaged, instead of serving the link target's bytes.
func TestPackSymlinkNotFollowed(t *testing.T) {
	dir := newStore(t)
	r := openStore(t, dir)
	f := newFixture(t, r, "PC1", time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))
	loc := mustLookup(t, r, f.b1)
	path := r.Packs().Path(loc.Pack)
	outside := filepath.Join(t.TempDir(), "planted.pack")
	if err := os.Rename(path, outside); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, path); err != nil {
		t.Fatal(err)
	}
	r.Packs().Close() // no descriptor of the file opened before
	if got, err := r.ReadChunk(f.b1, nil); err == nil {
		t.Fatalf("ReadChunk read %d bytes through a symbolic link", len(got))
	}
	recs, err := r.Records()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Verify(recs, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damaged) == 0 {
		t.Error("verify does not report the blobs of a symlinked pack")
	}
}
