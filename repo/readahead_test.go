package repo_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"smp/cas"
	"smp/cas/manifest"
	"smp/index"
	"smp/repo"
	"smp/storage"
)

// countingStorage is a storage read by request (no open handles, as S3):
// it counts pack reads, and fails one when fail says so.
type countingStorage struct {
	storage.Storage
	gets atomic.Int64
	fail func(length int64) bool
}

func (s *countingStorage) Get(ctx context.Context, name string, offset, length int64, buf []byte) ([]byte, error) {
	if strings.HasPrefix(name, "packs/") {
		if s.fail != nil && s.fail(length) {
			return nil, errors.New("injected read failure")
		}
		s.gets.Add(1)
	}
	return s.Storage.Get(ctx, name, offset, length, buf)
}

// readAheadStore returns a store over a countingStorage over the local
// directory holding n incompressible data blobs of 20 KiB in store order,
// the blobs, and the counter of pack reads.
func readAheadStore(t *testing.T, n int, tr repo.Transfers, fail func(int64) bool) (*repo.Repo, [][]byte, []manifest.Chunk, *atomic.Int64) {
	t.Helper()
	cs := &countingStorage{fail: fail}
	t.Cleanup(repo.SetStorage(func(st storage.Storage) storage.Storage {
		cs.Storage = st
		return cs
	}))
	gets := &cs.gets
	dir := newStore(t)
	w := openStore(t, dir)
	rng := rand.New(rand.NewPCG(7, 8))
	var blobs [][]byte
	var chunks []manifest.Chunk
	for range n {
		b := make([]byte, 20<<10)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		id, _, err := w.PutBlob(cas.BlobData, b)
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, b)
		chunks = append(chunks, manifest.Chunk{ID: id, Size: uint32(len(b))})
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	closeStore(t, w)
	r, err := repo.OpenWith(dir, repo.OpenOptions{Transfers: tr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	gets.Store(0)
	return r, blobs, chunks, gets
}

func readAll(t *testing.T, r *repo.Repo, blobs [][]byte, chunks []manifest.Chunk, which func(int) bool) {
	t.Helper()
	var buf []byte
	for i, ch := range chunks {
		if which != nil && !which(i) {
			continue
		}
		got, err := r.ReadChunk(ch.ID, buf)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if !bytes.Equal(got, blobs[i]) {
			t.Fatalf("chunk %d read back differs", i)
		}
		buf = got[:0]
	}
}

// TestReadAheadMerges: announced chunks of a store read by request are
// read ahead, neighbours of one pack in one ranged read: 400 blobs of a
// pack cost a handful of reads, not one each as without the announcement.
func TestReadAheadMerges(t *testing.T) {
	const n = 400
	r, blobs, chunks, gets := readAheadStore(t, n, repo.Transfers{}, nil)
	readAll(t, r, blobs, chunks, nil)
	if got := gets.Load(); got != n {
		t.Fatalf("unannounced reads: %d pack reads for %d blobs, want one each", got, n)
	}
	gets.Store(0)
	r.ReadAhead(chunks)
	readAll(t, r, blobs, chunks, nil)
	// 400 x 20 KiB is 8 MiB: one or two spans of maxSpan, and a few reads
	// the workers made before their span arrived would be more; never
	// one per blob.
	if got := gets.Load(); got > 4 {
		t.Fatalf("announced reads: %d pack reads for %d blobs, want them merged", got, n)
	}
	t.Logf("%d blobs read by %d ranged reads", n, gets.Load())

	// Announced in another order than the pack's (a capture's workers
	// fill packs in the order they finish files): still merged.
	gets.Store(0)
	order := rand.New(rand.NewPCG(3, 4)).Perm(n)
	shuffled := make([]manifest.Chunk, n)
	want := make([][]byte, n)
	for i, j := range order {
		shuffled[i], want[i] = chunks[j], blobs[j]
	}
	r.ReadAhead(shuffled)
	readAll(t, r, want, shuffled, nil)
	if got := gets.Load(); got > 4 {
		t.Fatalf("announced out of pack order: %d pack reads for %d blobs, want them merged", got, n)
	}
}

// TestReadAheadBudget: with a read-ahead budget of two blobs, announced
// chunks that are never read (files that existed) are dropped once reading
// has moved on, so the read-ahead never stalls, and concurrent readers
// get every chunk right; a chunk announced twice is read twice.
func TestReadAheadBudget(t *testing.T) {
	const n = 300
	r, blobs, chunks, gets := readAheadStore(t, n, repo.Transfers{ReadAhead: 40 << 10, Reads: 2}, nil)
	r.ReadAhead(chunks)
	r.ReadAhead(chunks[:10]) // read twice below
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			var buf []byte
			for i := w; i < n; i += 3 {
				if i%5 == 0 {
					continue // never read: the file existed
				}
				got, err := r.ReadChunk(chunks[i].ID, buf)
				if err != nil || !bytes.Equal(got, blobs[i]) {
					t.Errorf("chunk %d: %v", i, err)
					return
				}
				buf = got[:0]
			}
		})
	}
	wg.Wait()
	readAll(t, r, blobs, chunks[:10], nil)
	if gets.Load() == 0 {
		t.Fatal("nothing read")
	}
}

// TestReadAheadFailure: a ranged read that fails leaves its chunks to
// ReadChunk, which reads them itself: every one comes back right.
func TestReadAheadFailure(t *testing.T) {
	var spans atomic.Int64
	r, blobs, chunks, _ := readAheadStore(t, 100, repo.Transfers{}, func(length int64) bool {
		return length > 64<<10 && spans.Add(1) == 1 // the first read of many blobs
	})
	r.ReadAhead(chunks)
	readAll(t, r, blobs, chunks, nil)
	if spans.Load() == 0 {
		t.Fatal("no ranged read of several blobs was made")
	}
}

// TestReadStoredAll: blobs asked for in pack order come back as
// ReadStored gives them, neighbours of a pack read by one ranged request
// on a store read by request; a ranged read that fails is read again blob
// by blob.
func TestReadStoredAll(t *testing.T) {
	const n = 300
	var spans atomic.Int64
	var failSpans atomic.Bool
	r, _, chunks, gets := readAheadStore(t, n, repo.Transfers{}, func(length int64) bool {
		return failSpans.Load() && length > 64<<10 && spans.Add(1) == 1
	})
	var locs []index.Location
	want := map[cas.ID][]byte{}
	for _, ch := range chunks {
		loc, err := r.Lookup(cas.BlobData, ch.ID)
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, loc)
		b, err := r.ReadStored(loc, nil)
		if err != nil {
			t.Fatal(err)
		}
		want[ch.ID] = b
	}
	slices.SortFunc(locs, func(a, b index.Location) int {
		if c := bytes.Compare(a.Pack[:], b.Pack[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.Offset, b.Offset)
	})
	for _, fail := range []bool{false, true} {
		failSpans.Store(fail)
		gets.Store(0)
		got := 0
		err := r.ReadStoredAll(locs, func(loc index.Location, stored []byte) error {
			if loc != locs[got] || !bytes.Equal(stored, want[loc.ID]) {
				t.Fatalf("blob %d: %s, %d bytes; want %s as ReadStored gives it", got, loc.ID.Short(), len(stored), locs[got].ID.Short())
			}
			got++
			return nil
		})
		if err != nil || got != n {
			t.Fatalf("ReadStoredAll (failing span %v) = %v after %d blobs", fail, err, got)
		}
		if !fail && gets.Load() > 2 {
			t.Fatalf("%d pack reads for %d neighbouring blobs, want them merged", gets.Load(), n)
		}
		t.Logf("failing span %v: %d blobs by %d reads", fail, n, gets.Load())
	}
	if spans.Load() == 0 {
		t.Fatal("no span failed")
	}
	stop := errors.New("stop")
	if err := r.ReadStoredAll(locs, func(index.Location, []byte) error { return stop }); err != stop {
		t.Fatalf("ReadStoredAll with each failing = %v", err)
	}
}
