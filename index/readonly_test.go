package index_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"smp/cas"
	"smp/index"
)

// dirNames lists dir's files, to show a read-only open creates none.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != "LOCK" { // Badger's own lock file may come and go
			names = append(names, e.Name())
		}
	}
	return names
}

func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	ix := openIndex(t, dir)
	entries := packEntries(0, 10)
	if err := ix.AddPack(idN(500), 4242, entries); err != nil {
		t.Fatal(err)
	}
	if err := ix.PutRecord(idN(600), []byte("rec")); err != nil {
		t.Fatal(err)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	before := dirNames(t, dir)

	ro, err := index.OpenReadOnly(dir)
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	if !ro.ReadOnly() {
		t.Error("ReadOnly() = false")
	}
	for _, e := range entries {
		if got, err := ro.Get(e.Type, e.ID); err != nil || got != (index.Location{Pack: idN(500), PackEntry: e}) {
			t.Errorf("Get(%v) = %+v, %v", e.ID.Short(), got, err)
		}
	}
	if b, err := ro.Record(idN(600)); err != nil || string(b) != "rec" {
		t.Errorf("Record = %q, %v", b, err)
	}
	writes := map[string]func() error{
		"AddPack":     func() error { return ro.AddPack(idN(501), 1, packEntries(100, 1)) },
		"PutRecord":   func() error { return ro.PutRecord(idN(601), []byte("x")) },
		"DeleteBlobs": func() error { return ro.DeleteBlobs(nil) }, // nothing to do: allowed
		"DeleteBlobs1": func() error {
			return ro.DeleteBlobs(packEntryKeys(entries[:1]))
		},
		"SetReleased":  func() error { return ro.SetReleased(idN(600), 1) },
		"SetLocations": func() error { return ro.SetLocations([]index.Location{{Pack: idN(500), PackEntry: entries[0]}}) },
		"RetirePack":   func() error { return ro.RetirePack(idN(500)) },
	}
	for name, w := range writes {
		err := w()
		if name == "DeleteBlobs" {
			if err != nil {
				t.Errorf("%s of nothing: %v", name, err)
			}
			continue
		}
		if !errors.Is(err, index.ErrReadOnly) {
			t.Errorf("%s on a read-only index = %v, want ErrReadOnly", name, err)
		}
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if after := dirNames(t, dir); !slices.Equal(before, after) {
		t.Errorf("a read-only open and close changed the index directory:\nbefore %v\nafter  %v", before, after)
	}
	// Everything is still there for a writable open.
	ix = openIndex(t, dir)
	defer ix.Close()
	if _, err := ix.Get(entries[0].Type, entries[0].ID); err != nil {
		t.Errorf("after the read-only open, Get: %v", err)
	}
}

func TestOpenReadOnlyRefusesMissingIndex(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "index")
	if _, err := index.OpenReadOnly(dir); !errors.Is(err, index.ErrNoIndex) {
		t.Errorf("OpenReadOnly of a missing index = %v, want ErrNoIndex", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenReadOnly created %s: %v", dir, err)
	}
}

func packEntryKeys(entries []cas.PackEntry) []cas.BlobKey {
	keys := make([]cas.BlobKey, len(entries))
	for i, e := range entries {
		keys[i] = e.Key()
	}
	return keys
}

// TestOpenReadOnlyRefusesUnflushedWrites copies an index while it is
// open, as a killed process leaves it: its last writes are only in the
// memtable's write-ahead log, which only a writable open replays (Badger
// truncates the preallocated log first). A read-only open must fail rather
// than show the index without them; callers then open it writable, which
// must find every entry.
func TestOpenReadOnlyRefusesUnflushedWrites(t *testing.T) {
	dir := t.TempDir()
	ix := openIndex(t, dir)
	defer ix.Close()
	entries := packEntries(0, 5)
	if err := ix.AddPack(idN(500), 4242, entries); err != nil {
		t.Fatal(err)
	}
	crashed := t.TempDir()
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	mems := 0
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Ext(f.Name()) == ".mem" {
			mems++
		}
		if err := os.WriteFile(filepath.Join(crashed, f.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if mems == 0 {
		t.Fatal("the open index has no memtable file to replay")
	}
	if ro, err := index.OpenReadOnly(crashed); err == nil {
		ro.Close()
		t.Fatal("OpenReadOnly of an index left open succeeded; the store would rely on it seeing the write-ahead log")
	}
	rw := openIndex(t, crashed)
	defer rw.Close()
	for _, e := range entries {
		if got, err := rw.Get(e.Type, e.ID); err != nil || got != (index.Location{Pack: idN(500), PackEntry: e}) {
			t.Errorf("writable open after the refused read-only one: Get(%v) = %+v, %v", e.ID.Short(), got, err)
		}
	}
}
