package local_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"smp/storage"
	"smp/storage/local"
	"smp/storage/storagetest"
)

func newLocal(t *testing.T) storage.Storage {
	s, err := local.Open(t.TempDir(), local.Options{TempDir: "packs/tmp"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) { storagetest.Run(t, newLocal) }

// TestConformanceFallbacks runs the suite through a wrapper without the
// optional capabilities: the buffered writer and ranged-Get object.
func TestConformanceFallbacks(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		return &storagetest.Faulty{Storage: newLocal(t)}
	})
}

// TestFilesStayInside: a symbolic link planted in the directory is not
// followed, neither as the object nor out of the directory.
func TestFilesStayInside(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(outside), filepath.Join(dir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	s, err := local.Open(dir, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if b, err := s.Get(ctx, "link", 0, -1, nil); err == nil {
		t.Errorf("Get through a symbolic link read %q", b)
	}
	if b, err := s.Get(ctx, "linkdir/secret", 0, -1, nil); err == nil {
		t.Errorf("Get through a linked directory read %q", b)
	}
	if err := s.Put(ctx, "linkdir/planted", []byte("x")); err == nil {
		t.Error("Put wrote through a linked directory")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(outside), "planted")); err == nil {
		t.Error("a file appeared outside the storage")
	}
	page, _, err := s.List(ctx, "", "", 0)
	if err != nil || len(page) != 0 {
		t.Errorf("List shows links as objects: %v, %v", page, err)
	}
	if _, err := s.Get(ctx, "tmp/x.tmp", 0, -1, nil); !errors.Is(err, storage.ErrInvalidName) {
		t.Errorf("a temporary name is readable: %v", err)
	}
}
