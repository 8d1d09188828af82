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
// Estimate implements capture.Store and capture's proving and offering
// extensions.
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

// Reserve implements capture.Store; capture uses OfferData instead.
func (e *Estimate) Reserve(cas.BlobType, cas.ID) (bool, error) { return false, e.cp.Err() }

// ReserveData offers the blob once and answers whether the SMP lacks it.
func (e *Estimate) ReserveData(t cas.BlobType, id cas.ID, plain []byte) (bool, error) {
	if !e.firstSight(id) {
		return false, e.cp.Err()
	}
	held, err := e.cp.offer(t, id, plain)
	return err == nil && !held, err
}

// OfferData implements capture.OfferingStore: the blob is offered once,
// in the next have-query, and needed when the SMP lacks it.
func (e *Estimate) OfferData(t cas.BlobType, id cas.ID, plain []byte, answer func(need bool, err error)) {
	if !e.firstSight(id) {
		answer(false, e.cp.Err())
		return
	}
	e.cp.offerLater(&e.cp.dataOffers, t, id, plain, func(held bool, err error) {
		answer(err == nil && !held, err)
	})
}

// WaitOffers implements capture.OfferingStore.
func (e *Estimate) WaitOffers() { e.cp.dataOffers.Wait() }

func (e *Estimate) firstSight(id cas.ID) bool {
	e.seenMu.Lock()
	defer e.seenMu.Unlock()
	if _, dup := e.seen[id]; dup {
		return false
	}
	e.seen[id] = struct{}{}
	return true
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

// LoadsTreesAhead: see Capture.LoadsTreesAhead.
func (e *Estimate) LoadsTreesAhead() {}

// LoadTree implements capture.Store: trees of the parent record.
func (e *Estimate) LoadTree(id cas.ID) (*manifest.Tree, error) { return e.cp.LoadTree(id) }

// Has implements capture.Store.
func (e *Estimate) Has(t cas.BlobType, id cas.ID) (bool, error) { return e.cp.Has(t, id) }

// CommitRecord ends the estimate: nothing is committed.
func (e *Estimate) CommitRecord(*manifest.Record) (cas.ID, error) { return cas.ID{}, e.cp.Err() }
