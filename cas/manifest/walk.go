package manifest

import (
	"context"
	"errors"
	"path"

	"smp/cas"
)

// TreeLoader reads a tree by ID: a local store, or an SMP through its
// client.
type TreeLoader interface {
	LoadTree(id cas.ID) (*Tree, error)
}

// SkipTree, returned by a Walker callback, leaves a tree unread (Enter),
// its entries unvisited (Tree) or a directory's subtree unwalked (Entry).
// The walk goes on with the next entry.
var SkipTree = errors.New("skip this tree")

// Walker is the one walk of a record's trees: every part of smp that
// follows a record's references (gc marking, usage, verify, index rebuild,
// listing, the server's commit check and fetch reach) goes through it, so
// each blob reference is read with the same type (BlobTree for a
// directory's subtree, BlobData for a file's chunks) everywhere.
//
// The walk is depth first, entries in tree order, a directory's entry
// before its contents, a file's entry before its chunks. Memory is one
// decoded tree per level of depth plus Seen; trees are read as the walk
// reaches them, never all at once.
type Walker struct {
	Load TreeLoader
	// Seen, when not nil, makes the walk visit each tree and chunk once:
	// the (type, ID) key of every tree entered and every chunk visited is
	// added to it, and a key already in it is passed over, with all it
	// references when it is a tree. Shared across walks, a subtree common
	// to several records is walked once in all. Nil walks every path (a
	// listing, or naming every path a damaged blob breaks).
	Seen map[cas.BlobKey]struct{}
	// Enter is called before a tree is read, with its directory's path
	// ("" for the root): the place to check a tree may be read at all.
	// SkipTree leaves it unread; another error stops the walk.
	Enter func(id cas.ID, dir string) error
	// Tree is handed each tree once read, or the error reading it (t nil).
	// Returning nil after an error goes on without that tree; SkipTree
	// leaves a tree's entries unvisited. Without Tree, a tree that cannot
	// be read stops the walk with its error: what it references is
	// unknown.
	Tree func(id cas.ID, dir string, t *Tree, err error) error
	// Entry is called for each entry of a tree, dir being the tree's path.
	// SkipTree for a directory leaves its subtree unwalked.
	Entry func(dir string, e *Entry) error
	// Chunk is called for each chunk of a file entry (each distinct one
	// once with Seen).
	Chunk func(id cas.ID, e *Entry) error
}

// Walk walks the trees below root. A cancelled ctx stops it before the
// next tree is read.
func (w *Walker) Walk(ctx context.Context, root cas.ID) error {
	return w.walk(ctx, root, "")
}

func (w *Walker) walk(ctx context.Context, id cas.ID, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.Seen != nil {
		k := cas.BlobKey{Type: cas.BlobTree, ID: id}
		if _, ok := w.Seen[k]; ok {
			return nil
		}
		w.Seen[k] = struct{}{}
	}
	if w.Enter != nil {
		if err := w.Enter(id, dir); err != nil {
			return notSkip(err)
		}
	}
	t, err := w.Load.LoadTree(id)
	if w.Tree != nil {
		err = w.Tree(id, dir, t, err)
	}
	if err != nil || t == nil {
		return notSkip(err)
	}
	for i := range t.Entries {
		if err := w.entry(ctx, dir, &t.Entries[i]); err != nil {
			return err
		}
	}
	return nil
}

func (w *Walker) entry(ctx context.Context, dir string, e *Entry) error {
	descend := e.Type == TypeDir
	if w.Entry != nil {
		switch err := w.Entry(dir, e); {
		case errors.Is(err, SkipTree):
			descend = false
		case err != nil:
			return err
		}
	}
	if descend {
		if err := w.walk(ctx, e.Subtree, path.Join(dir, e.Name)); err != nil {
			return err
		}
	}
	if w.Chunk == nil && w.Seen == nil {
		return nil
	}
	// Decoding refuses chunks on anything but a file, and a subtree on
	// anything but a directory.
	for _, ch := range e.Chunks {
		if w.Seen != nil {
			k := cas.BlobKey{Type: cas.BlobData, ID: ch.ID}
			if _, ok := w.Seen[k]; ok {
				continue
			}
			w.Seen[k] = struct{}{}
		}
		if w.Chunk != nil {
			if err := w.Chunk(ch.ID, e); err != nil {
				return err
			}
		}
	}
	return nil
}

func notSkip(err error) error {
	if errors.Is(err, SkipTree) {
		return nil
	}
	return err
}
