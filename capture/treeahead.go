package capture

import (
	"sync"
	"sync/atomic"

	"smp/cas"
	"smp/cas/manifest"
)

// TreesAhead is implemented by a Store (or a Count's TreeSource) whose
// LoadTree already loads a tree's subtrees ahead of a depth-first walk
// (an SMP's parent record, fetched in batches): the capture then leaves
// that to it.
type TreesAhead interface {
	LoadsTreesAhead()
}

// loadsTreesAhead reports whether store loads subtrees ahead itself.
func loadsTreesAhead(store Store) bool {
	if cs, ok := store.(countStore); ok {
		_, ok := cs.TreeSource.(TreesAhead)
		return ok
	}
	_, ok := store.(TreesAhead)
	return ok
}

const (
	// treeAheadWorkers parent trees are loaded at once ahead of the walker.
	treeAheadWorkers = 2
	// treeAheadMax bounds the parent trees queued (or loaded) ahead and
	// not yet taken by the walker: about the subdirectories of the
	// directories on the walker's path.
	treeAheadMax = 1024
	// treeAheadEntries bounds the entries of the trees loaded ahead and not
	// yet taken (about 300 bytes each): loaders wait beyond it, so that a
	// directory of large directories is not held whole.
	treeAheadEntries = 4 << 10
)

// treeAhead loads the parent record's trees for an incremental capture
// ahead of the walker. The walker loads a directory's previous tree when
// it enters the directory, and reading and decoding it from the store one
// tree after another would hold the walk up. Instead, when
// the walker takes a tree, or a loader loads one the walker has not
// forgotten, the trees of its subdirectories are queued for loaders on
// other goroutines, the last queued loaded first (the walk is depth
// first), so the loaders run down the record in the walker's order, up to
// treeAheadEntries loaded entries ahead of it, and the walker finds its
// trees loaded (queueing one level at a time would leave the walker's next
// tree unloaded whenever a directory has few entries to list).
type treeAhead struct {
	load func(cas.ID) (*manifest.Tree, error)

	mu      sync.Mutex
	cond    sync.Cond
	ahead   map[cas.ID]*aheadTree // queued, loading or loaded, not yet taken
	stack   []*aheadTree          // queued, the next one last
	entries int                   // of the trees in ahead that are loaded
	stopped bool
	wg      sync.WaitGroup
}

type aheadTree struct {
	id      cas.ID
	claimed atomic.Bool   // a loader or the walker loads it
	ready   chan struct{} // closed once tree and err are set
	tree    *manifest.Tree
	err     error
	counted int // its entries in treeAhead.entries (under its mu)
	// kids is set (under treeAhead.mu) when a loader queued the tree's
	// subtrees: forgetting the tree forgets them too.
	kids bool
}

func startTreeAhead(load func(cas.ID) (*manifest.Tree, error)) *treeAhead {
	a := &treeAhead{load: load, ahead: map[cas.ID]*aheadTree{}}
	a.cond.L = &a.mu
	for range treeAheadWorkers {
		a.wg.Go(a.work)
	}
	return a
}

// take returns tree id (loaded ahead, or now) and queues its subtrees.
// Only the walker calls it.
func (a *treeAhead) take(id cas.ID) (*manifest.Tree, error) {
	t := a.remove(id)
	var tree *manifest.Tree
	var err error
	switch {
	case t == nil || t.claimed.CompareAndSwap(false, true):
		tree, err = a.load(id) // not queued, or no loader got to it yet
	default:
		<-t.ready
		tree, err = t.tree, t.err
	}
	if err == nil {
		a.queue(tree)
	}
	return tree, err
}

// forget drops tree id if it was loaded ahead and the walker will not take
// it (the directory is gone or left out), and with it the subtrees a
// loader queued below it, which the walker will not take either.
func (a *treeAhead) forget(id cas.ID) {
	t := a.remove(id)
	if t == nil || t.claimed.CompareAndSwap(false, true) {
		return // not loaded, and not to be: nothing queued below it
	}
	<-t.ready // a loader has it: one load, then its subtrees are known
	a.mu.Lock()
	kids := t.kids
	a.mu.Unlock()
	if !kids {
		return
	}
	for i := range t.tree.Entries {
		if e := &t.tree.Entries[i]; e.Type == manifest.TypeDir && !e.Subtree.IsZero() {
			a.forget(e.Subtree)
		}
	}
}

// remove takes tree id out of the trees ahead, and its entries out of
// their count.
func (a *treeAhead) remove(id cas.ID) *aheadTree {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.ahead[id]
	if t == nil {
		return nil
	}
	delete(a.ahead, id)
	if t.counted > 0 {
		a.entries -= t.counted
		t.counted = 0
		a.cond.Signal() // a loader may wait for room
	}
	return t
}

// queue queues the loading of t's subtrees, first by name loaded first.
func (a *treeAhead) queue(t *manifest.Tree) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.queueLocked(t)
}

func (a *treeAhead) queueLocked(t *manifest.Tree) {
	for i := len(t.Entries) - 1; i >= 0; i-- {
		e := &t.Entries[i]
		if e.Type != manifest.TypeDir || e.Subtree.IsZero() || a.ahead[e.Subtree] != nil || len(a.ahead) >= treeAheadMax {
			continue
		}
		at := &aheadTree{id: e.Subtree, ready: make(chan struct{})}
		a.ahead[e.Subtree] = at
		a.stack = append(a.stack, at)
		a.cond.Signal()
	}
}

// stop ends the loading ahead.
func (a *treeAhead) stop() {
	a.mu.Lock()
	a.stopped = true
	a.cond.Broadcast()
	a.mu.Unlock()
	a.wg.Wait()
}

func (a *treeAhead) work() {
	for {
		a.mu.Lock()
		for !a.stopped && (len(a.stack) == 0 || a.entries >= treeAheadEntries) {
			a.cond.Wait()
		}
		if a.stopped {
			a.mu.Unlock()
			return
		}
		t := a.stack[len(a.stack)-1]
		a.stack[len(a.stack)-1] = nil // the array must not keep its tree
		a.stack = a.stack[:len(a.stack)-1]
		a.mu.Unlock()
		if !t.claimed.CompareAndSwap(false, true) {
			continue // the walker took it, or it was forgotten
		}
		tree, err := a.load(t.id)
		a.mu.Lock()
		t.tree, t.err = tree, err
		if a.ahead[t.id] == t && tree != nil {
			t.counted = len(tree.Entries)
			a.entries += t.counted
			a.queueLocked(tree)
			t.kids = true
		}
		a.mu.Unlock()
		close(t.ready)
	}
}
