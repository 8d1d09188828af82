package server_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"smp/cas"
	"smp/remote/access"
	"smp/remote/server"
	"smp/remote/wire"
	"smp/repo"
)

// newEnvSmallPacks is newEnv with the store's packs/ on a tmpfs of size
// bytes (root only; the test is skipped elsewhere), so a capture can fill
// it while the index, on the ordinary disk, keeps working.
func newEnvSmallPacks(t *testing.T, size int) (*env, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs for a full disk")
	}
	dir := filepath.Join(t.TempDir(), "store")
	if _, err := repo.Init(dir, cas.DefaultChunkerParams()); err != nil {
		t.Fatalf("repo.Init: %v", err)
	}
	packs := filepath.Join(dir, "packs")
	if err := os.MkdirAll(packs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", packs, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): disk-full test skipped", err)
	}
	t.Cleanup(func() { syscall.Unmount(packs, syscall.MNT_DETACH) }) // after the repo closes
	r, err := repo.Open(dir)
	if err != nil {
		t.Fatalf("repo.Open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	acc, err := access.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, repo: r, acc: acc, clock: &clock{now: t0}}
	e.srv = server.New(server.Options{Repo: r, Access: acc, Now: e.clock.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	e.hs = httptest.NewServer(e.srv)
	t.Cleanup(e.hs.Close) // before the repo closes
	e.admin = e.token("", access.RoleAdmin, 0)
	return e, packs
}

// randomChunks returns n incompressible chunks of size bytes.
func (e *env) randomChunks(seed uint64, n, size int) []chunk {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]chunk, n)
	for i := range out {
		plain := make([]byte, size)
		for j := range plain {
			plain[j] = byte(rng.Uint32())
		}
		stored, comp := cas.Compress(nil, plain)
		out[i] = chunk{plain: plain, id: e.repo.Hasher.Sum(plain), stored: bytes.Clone(stored), comp: comp}
	}
	return out
}

// TestServerRecoversFromFullDisk: an upload that fills the disk fails
// with 507; once space is freed, the next capture, of the same chunks and
// new ones, works without restarting the server.
func TestServerRecoversFromFullDisk(t *testing.T) {
	e, packs := newEnvSmallPacks(t, 16<<20)
	filler := filepath.Join(packs, "filler")
	if err := os.WriteFile(filler, make([]byte, 14<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := e.token("PC01", access.RoleClient, 0)
	chunks := e.randomChunks(1, 12, 300_000) // 3.6 MB: more than is free
	for round := range 2 {
		s := e.session(tok, "PC01")
		var frames []wire.Blob
		for _, c := range chunks {
			frames = append(frames, c.frame())
		}
		r := e.upload(tok, s.ID, frames...)
		wantError(t, fmt.Sprintf("upload %d onto a full disk", round), r, http.StatusInsufficientStorage, true, "disk is full", "no space left")
	}
	for _, c := range chunks {
		if e.has(c.id) {
			t.Fatalf("chunk %s indexed though its upload failed", c.id.Short())
		}
	}
	left, err := os.ReadDir(filepath.Join(packs, "tmp"))
	if err != nil || len(left) != 0 {
		t.Errorf("packs/tmp after the failed uploads: %d files, %v", len(left), err)
	}

	// Space freed: the same chunks and new ones are captured, through the
	// same server and Repo.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	pc := e.client(tok)
	more := e.randomChunks(2, 3, 100_000)
	id, _ := e.captureAll(pc, "PC01", map[string][]chunk{"a": chunks, "b": more}, t0)
	readBack(t, pc, id, append(chunks, more...))
	if _, err := e.repo.Record(id); err != nil {
		t.Fatal(err)
	}
	// A local commit through the same Repo (as smp capture would do in a
	// fresh process) is not failed by the old error either.
	if err := e.repo.RemoveRecord(id); err != nil && !errors.Is(err, repo.ErrNoRecord) {
		t.Fatalf("RemoveRecord after the disk was freed: %v", err)
	}
}
