package client

import (
	"fmt"
	"sync"

	"smp/cas"
	"smp/cas/manifest"
	"smp/remote/wire"
)

// parentAheadMax bounds the parent trees fetched ahead and not yet taken:
// each directory's subtrees are fetched when it is loaded, and the walker
// takes them as it enters them, so what waits is about the subdirectories
// of the directories on the walker's path.
const parentAheadMax = 4096

// parentTrees reads the parent record's trees for an incremental
// capture's change detection. A capture walks the tree in depth-first
// order and loads a directory's previous tree when it enters it: one
// round trip each, one after another, if asked one at a time. Instead,
// when a tree is loaded its subtrees are fetched at once, in the
// reader's batch requests, so the walker finds them waiting.
type parentTrees struct {
	r     *Reader
	mu    sync.Mutex
	ahead map[cas.ID]*aheadTree
}

type aheadTree struct {
	ready chan struct{}
	data  []byte
	err   error
}

func newParentTrees(r *Reader) *parentTrees {
	return &parentTrees{r: r, ahead: map[cas.ID]*aheadTree{}}
}

// LoadTree returns tree id of the parent record, and fetches its subtrees
// ahead.
func (p *parentTrees) LoadTree(id cas.ID) (*manifest.Tree, error) {
	p.mu.Lock()
	a := p.ahead[id]
	delete(p.ahead, id)
	p.mu.Unlock()
	var t *manifest.Tree
	var err error
	if a != nil {
		select {
		case <-a.ready:
		case <-p.r.ctx.Done():
			return nil, p.r.ctx.Err()
		}
		if a.err == nil {
			t, err = manifest.DecodeTree(a.data)
			if err != nil {
				err = fmt.Errorf("tree %s: %w", id.Short(), err)
			}
		}
	}
	if a == nil || a.err != nil {
		// Not fetched ahead, or that fetch failed: ask for it alone.
		t, err = p.r.LoadTree(id)
	}
	if err != nil {
		return nil, err
	}
	p.fetchAhead(t)
	return t, nil
}

// fetchAhead queues the fetch of t's subtrees, unless parentAheadMax
// trees already wait.
func (p *parentTrees) fetchAhead(t *manifest.Tree) {
	var reqs []*fetchReq
	p.mu.Lock()
	for _, e := range t.Entries {
		if e.Subtree.IsZero() || p.ahead[e.Subtree] != nil || len(p.ahead) >= parentAheadMax {
			continue
		}
		a := &aheadTree{ready: make(chan struct{})}
		p.ahead[e.Subtree] = a
		reqs = append(reqs, &fetchReq{e: wire.FetchEntry{Type: cas.BlobTree, ID: e.Subtree}, done: func(f fetchAns) {
			a.data, a.err = f.data, f.err
			close(a.ready)
		}})
	}
	p.mu.Unlock()
	if len(reqs) == 0 {
		return
	}
	// A directory's subtrees go in requests of their own, not through the
	// reader's queue, whose fetchers would send the first ones alone.
	go func() {
		for len(reqs) > 0 {
			n := min(len(reqs), fetchBatchMax)
			p.r.fetch(reqs[:n])
			reqs = reqs[n:]
		}
	}()
}

// TreeLoader is what a depth-first walk of a record's trees needs.
type TreeLoader interface {
	LoadTree(id cas.ID) (*manifest.Tree, error)
}

// TreeLoader returns a loader of r's trees that fetches each loaded
// tree's subtrees ahead, as an incremental capture's change detection
// does, for any other depth-first walk of the same record (capture.Count).
func (r *Reader) TreeLoader() TreeLoader { return newParentTrees(r) }
