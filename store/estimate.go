package store

import (
	"context"
	"sync"

	"smp/capture"
	"smp/cas"
	"smp/cas/manifest"
	"smp/repo"
)

// Estimate runs a capture that stores nothing: it walks, selects, chunks
// and compresses as Capture would, against the store's index and the
// computer's last record, and returns the record it would commit (files,
// bytes, new and stored bytes) without writing a pack, a tree or a record.
// The store is opened read-only.
func (d *Dir) Estimate(ctx context.Context, co CaptureOptions) (*CaptureResult, error) {
	if co.ReserveFirst {
		return nil, usagef("--reserve-first reserves room on an SMP server: use it with --store https://...")
	}
	r, err := d.repo()
	if err != nil {
		return nil, err
	}
	opts := co.Options
	// An estimate links nothing into the store: it is a chunked capture's.
	opts.Hardlink, opts.LinkDir = capture.HardlinkNever, ""
	opts.SkipDirs = []string{d.dir}
	if !co.Full {
		if prev, err := r.FindRecord("", opts.Computer); err == nil {
			opts.Parent, opts.ParentID = prev.Record, prev.ID
		}
	}
	res, err := capture.Run(ctx, &estimateStore{r: r, seen: map[cas.BlobKey]struct{}{}}, opts)
	if err != nil {
		return nil, err
	}
	return &CaptureResult{Result: res, Hardlink: opts.Hardlink, Reserved: -1}, nil
}

// estimateStore is a capture.Store over an open store that keeps nothing:
// a blob is new when the index lacks it and this capture has not met it
// yet (as Reserve decides), AddBlob drops the compressed bytes the capture
// counted, PutTree only names the tree, CommitRecord commits nothing.
type estimateStore struct {
	r    *repo.Repo
	mu   sync.Mutex
	seen map[cas.BlobKey]struct{}
}

func (s *estimateStore) ChunkerParams() cas.ChunkerParams { return s.r.ChunkerParams() }

func (s *estimateStore) Sum(b []byte) cas.ID { return s.r.Sum(b) }

func (s *estimateStore) Reserve(t cas.BlobType, id cas.ID) (bool, error) {
	k := cas.BlobKey{Type: t, ID: id}
	s.mu.Lock()
	_, met := s.seen[k]
	s.mu.Unlock()
	if met {
		return false, nil
	}
	has, err := s.r.Has(t, id)
	if err != nil || has {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, met := s.seen[k]; met {
		return false, nil
	}
	s.seen[k] = struct{}{}
	return true, nil
}

func (s *estimateStore) AddBlob(cas.BlobType, cas.ID, cas.Compression, []byte, int) error { return nil }

// PutTree returns the ID the store would give the tree, so directories
// compare with the parent record's as in a real capture.
func (s *estimateStore) PutTree(t *manifest.Tree) (cas.ID, error) {
	b, err := t.Encode()
	if err != nil {
		return cas.ID{}, err
	}
	return s.r.Hasher.SumBlob(cas.BlobTree, b), nil
}

func (s *estimateStore) LoadTree(id cas.ID) (*manifest.Tree, error) { return s.r.LoadTree(id) }

func (s *estimateStore) Has(t cas.BlobType, id cas.ID) (bool, error) { return s.r.Has(t, id) }

func (s *estimateStore) CommitRecord(*manifest.Record) (cas.ID, error) { return cas.ID{}, nil }
