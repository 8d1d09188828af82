package manifest

import (
	"context"
	"errors"
	"path"
	"slices"
	"testing"

	"smp/cas"
)

// mapLoader holds trees in memory and counts the reads.
type mapLoader struct {
	trees map[cas.ID]*Tree
	reads int
}

func (m *mapLoader) LoadTree(id cas.ID) (*Tree, error) {
	m.reads++
	t, ok := m.trees[id]
	if !ok {
		return nil, cas.ErrNotFound
	}
	return t, nil
}

// walkFixture: root holds a/ and b/, both the same subtree (shared), whose
// file x uses chunk 1 twice; root's own file y uses chunks 1 and 2; c/ is
// a tree the loader lacks.
func walkFixture() (*mapLoader, cas.ID) {
	shared, root, missing := idOf(0xa0), idOf(0xb0), idOf(0xc0)
	x := fileEntry("x", 3)
	x.Chunks = append(x.Chunks, x.Chunks[0])
	x.Size = 6
	y := fileEntry("y", 3, 4)
	m := &mapLoader{trees: map[cas.ID]*Tree{
		shared: {Version: TreeVersion, Entries: []Entry{x}},
		root:   {Version: TreeVersion, Entries: []Entry{dirEntry("a", shared), dirEntry("b", shared), dirEntry("c", missing), y}},
	}}
	return m, root
}

func TestWalkerEveryPath(t *testing.T) {
	m, root := walkFixture()
	var paths, failed []string
	w := Walker{Load: m,
		Tree: func(id cas.ID, dir string, _ *Tree, err error) error {
			if err != nil {
				failed = append(failed, dir)
			}
			return nil
		},
		Entry: func(dir string, e *Entry) error {
			paths = append(paths, path.Join(dir, e.Name))
			return nil
		},
	}
	if err := w.Walk(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	// Without Seen the shared subtree is walked under both names; an
	// unreadable tree handed to Tree, which goes on, leaves its siblings.
	if want := []string{"a", "a/x", "b", "b/x", "c", "y"}; !slices.Equal(paths, want) {
		t.Fatalf("paths %v, want %v", paths, want)
	}
	if !slices.Equal(failed, []string{"c"}) {
		t.Fatalf("failed trees %v", failed)
	}
}

func TestWalkerSeenVisitsEachBlobOnce(t *testing.T) {
	m, root := walkFixture()
	m.trees[root].Entries = slices.Delete(m.trees[root].Entries, 2, 3) // no missing tree
	seen := map[cas.BlobKey]struct{}{}
	var entered []cas.ID
	var chunks []cas.ID
	w := Walker{Load: m, Seen: seen,
		Enter: func(id cas.ID, _ string) error { entered = append(entered, id); return nil },
		Chunk: func(id cas.ID, _ *Entry) error { chunks = append(chunks, id); return nil },
	}
	if err := w.Walk(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(entered, []cas.ID{root, idOf(0xa0)}) || m.reads != 2 {
		t.Fatalf("entered %v in %d reads, want root and the shared tree once", entered, m.reads)
	}
	if !slices.Equal(chunks, []cas.ID{idOf(1), idOf(2)}) {
		t.Fatalf("chunks %v, want 1 and 2 once each", chunks)
	}
	// Keyed by type: a chunk and a tree of the same ID are distinct.
	for _, k := range []cas.BlobKey{{Type: cas.BlobTree, ID: root}, {Type: cas.BlobTree, ID: idOf(0xa0)},
		{Type: cas.BlobData, ID: idOf(1)}, {Type: cas.BlobData, ID: idOf(2)}} {
		if _, ok := seen[k]; !ok {
			t.Errorf("%v not in Seen", k)
		}
	}
	if len(seen) != 4 {
		t.Errorf("Seen holds %d keys, want 4", len(seen))
	}
	// A second walk sharing Seen reads nothing.
	if err := w.Walk(context.Background(), root); err != nil || m.reads != 2 {
		t.Fatalf("second walk: %v, %d reads", err, m.reads)
	}
}

func TestWalkerErrorsAndSkips(t *testing.T) {
	m, root := walkFixture()
	// Without Tree, an unreadable tree stops the walk with its error.
	err := (&Walker{Load: m}).Walk(context.Background(), root)
	if !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("walk over a missing tree: %v", err)
	}
	// SkipTree from Enter leaves the tree unread; from Entry, the subtree.
	m.reads = 0
	var paths []string
	w := Walker{Load: m,
		Enter: func(id cas.ID, dir string) error {
			if dir == "c" {
				return SkipTree
			}
			return nil
		},
		Entry: func(dir string, e *Entry) error {
			paths = append(paths, path.Join(dir, e.Name))
			if e.Name == "a" {
				return SkipTree
			}
			return nil
		},
	}
	if err := w.Walk(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "b/x", "c", "y"}; !slices.Equal(paths, want) || m.reads != 2 {
		t.Fatalf("paths %v in %d reads, want %v in 2", paths, m.reads, want)
	}
	// Another error from a callback stops the walk with it; so does ctx.
	stop := errors.New("stop")
	w = Walker{Load: m, Chunk: func(cas.ID, *Entry) error { return stop }}
	if err := w.Walk(context.Background(), root); !errors.Is(err, stop) {
		t.Fatalf("chunk error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (&Walker{Load: m}).Walk(ctx, root); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled walk: %v", err)
	}
}
