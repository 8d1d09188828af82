package store

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"smp/capture"
	"smp/cas"
	"smp/cas/manifest"
	"smp/repo"
)

// countingHas is the local store a capture of a directory store runs on,
// counting the index lookups capture asks of it.
type countingHas struct {
	deferredStore
	has atomic.Int64
}

func (s *countingHas) Has(t cas.BlobType, id cas.ID) (bool, error) {
	s.has.Add(1)
	return s.deferredStore.Has(t, id)
}

// notHolding is countingHas on a store that does not say it holds its
// records' chunks (as a shared one answers).
type notHolding struct{ *countingHas }

func (s notHolding) HoldsRecordChunks() (bool, error) { return false, nil }

// TestLocalIncrementalAsksNoIndex: an incremental capture into a local
// store reuses the parent record's chunks of the unchanged files without
// one index lookup; a store that does not hold its records' chunks for
// the capture is asked about every chunk of them, as before.
func TestLocalIncrementalAsksNoIndex(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	home := filepath.Join(src, "home", "alice")
	if err := os.MkdirAll(filepath.Join(home, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	const files = 40
	for i := range files {
		size := 100 + i*997
		if i == 0 {
			size = 5 << 20 // several chunks
		}
		b := make([]byte, size)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(home, "docs", fmt.Sprintf("f%02d", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "store")
	if _, err := repo.Init(dir, cas.DefaultChunkerParams()); err != nil {
		t.Fatal(err)
	}
	run := func(wrap func(*countingHas) capture.Store) (*capture.Result, int64, int) {
		t.Helper()
		def, err := repo.OpenDeferred(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer def.Close()
		cs := &countingHas{deferredStore: deferredStore{def}}
		opts := capture.Options{Computer: "PC01", Root: src, ParentLookup: func() (*manifest.Record, cas.ID) {
			r, err := def.Repo()
			if err != nil {
				return nil, cas.ID{}
			}
			if prev, err := r.FindRecord("", "PC01"); err == nil {
				return prev.Record, prev.ID
			}
			return nil, cas.ID{}
		}}
		var progress capture.Progress
		opts.Progress = &progress
		res, err := capture.Run(ctx, wrap(cs), opts)
		if err != nil {
			t.Fatal(err)
		}
		return res, cs.has.Load(), int(progress.Unchanged.Load())
	}
	local := func(cs *countingHas) capture.Store { return cs }
	if _, _, unchanged := run(local); unchanged != 0 {
		t.Fatalf("first capture: %d files unchanged", unchanged)
	}
	if _, has, unchanged := run(local); unchanged != files || has != 0 {
		t.Errorf("incremental into a local store: %d files unchanged, %d index lookups; want %d and none", unchanged, has, files)
	}
	if _, has, unchanged := run(func(cs *countingHas) capture.Store { return notHolding{cs} }); unchanged != files || has <= files {
		t.Errorf("incremental into a store that does not hold its chunks: %d files unchanged, %d index lookups; want %d and more than %d", unchanged, has, files, files)
	}
}
