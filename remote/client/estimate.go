package client

import (
	"sync"

	"smp/cas"
	"smp/cas/manifest"
)

// Estimate runs a capture on an estimate session (StartEstimate): every
// chunk is offered with its proof as a capture offers it, and one the SMP
// lacks is "needed", so the capture compresses it and counts its new and
// stored bytes, but AddBlob drops it: nothing is uploaded, and the session
// cannot commit. Trees are named, not offered (a capture's new and stored
// bytes count data only).
//
// Estimate implements capture.Store and capture's proving-store extension.
type Estimate struct {
	cp *Capture

	seenMu sync.Mutex
	seen   map[cas.ID]struct{}
}

// Estimate returns the estimate store of an estimate session.
func (cp *Capture) Estimate() *Estimate { return &Estimate{cp: cp, seen: map[cas.ID]struct{}{}} }

// ChunkerParams implements capture.Store.
func (e *Estimate) ChunkerParams() cas.ChunkerParams { return e.cp.ChunkerParams() }

// Sum implements capture.Store.
func (e *Estimate) Sum(b []byte) cas.ID { return e.cp.Sum(b) }

// Reserve implements capture.Store; capture uses ReserveData instead.
func (e *Estimate) Reserve(cas.BlobType, cas.ID) (bool, error) { return false, e.cp.Err() }

// ReserveData offers the blob once and answers whether the SMP lacks it.
func (e *Estimate) ReserveData(t cas.BlobType, id cas.ID, plain []byte) (bool, error) {
	e.seenMu.Lock()
	_, dup := e.seen[id]
	e.seen[id] = struct{}{}
	e.seenMu.Unlock()
	if dup {
		return false, e.cp.Err()
	}
	held, err := e.cp.offer(t, id, plain)
	return err == nil && !held, err
}

// AddBlob drops the compressed blob the capture counted.
func (e *Estimate) AddBlob(cas.BlobType, cas.ID, cas.Compression, []byte, int) error {
	return e.cp.Err()
}

// PutTree returns the tree's ID, as the store would name it.
func (e *Estimate) PutTree(t *manifest.Tree) (cas.ID, error) {
	b, err := t.Encode()
	if err != nil {
		return cas.ID{}, err
	}
	return e.cp.c.hasher.SumBlob(cas.BlobTree, b), nil
}

// LoadTree implements capture.Store: trees of the parent record.
func (e *Estimate) LoadTree(id cas.ID) (*manifest.Tree, error) { return e.cp.LoadTree(id) }

// Has implements capture.Store.
func (e *Estimate) Has(t cas.BlobType, id cas.ID) (bool, error) { return e.cp.Has(t, id) }

// CommitRecord ends the estimate: nothing is committed.
func (e *Estimate) CommitRecord(*manifest.Record) (cas.ID, error) { return cas.ID{}, e.cp.Err() }
