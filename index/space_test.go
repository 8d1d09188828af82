package index_test

import (
	"errors"
	"slices"
	"syscall"
	"testing"

	"smp/index"
)

// TestNoSpaceRefusedBeforeBadgerWrites: with less free space than Badger
// may write through its mappings (where a full filesystem kills the
// process with SIGBUS instead of failing a write), a writable open and
// every kind of write fail with ENOSPC before Badger touches anything; a
// read-only open still works; and once space is back, everything written
// before is there and writes work.
func TestNoSpaceRefusedBeforeBadgerWrites(t *testing.T) {
	dir := t.TempDir()
	ix := openIndex(t, dir)
	entries := packEntries(0, 50)
	if err := ix.AddPack(idN(500), 4242, entries); err != nil {
		t.Fatal(err)
	}
	if err := ix.PutRecord(idN(600), []byte("rec")); err != nil {
		t.Fatal(err)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	need, err := index.NeededRoom(dir)
	if err != nil {
		t.Fatal(err)
	}
	if need < 1<<20 {
		t.Fatalf("NeededRoom = %d, less than the pages a writable open touches", need)
	}

	var free uint64
	index.SetFreeBytes(t, func(string) (uint64, bool) { return free, true })
	for _, f := range []uint64{0, 4 << 10, 64 << 10, uint64(need) - 1} {
		free = f
		before := dirNames(t, dir)
		if ix, err := index.Open(dir); !errors.Is(err, syscall.ENOSPC) {
			if err == nil {
				ix.Close()
			}
			t.Fatalf("Open with %d bytes free (needs %d) = %v, want ENOSPC", f, need, err)
		}
		if after := dirNames(t, dir); !slices.Equal(before, after) {
			t.Fatalf("a refused open changed the index directory:\nbefore %v\nafter  %v", before, after)
		}
		ro, err := index.OpenReadOnly(dir)
		if err != nil {
			t.Fatalf("OpenReadOnly with %d bytes free: %v", f, err)
		}
		if b, err := ro.Record(idN(600)); err != nil || string(b) != "rec" {
			t.Errorf("read-only Record = %q, %v", b, err)
		}
		ro.Close()
	}

	// Open with room, then lose it: every write is refused, reads work.
	free = 1 << 40
	ix = openIndex(t, dir)
	defer ix.Close()
	free = uint64(need) // enough to open, not enough for a write on top
	writes := map[string]func() error{
		"AddPack":     func() error { return ix.AddPack(idN(501), 1, packEntries(100, 10)) },
		"PutRecord":   func() error { return ix.PutRecord(idN(601), []byte("x")) },
		"DeleteBlobs": func() error { return ix.DeleteBlobs(packEntryKeys(entries[:1])) },
		"SetReleased": func() error { return ix.SetReleased(idN(600), 1) },
		"RetirePack":  func() error { return ix.RetirePack(idN(500)) },
		"SetLocations": func() error {
			return ix.SetLocations([]index.Location{{Pack: idN(500), PackEntry: entries[0]}})
		},
		"RoomForPack": func() error { return ix.RoomForPack(10, 0) },
	}
	for name, w := range writes {
		if err := w(); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("%s with %d bytes free = %v, want ENOSPC", name, free, err)
		}
	}
	for _, e := range entries {
		if _, err := ix.Get(e.Type, e.ID); err != nil {
			t.Fatalf("after refused writes, Get: %v", err)
		}
	}
	free = 1 << 40
	for name, w := range writes {
		if err := w(); err != nil {
			t.Errorf("%s with space back: %v", name, err)
		}
	}
	if b, err := ix.Record(idN(601)); err != nil || string(b) != "x" {
		t.Errorf("Record written after space came back = %q, %v", b, err)
	}
}
