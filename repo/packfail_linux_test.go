package repo_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"smp/cas"
	"smp/repo"
)

// openSmallPacks opens a new store whose packs/ is a tmpfs of size bytes
// (root only; skipped elsewhere), with a filler file taking all but free
// bytes of it; removing the filler frees the space.
func openSmallPacks(t *testing.T, size, free int) (*repo.Repo, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs for a full disk")
	}
	dir := newStore(t)
	packs := filepath.Join(dir, "packs")
	if err := os.MkdirAll(packs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", packs, "tmpfs", 0, "size="+strconv.Itoa(size)); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): disk-full test skipped", err)
	}
	t.Cleanup(func() { syscall.Unmount(packs, syscall.MNT_DETACH) })
	filler := filepath.Join(packs, "filler")
	if err := os.WriteFile(filler, make([]byte, size-free), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, filler
}

// TestPackFailureIsNotForever: a pack that cannot be written (disk full)
// fails the flushes that may hold its blobs, and Flush (a one-command
// process) from then on, but a writer that marks where it starts
// (FlushSince) works again once space is freed, and the lost blobs can be
// stored again.
func TestPackFailureIsNotForever(t *testing.T) {
	r, filler := openSmallPacks(t, 8<<20, 1<<20)
	rng := rand.New(rand.NewPCG(5, 5))
	chunk := func() []byte {
		b := make([]byte, 300_000)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	mark := r.Mark()
	var lost [][]byte
	var addErr error
	for range 8 { // 2.4 MB into 1 MiB of room
		b := chunk()
		lost = append(lost, b)
		if _, _, addErr = r.PutBlob(cas.BlobData, b); addErr != nil {
			break
		}
	}
	flushErr := r.FlushSince(mark)
	if addErr == nil && flushErr == nil {
		t.Fatal("2.4 MB stored in 1 MiB")
	}
	for _, err := range []error{addErr, flushErr} {
		if err != nil && !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("want ENOSPC, got %v", err)
		}
	}
	if err := r.Flush(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Flush after a failed pack = %v, want its ENOSPC", err)
	}
	left, _ := os.ReadDir(filepath.Join(filepath.Dir(filler), "tmp"))
	if len(left) != 0 {
		t.Errorf("%d temp packs left behind", len(left))
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	mark = r.Mark()
	var ids []cas.ID
	for _, b := range append(lost, chunk()) {
		id, isNew, err := r.PutBlob(cas.BlobData, b)
		if err != nil {
			t.Fatalf("PutBlob after space was freed: %v", err)
		}
		if has, _ := r.Has(cas.BlobData, id); !isNew && !has {
			t.Fatalf("blob %s of the failed pack is neither stored nor new: it would never be stored", id.Short())
		}
		ids = append(ids, id)
	}
	if err := r.FlushSince(mark); err != nil {
		t.Fatalf("FlushSince after space was freed: %v", err)
	}
	for _, id := range ids {
		if has, err := r.Has(cas.BlobData, id); err != nil || !has {
			t.Fatalf("blob %s not stored after space was freed: %v", id.Short(), err)
		}
	}
}
