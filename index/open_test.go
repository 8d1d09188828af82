package index

import (
	"os"
	"path/filepath"
	"testing"

	"smp/cas"
)

// TestOpenAfterKill: an empty memtable file left by a SIGKILL during open is
// no obstacle, and nothing written before is lost.
func TestOpenAfterKill(t *testing.T) {
	dir := t.TempDir()
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.PutRecord(cas.ID{1}, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	// A memtable file created by a killed process, never sized.
	if err := os.WriteFile(filepath.Join(dir, "00009.mem"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ix, err = Open(dir)
	if err != nil {
		t.Fatalf("open with an empty memtable file: %v", err)
	}
	if _, err := ix.Record(cas.ID{1}); err != nil {
		t.Fatalf("record lost: %v", err)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	// (A table with a garbage footer is refused before Badger opens it:
	// TestOpenDamagedTable.)
}
