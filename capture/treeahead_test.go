package capture

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"smp/cas"
	"smp/cas/manifest"
)

var testHasher = cas.NewHasher([32]byte{})

// fakeTrees is a record's trees by ID, counting the loads of each.
type fakeTrees struct {
	trees map[cas.ID]*manifest.Tree
	mu    sync.Mutex
	loads map[cas.ID]int
}

func (f *fakeTrees) load(id cas.ID) (*manifest.Tree, error) {
	f.mu.Lock()
	f.loads[id]++
	f.mu.Unlock()
	t, ok := f.trees[id]
	if !ok {
		return nil, fmt.Errorf("tree %s: %w", id.Short(), cas.ErrNotFound)
	}
	return t, nil
}

// buildTrees makes a tree of depth levels with width subdirectories per
// directory (and a file each) and returns the root's ID.
func (f *fakeTrees) build(name string, depth, width int) cas.ID {
	t := &manifest.Tree{Entries: []manifest.Entry{{Name: "file", Type: manifest.TypeFile}}}
	if depth > 0 {
		for i := range width {
			sub := f.build(fmt.Sprintf("%s/%d", name, i), depth-1, width)
			t.Entries = append(t.Entries, manifest.Entry{Name: fmt.Sprint(i), Type: manifest.TypeDir, Subtree: sub})
		}
	}
	id := testHasher.Sum([]byte(name))
	f.trees[id] = t
	return id
}

// walk takes the trees depth first, as the walker does, and counts them.
func walkAhead(t *testing.T, a *treeAhead, f *fakeTrees, id cas.ID) int {
	t.Helper()
	tree, err := a.take(id)
	if err != nil {
		t.Fatal(err)
	}
	if tree != f.trees[id] {
		t.Fatalf("tree %s: got another tree", id.Short())
	}
	n := 1
	for _, e := range tree.Entries {
		if e.Type == manifest.TypeDir {
			n += walkAhead(t, a, f, e.Subtree)
		}
	}
	return n
}

// TestTreeAhead: a depth-first walk gets every tree of the record, each
// loaded once (by a loader ahead of it or by the walk itself), and at
// most treeAheadMax trees wait for it at any time.
func TestTreeAhead(t *testing.T) {
	f := &fakeTrees{trees: map[cas.ID]*manifest.Tree{}, loads: map[cas.ID]int{}}
	root := f.build("root", 4, 8) // 4681 trees
	a := startTreeAhead(f.load)
	defer a.stop()
	if n := walkAhead(t, a, f, root); n != len(f.trees) {
		t.Fatalf("walked %d trees, want %d", n, len(f.trees))
	}
	for id, n := range f.loads {
		if n != 1 {
			t.Errorf("tree %s loaded %d times", id.Short(), n)
		}
	}
	a.mu.Lock()
	waiting := len(a.ahead)
	a.mu.Unlock()
	if waiting != 0 {
		t.Errorf("%d trees left waiting after the walk", waiting)
	}
}

// TestTreeAheadBoundAndForget: trees queued ahead stop at treeAheadMax;
// a forgotten one is not kept; a tree that cannot be loaded is the
// walker's error.
func TestTreeAheadBoundAndForget(t *testing.T) {
	f := &fakeTrees{trees: map[cas.ID]*manifest.Tree{}, loads: map[cas.ID]int{}}
	wide := &manifest.Tree{}
	for i := range treeAheadMax + 10 {
		sub := f.build(fmt.Sprint("d", i), 0, 0)
		wide.Entries = append(wide.Entries, manifest.Entry{Name: fmt.Sprint(i), Type: manifest.TypeDir, Subtree: sub})
	}
	missing := testHasher.Sum([]byte("missing"))
	wide.Entries = append(wide.Entries, manifest.Entry{Name: "zz", Type: manifest.TypeDir, Subtree: missing})
	a := startTreeAhead(f.load)
	defer a.stop()
	a.queue(wide)
	a.mu.Lock()
	queued := len(a.ahead)
	a.mu.Unlock()
	if queued != treeAheadMax {
		t.Errorf("%d trees queued ahead, want the bound %d", queued, treeAheadMax)
	}
	first := wide.Entries[0].Subtree
	a.forget(first)
	a.mu.Lock()
	_, kept := a.ahead[first]
	a.mu.Unlock()
	if kept {
		t.Error("a forgotten tree is still kept")
	}
	if _, err := a.take(missing); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("missing tree: %v, want not found", err)
	}
}

// TestTreeAheadRunsDownAndForgets: once the walker takes the root, the
// loaders load the whole record below it without the walker (each tree
// once), and forgetting the root's subdirectories forgets everything
// loaded below them.
func TestTreeAheadRunsDownAndForgets(t *testing.T) {
	f := &fakeTrees{trees: map[cas.ID]*manifest.Tree{}, loads: map[cas.ID]int{}}
	root := f.build("root", 3, 4) // 85 trees
	a := startTreeAhead(f.load)
	defer a.stop()
	tree, err := a.take(root)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		loaded := len(f.loads)
		f.mu.Unlock()
		if loaded == len(f.trees) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the loaders loaded %d of %d trees without the walker", loaded, len(f.trees))
		}
		time.Sleep(time.Millisecond)
	}
	for id, n := range f.loads {
		if n != 1 {
			t.Errorf("tree %s loaded %d times", id.Short(), n)
		}
	}
	a.mu.Lock()
	waiting := len(a.ahead)
	a.mu.Unlock()
	if waiting != len(f.trees)-1 {
		t.Errorf("%d trees wait for the walker, want %d", waiting, len(f.trees)-1)
	}
	for _, e := range tree.Entries {
		if e.Type == manifest.TypeDir {
			a.forget(e.Subtree)
		}
	}
	a.mu.Lock()
	waiting, entries := len(a.ahead), a.entries
	a.mu.Unlock()
	if waiting != 0 || entries != 0 {
		t.Errorf("after forgetting every subdirectory: %d trees and %d entries kept", waiting, entries)
	}
}
