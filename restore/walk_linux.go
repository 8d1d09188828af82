package restore

import (
	"context"
	"fmt"
	"path"

	"smp/cas/manifest"
)

// walk visits a tree depth first, creating directories and symlinks itself
// and handing files to the workers; a subdirectory goes to an extra walker
// when one is free.
func (r *restorer) walk(ctx context.Context, tree *manifest.Tree, storedDir string, dir *dirHandle) error {
	r.prefetch(tree, storedDir)
	ahead := r.newLoadAhead(tree, storedDir)
	// Loads still running when the walk stops early must not outlive it
	// (they use the store).
	defer ahead.wait()
	var files batch
	defer files.drop() // what an early return left unqueued
	for i, e := range tree.Entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := manifest.ValidName(e.Name); err != nil {
			r.fail(path.Join(storedDir, e.Name), err) // DecodeTree already rejects this; belt and braces
			continue
		}
		stored := path.Join(storedDir, e.Name)
		isDir := e.Type == manifest.TypeDir
		// Excludes win over includes, also when they name an ancestor.
		if r.opts.Filter.Excluded(stored, isDir) || !r.opts.Filter.Selected(stored, isDir) {
			continue
		}
		rel, err := r.mapPath(stored)
		if err != nil {
			r.fail(stored, err)
			continue
		}
		v := r.admit(stored, rel, &e)
		if v == admitDrop && (!isDir || !ahead.has(i)) {
			continue
		}
		switch e.Type {
		case manifest.TypeDir:
			// Files collected so far need not wait for the subtree.
			if err := r.flush(ctx, &files); err != nil {
				return err
			}
			err = r.walkDir(ctx, dir, ahead, i, entryAt{e: e, stored: stored, rel: rel}, v)
		case manifest.TypeSymlink:
			r.placeSymlink(dir, rel, e)
		case manifest.TypeFile:
			err = r.queueFile(ctx, dir, entryAt{e: e, stored: stored, rel: rel}, &files)
		}
		if err != nil {
			return err
		}
	}
	return r.flush(ctx, &files)
}

// entryAt is a tree entry with its stored path and its target path.
type entryAt struct {
	e           manifest.Entry
	stored, rel string
}

// prefetch tells a store that can fetch ahead (a remote SMP) the chunks of
// the files of tree that the walk will restore.
func (r *restorer) prefetch(tree *manifest.Tree, storedDir string) {
	pf, ok := r.store.(Prefetcher)
	if !ok {
		return
	}
	var chunks []manifest.Chunk
	for _, e := range tree.Entries {
		stored := path.Join(storedDir, e.Name)
		if e.Type == manifest.TypeFile && e.Link == nil && !r.opts.Filter.Excluded(stored, false) && r.opts.Filter.Selected(stored, false) && r.mayWriteFile(stored) {
			chunks = append(chunks, e.Chunks...)
		}
	}
	if len(chunks) > 0 {
		pf.Prefetch(chunks)
	}
}

// loadAhead loads the subtrees a walk will descend into, at most treeAhead
// at a time, in the order the walk reaches them.
type loadAhead struct {
	r     *restorer
	tree  *manifest.Tree
	dirs  []int // entries of tree to load, in order
	next  int   // dirs[next] is the next to start
	loads map[int]*treeLoad
}

func (r *restorer) newLoadAhead(tree *manifest.Tree, storedDir string) *loadAhead {
	a := &loadAhead{r: r, tree: tree, loads: map[int]*treeLoad{}}
	for i, e := range tree.Entries {
		if e.Type != manifest.TypeDir || manifest.ValidName(e.Name) != nil {
			continue
		}
		if stored := path.Join(storedDir, e.Name); !r.opts.Filter.Excluded(stored, true) && r.opts.Filter.Selected(stored, true) {
			a.dirs = append(a.dirs, i)
		}
	}
	a.start()
	return a
}

// start begins loads until treeAhead are outstanding.
func (a *loadAhead) start() {
	for a.next < len(a.dirs) && len(a.loads) < treeAhead {
		i := a.dirs[a.next]
		a.loads[i] = a.r.loadTreeAhead(a.tree.Entries[i].Subtree)
		a.next++
	}
}

// has reports whether entry i's subtree is being loaded ahead.
func (a *loadAhead) has(i int) bool { return a.loads[i] != nil }

// take returns entry i's subtree: the load ahead's result, or a load now
// when none was started.
func (a *loadAhead) take(i int) (*manifest.Tree, error) {
	l := a.loads[i]
	if l == nil {
		return a.r.store.LoadTree(a.tree.Entries[i].Subtree)
	}
	<-l.done
	delete(a.loads, i)
	a.start()
	return l.tree, l.err
}

// wait waits for the loads still running.
func (a *loadAhead) wait() {
	for _, l := range a.loads {
		<-l.done
	}
}

// walkDir creates (or opens) the directory of entry i and walks its
// subtree, on an extra walker when one is free. Only a failure that ends
// the restore is returned; others are reported.
func (r *restorer) walkDir(ctx context.Context, dir *dirHandle, ahead *loadAhead, i int, at entryAt, v verdict) error {
	sub, err := ahead.take(i)
	if v == admitDrop {
		return nil // its subtree was loaded ahead of the walk
	}
	if err != nil {
		r.fail(at.stored+"/", fmt.Errorf("directory contents lost: %w", err))
		return nil
	}
	if v == admitThrough {
		return r.walkThrough(ctx, sub, at.stored)
	}
	parent, name, err := r.place(dir, at.rel)
	if err != nil {
		r.fail(at.rel, err)
		return nil
	}
	h, err := r.openChild(parent, name, at.rel, at.e)
	parent.release()
	if err != nil {
		r.fail(at.rel, err)
		return nil
	}
	select {
	case r.walkers <- struct{}{}:
		r.walkG.Go(func() error {
			defer func() { <-r.walkers }()
			defer h.release()
			return r.walk(r.walkCtx, sub, at.stored, h)
		})
		return nil
	default: // every extra walker is busy: walk it here
		defer h.release()
		return r.walk(ctx, sub, at.stored, h)
	}
}

// placeSymlink creates the symlink e at target path rel; failures are
// reported.
func (r *restorer) placeSymlink(dir *dirHandle, rel string, e manifest.Entry) {
	h, name, err := r.place(dir, rel)
	if err != nil {
		r.fail(rel, err)
		return
	}
	defer h.release()
	if err := h.pin(); err != nil {
		r.fail(rel, err)
		return
	}
	err = r.symlink(h, name, rel, e)
	h.unpin()
	if err != nil {
		r.fail(rel, err)
		return
	}
	r.symlinks.Add(1)
}

// queueFile adds the file entry to files, queueing the batch when it is
// full. Only a failure that ends the restore is returned; others are
// reported.
func (r *restorer) queueFile(ctx context.Context, dir *dirHandle, at entryAt, files *batch) error {
	h, name, err := r.place(dir, at.rel)
	if err != nil {
		r.fail(at.rel, err)
		return nil
	}
	job := &fileJob{dir: h, name: name, rel: at.rel, stored: at.stored, entry: at.e, done: make(chan struct{})}
	if at.e.HardLink == "" {
		if files.add(job) {
			return r.flush(ctx, files)
		}
		return nil
	}
	// A hard-linked name goes alone, after the batch before it. The first
	// name of a hard-linked file is queued before any name waiting for it
	// (the lock spans registration and queueing across walkers): workers
	// take batches in order, so the one restoring the first is never
	// itself waiting, and no name waits for a first still held in a
	// walker's batch.
	if err := r.flush(ctx, files); err != nil {
		h.release()
		return err
	}
	r.linkMu.Lock()
	defer r.linkMu.Unlock()
	if first := r.hardlinks[at.e.HardLink]; first != nil {
		job.linkOf = first
	} else {
		// Later links need first's directory open; Run releases it once
		// every file is done.
		h.acquire()
		r.hardlinks[at.e.HardLink] = job
	}
	return r.queue(ctx, []*fileJob{job})
}
