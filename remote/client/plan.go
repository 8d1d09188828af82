package client

import (
	"errors"
	"sync"
	"sync/atomic"

	"smp/cas"
	"smp/cas/manifest"
)

// Plan is a dry run of a capture on its session, for `smp capture
// --reserve-first`: every chunk and tree is offered with its proof exactly
// as the capture will offer it, so the SMP reserves room for all those it
// lacks, but nothing is uploaded or committed. A capture the SMP has no
// room for is thus refused before it uploads a byte (and the client can
// try another SMP), and once the plan has passed, the capture can only be
// stopped for space by data that changed in between. The price is a
// second read of every file the capture reads.
//
// Plan implements capture.Store and capture's proving and offering
// extensions.
type Plan struct {
	cp *Capture

	seenMu sync.Mutex
	seen   map[cas.ID]struct{}

	// Blobs and plaintext bytes the SMP lacks: what the capture will send.
	NewBlobs, NewBytes atomic.Int64
}

// Plan returns a dry run on the capture's session. Run it to completion
// before the capture itself; they must not run at the same time.
func (cp *Capture) Plan() *Plan { return &Plan{cp: cp, seen: map[cas.ID]struct{}{}} }

// ChunkerParams implements capture.Store.
func (p *Plan) ChunkerParams() cas.ChunkerParams { return p.cp.ChunkerParams() }

// Sum implements capture.Store.
func (p *Plan) Sum(b []byte) cas.ID { return p.cp.Sum(b) }

// Reserve implements capture.Store; capture uses OfferData instead.
func (p *Plan) Reserve(cas.BlobType, cas.ID) (bool, error) { return false, p.cp.Err() }

// ReserveData offers the blob and always answers "not needed", so the
// capture pipeline never compresses or uploads anything.
func (p *Plan) ReserveData(t cas.BlobType, id cas.ID, plain []byte) (bool, error) {
	if !p.firstSight(id) {
		return false, p.cp.Err()
	}
	held, err := p.cp.offer(t, id, plain)
	if err == nil && !held {
		p.NewBlobs.Add(1)
		p.NewBytes.Add(int64(len(plain)))
	}
	return false, err
}

// OfferData implements capture.OfferingStore: the blob is offered in the
// next have-query, counted if the SMP lacks it, and answered "not needed"
// as ReserveData does.
func (p *Plan) OfferData(t cas.BlobType, id cas.ID, plain []byte, answer func(need bool, err error)) {
	if !p.firstSight(id) {
		answer(false, p.cp.Err())
		return
	}
	n := int64(len(plain))
	p.cp.offerLater(&p.cp.dataOffers, t, id, plain, func(held bool, err error) {
		if err == nil && !held {
			p.NewBlobs.Add(1)
			p.NewBytes.Add(n)
		}
		answer(false, err)
	})
}

// WaitOffers implements capture.OfferingStore.
func (p *Plan) WaitOffers() { p.cp.dataOffers.Wait() }

func (p *Plan) firstSight(id cas.ID) bool {
	p.seenMu.Lock()
	defer p.seenMu.Unlock()
	if _, dup := p.seen[id]; dup {
		return false
	}
	p.seen[id] = struct{}{}
	return true
}

// AddBlob implements capture.Store. It is never called, since the plan
// never asks for a blob.
func (p *Plan) AddBlob(cas.BlobType, cas.ID, cas.Compression, []byte, int) error {
	return errors.New("capture plan: nothing may be uploaded during the plan")
}

// PutTree offers the tree's blob and returns its ID at once; CommitRecord
// waits for the answer.
func (p *Plan) PutTree(t *manifest.Tree) (cas.ID, error) {
	b, err := t.Encode()
	if err != nil {
		return cas.ID{}, err
	}
	id := p.cp.c.hasher.SumBlob(cas.BlobTree, b)
	if !p.firstSight(id) {
		return id, p.cp.Err()
	}
	p.cp.offerLater(&p.cp.treeOffers, cas.BlobTree, id, b, func(held bool, err error) {
		if err == nil && !held {
			p.NewBlobs.Add(1)
			p.NewBytes.Add(int64(len(b)))
		}
	})
	return id, p.cp.Err()
}

// LoadsTreesAhead: see Capture.LoadsTreesAhead.
func (p *Plan) LoadsTreesAhead() {}

// LoadTree implements capture.Store: trees of the parent record.
func (p *Plan) LoadTree(id cas.ID) (*manifest.Tree, error) { return p.cp.LoadTree(id) }

// Has implements capture.Store.
func (p *Plan) Has(t cas.BlobType, id cas.ID) (bool, error) { return p.cp.Has(t, id) }

// CommitRecord ends the plan once every offer is answered: nothing is
// committed.
func (p *Plan) CommitRecord(*manifest.Record) (cas.ID, error) {
	p.cp.treeOffers.Wait()
	p.cp.dataOffers.Wait()
	return cas.ID{}, p.cp.Err()
}
