package capture

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"smp/cas"
	"smp/cas/manifest"
)

// The walk opens each directory by its name in its parent's descriptor (see
// openAt), checks that it is the directory the parent's listing stat'ed, and
// takes the directory's metadata from the descriptor. File workers open
// files by name in the same descriptor, so no path below the source root is
// ever resolved.
//
// Descriptors stay bounded at any depth: the walker holds only the
// directory it is in. Before it descends it lets go of the parent (a
// dirHandle that the parent's pending file jobs still share), and when it
// comes back it opens the child's ".." and checks that this is the parent
// it left; if the child was moved meanwhile, it opens the parent again from
// the source root, name by name, checking every directory on the way (see
// reopenDir). So the walker holds one descriptor, plus one per directory
// whose file jobs are queued or being worked on (at most the fileJobs
// buffer plus the workers).

// dirHandle is an open directory shared by the walker and the jobs of the
// files listed in it: the last one to let go closes it.
type dirHandle struct {
	fd   int
	refs atomic.Int32
}

func newDirHandle(fd int) *dirHandle {
	h := &dirHandle{fd: fd}
	h.refs.Store(1)
	return h
}

func (h *dirHandle) hold() { h.refs.Add(1) }

func (h *dirHandle) release() {
	if h.refs.Add(-1) == 0 {
		unix.Close(h.fd)
	}
}

// testHookOpen, when set, runs before a listed file or directory is opened
// (tests replace the name there, between the walk and the open).
var testHookOpen func(abs string)

// walkRoot opens the source root and walks the selection below it.
func (c *capturer) walkRoot(ctx context.Context, root *dirNode, sel *selection, prev *manifest.Tree) error {
	// The root is the one path followed as given: the administrator named it.
	fd, err := openDir(c.opts.Root)
	if err != nil && !sel.full && errors.Is(err, fs.ErrPermission) {
		// Only looked up in (PATH arguments below it): search permission is enough.
		fd, err = unix.Open(c.opts.Root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return fmt.Errorf("open source root: %w", err)
	}
	h := newDirHandle(fd)
	var st unix.Stat_t
	if err := fstat(fd, &st); err != nil {
		h.release()
		return fmt.Errorf("stat source root: %w", err)
	}
	root.dev, root.ino = st.Dev, st.Ino
	h, err = c.walkSelected(ctx, root, sel, prev, h)
	if h != nil {
		h.release()
	}
	return err
}

// walkSelected walks a selection node open as h: a full node is walked
// whole, a partial node only descends into its selected children. Like
// fillDir, it returns the node's directory still open, or nil.
func (c *capturer) walkSelected(ctx context.Context, node *dirNode, sel *selection, prev *manifest.Tree, h *dirHandle) (*dirHandle, error) {
	if sel.full {
		c.dirAhead.seed(node.rel)
		return c.walkDir(ctx, node, prev, h)
	}
	entries := make([]dirEntry, 0, len(sel.children))
	for name := range sel.children {
		entries = append(entries, dirEntry{name: name, typ: unix.DT_UNKNOWN})
	}
	slices.SortFunc(entries, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
	return c.fillDir(ctx, node, h, entries, prev, false, func(name string) *selection { return sel.children[name] })
}

func (c *capturer) abs(rel string) string { return filepath.Join(c.opts.Root, filepath.FromSlash(rel)) }

// walkDir reads the directory open as h and walks all of it.
func (c *capturer) walkDir(ctx context.Context, node *dirNode, prev *manifest.Tree, h *dirHandle) (*dirHandle, error) {
	entries, buf, err := readDir(h.fd, c.direntBuf)
	c.direntBuf = buf
	c.dirAhead.walkedOne()
	if err != nil {
		c.report(Problem{Path: c.abs(node.rel), Err: fmt.Errorf("read directory: %w", err)})
		if node.parent != nil {
			node.parent.drop[node.slot] = true
		}
		entries = nil
	}
	// Link first only where a link can work: with --hardlink auto and the
	// store on another filesystem, every file would be tried, refused and
	// stat'ed again.
	linkFirst := c.linkFirst && c.linker.sameFS(node.dev)
	return c.fillDir(ctx, node, h, entries, prev, linkFirst, nil)
}

// pendingDir is a subdirectory listed but not walked yet. Its tree in the
// parent record is loaded only when the walk reaches it: loading them all
// at once would hold every child's previous entries (a directory of 1000
// directories of 1000 files is a whole record's worth).
type pendingDir struct {
	node     *dirNode
	sel      *selection
	prev     cas.ID
	hasPrev  bool
	dev, ino uint64 // as the parent's listing stat'ed it
}

// fillDir stats names in the directory open as h, dispatches files to
// workers, recurses into subdirectories, and finally queues the directory
// for its tree blob. It returns the directory still open (the walker's
// reference to it), or nil when it could not be opened again after a
// subdirectory. With linkFirst, regular files are left to workers unstat'ed
// (see linker.linkByName).
func (c *capturer) fillDir(ctx context.Context, node *dirNode, h *dirHandle, names []dirEntry, prev *manifest.Tree, linkFirst bool, partial func(string) *selection) (*dirHandle, error) {
	prevEntries := entriesByName(prev)
	node.entries = make([]manifest.Entry, 0, len(names))
	var subdirs []pendingDir
	var jobs []*fileJob
	for _, de := range names {
		if err := ctx.Err(); err != nil {
			return h, err
		}
		name := de.name
		rel := path.Join(node.rel, name)
		childAbs := filepath.Join(c.abs(node.rel), name)
		if err := manifest.ValidName(name); err != nil {
			c.report(Problem{Path: childAbs, Err: err})
			continue
		}
		if de.typ == unix.DT_REG && linkFirst {
			// Linked first, stat'ed after by a worker: see linkByName.
			if !c.allowed(rel, false) {
				continue
			}
			node.entries = append(node.entries, manifest.Entry{Name: name, Type: manifest.TypeFile})
			c.progress.FilesSeen.Add(1)
			jobs = append(jobs, &fileJob{abs: childAbs, name: name, prev: prevEntries[name], unstatted: true})
			continue
		}
		var st unix.Stat_t
		if err := lstatAt(h.fd, name, &st); err != nil {
			if !errors.Is(err, fs.ErrNotExist) { // vanished since readdir: not an error
				c.report(Problem{Path: childAbs, Err: &fs.PathError{Op: "lstat", Path: childAbs, Err: err}})
			}
			continue
		}
		fileType := st.Mode & unix.S_IFMT
		isDir := fileType == unix.S_IFDIR
		var childSel *selection
		if partial != nil {
			childSel = partial(name)
		}
		// The rules decide selected paths too (a default profile such as
		// root, or a PATH argument): "- *" after the includes of a rules
		// file drops every profile those includes do not name.
		if !c.allowed(rel, isDir) {
			continue
		}
		if isDir && c.skip[devIno{st.Dev, st.Ino}] {
			continue
		}
		// A directory's metadata and xattrs are its descriptor's (see
		// openSubdir), a file's its worker's (see openFile).
		entry := c.metadataEntry(name, &st)
		switch fileType {
		case unix.S_IFDIR:
			entry.Type = manifest.TypeDir
		case unix.S_IFREG:
			entry.Type = manifest.TypeFile
		case unix.S_IFLNK:
			if err := c.readSymlink(h.fd, name, &entry); err != nil {
				c.report(Problem{Path: childAbs, Err: err})
				continue
			}
		default:
			c.report(Problem{Path: childAbs, Err: fmt.Errorf("skipped %s (only files, directories and symlinks are captured)", fileKind(st.Mode)), Warning: true})
			continue
		}
		node.entries = append(node.entries, entry)
		slot := len(node.entries) - 1
		switch entry.Type {
		case manifest.TypeDir:
			sd := pendingDir{node: &dirNode{rel: rel, parent: node, slot: slot}, sel: childSel, dev: st.Dev, ino: st.Ino}
			if p := prevEntries[name]; p != nil && p.Type == manifest.TypeDir {
				sd.prev, sd.hasPrev = p.Subtree, true
			}
			subdirs = append(subdirs, sd)
		case manifest.TypeSymlink:
			c.symlinks.Add(1)
		case manifest.TypeFile:
			c.progress.FilesSeen.Add(1)
			c.progress.BytesSeen.Add(uint64(st.Size))
			jobs = append(jobs, c.fileJobFor(node, slot, childAbs, name, &st, prevEntries[name]))
		}
	}
	if err := c.dispatch(ctx, node, h, jobs, len(subdirs)); err != nil {
		return h, err
	}
	h, err := c.walkSubdirs(ctx, node, h, subdirs)
	if err != nil {
		return h, err
	}
	return h, c.queueDir(ctx, node, prevEntries)
}

// entriesByName indexes the parent record's entries of a directory (none
// when prev is nil).
func entriesByName(prev *manifest.Tree) map[string]*manifest.Entry {
	m := map[string]*manifest.Entry{}
	if prev != nil {
		for i := range prev.Entries {
			m[prev.Entries[i].Name] = &prev.Entries[i]
		}
	}
	return m
}

// queueDir hands a directory whose entries and subdirectories are complete
// to the tree writer, after releasing the parent's subtrees the walk did
// not take from the tree read-ahead.
func (c *capturer) queueDir(ctx context.Context, node *dirNode, prevEntries map[string]*manifest.Entry) error {
	if c.trees != nil {
		for _, p := range prevEntries {
			if p.Type == manifest.TypeDir {
				c.trees.forget(p.Subtree) // taken if walked; gone or left out otherwise
			}
		}
	}
	node.queued = min(int64(len(node.entries)), queuedEntries)
	if err := c.dirEntries.Acquire(ctx, node.queued); err != nil {
		return err
	}
	select {
	case c.dirs <- node:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dispatch sends a directory's file jobs to the workers, each holding the
// directory open as h, once node.entries is complete.
func (c *capturer) dispatch(ctx context.Context, node *dirNode, h *dirHandle, jobs []*fileJob, subdirs int) error {
	// node.entries no longer grows: pointers into it are stable from here.
	node.drop = make([]bool, len(node.entries))
	node.pending.Add(len(jobs) + subdirs)
	ji := 0
	for i := range node.entries {
		if node.entries[i].Type == manifest.TypeFile {
			jobs[ji].entry = &node.entries[i]
			jobs[ji].dir = node
			jobs[ji].entry.Chunks = nil
			jobs[ji].slot = i
			ji++
		}
	}
	for _, job := range jobs {
		if !job.unstatted && job.linkOf == nil && !statUnchanged(job) {
			c.dataAhead.hint(h, job, int64(job.entry.Size))
		}
		h.hold() // the job opens its file in this directory
		job.parent = h
		select {
		case c.fileJobs <- job:
		case <-ctx.Done():
			job.ahead.discard()
			h.release()
			return ctx.Err()
		}
	}
	return nil
}

// fileJobFor is the job of the regular file at slot, as st found it, and
// joins it to the other names of its inode.
func (c *capturer) fileJobFor(node *dirNode, slot int, abs, name string, st *unix.Stat_t, prev *manifest.Entry) *fileJob {
	job := &fileJob{abs: abs, name: name, dir: node, dev: st.Dev, prev: prev}
	if st.Nlink > 1 {
		key := devIno{st.Dev, st.Ino}
		node.entries[slot].HardLink = strconv.FormatUint(st.Dev, 10) + ":" + strconv.FormatUint(st.Ino, 10)
		if first := c.hardlinks[key]; first != nil {
			job.linkOf = first
			if first.left--; first.left == 0 {
				delete(c.hardlinks, key)
			}
		} else {
			job.first = &hardLink{done: make(chan struct{}), left: st.Nlink - 1}
			c.hardlinks[key] = job.first
		}
	}
	return job
}

// walkSubdirs walks node's subdirectories, each opened in h (the node's
// directory, which it returns still open, or nil).
func (c *capturer) walkSubdirs(ctx context.Context, node *dirNode, h *dirHandle, subdirs []pendingDir) (*dirHandle, error) {
	var lost error // the node's directory cannot be opened again
	for i := range subdirs {
		sd := &subdirs[i]
		if h == nil && lost == nil {
			h, lost = c.reopenDir(node)
		}
		err := lost
		fd := -1
		if err == nil {
			fd, err = c.openSubdir(h, node, sd)
		}
		if err != nil {
			if err := c.skipDir(ctx, sd.node, err); err != nil {
				return h, err
			}
			continue
		}
		// Let go of this directory while in the subdirectory (its file
		// jobs may still hold it): descriptors must not pile up with depth.
		h.release()
		h = nil
		var prevSub *manifest.Tree
		if sd.hasPrev {
			prevSub, _ = c.loadPrev(sd.prev) // unreadable: its files are read again
		}
		child := newDirHandle(fd)
		if sd.sel != nil {
			child, err = c.walkSelected(ctx, sd.node, sd.sel, prevSub, child)
		} else {
			child, err = c.walkDir(ctx, sd.node, prevSub, child)
		}
		if child != nil {
			if err == nil {
				h = c.backUp(child, node)
			}
			child.release()
		}
		if err != nil {
			return h, err
		}
	}
	return h, nil
}

// loadPrev loads a subdirectory's tree in the parent record.
func (c *capturer) loadPrev(id cas.ID) (*manifest.Tree, error) {
	if c.trees != nil {
		return c.trees.take(id)
	}
	return c.store.LoadTree(id)
}

// openSubdir opens the subdirectory sd in h, checks that it is the
// directory the listing stat'ed, and fills its entry from the descriptor.
func (c *capturer) openSubdir(h *dirHandle, node *dirNode, sd *pendingDir) (int, error) {
	name, abs := path.Base(sd.node.rel), c.abs(sd.node.rel)
	if testHookOpen != nil {
		testHookOpen(abs)
	}
	fd, err := openDirAt(h.fd, name)
	pathOnly := false
	if err == unix.EACCES && sd.sel != nil && !sd.sel.full {
		// Only looked up in: search permission is enough (no xattrs then).
		fd, err = openAt(h.fd, name, unix.O_PATH|unix.O_DIRECTORY)
		pathOnly = true
	}
	if err != nil {
		return -1, openErr("open", abs, err)
	}
	var st unix.Stat_t
	if err := fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &fs.PathError{Op: "fstat", Path: abs, Err: err}
	}
	if st.Dev != sd.dev || st.Ino != sd.ino {
		unix.Close(fd)
		return -1, changedErr("another directory now")
	}
	e := &node.entries[sd.node.slot]
	*e = c.metadataEntry(e.Name, &st)
	e.Type = manifest.TypeDir
	if !pathOnly {
		e.Xattrs = fdXattrs(fd)
	}
	sd.node.dev, sd.node.ino = st.Dev, st.Ino
	return fd, nil
}

// skipDir reports a subdirectory that cannot be walked and leaves it out
// (its empty tree still goes through the finisher, which counts it done).
func (c *capturer) skipDir(ctx context.Context, node *dirNode, err error) error {
	if !errors.Is(err, ErrChanged) {
		err = fmt.Errorf("read directory: %w", err)
	}
	c.report(Problem{Path: c.abs(node.rel), Err: err})
	node.parent.drop[node.slot] = true
	select {
	case c.dirs <- node:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// backUp opens node's directory again from its child, open as child: the
// child's "..", if that is still node's directory.
func (c *capturer) backUp(child *dirHandle, node *dirNode) *dirHandle {
	fd, err := openParent(child.fd)
	if err != nil {
		return nil
	}
	var st unix.Stat_t
	if fstat(fd, &st) != nil || st.Dev != node.dev || st.Ino != node.ino {
		unix.Close(fd) // the child was moved: reopenDir finds node again
		return nil
	}
	return newDirHandle(fd)
}

// reopenDir opens node's directory again from the source root, name by
// name, each the directory the walk found there.
func (c *capturer) reopenDir(node *dirNode) (*dirHandle, error) {
	var chain []*dirNode
	for n := node; n != nil; n = n.parent {
		chain = append(chain, n)
	}
	fd, err := unix.Open(c.opts.Root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open source root again: %w", err)
	}
	for i := len(chain) - 1; ; i-- {
		var st unix.Stat_t
		if err := fstat(fd, &st); err != nil || st.Dev != chain[i].dev || st.Ino != chain[i].ino {
			unix.Close(fd)
			return nil, changedErr("%s was moved while being captured", c.abs(chain[i].rel))
		}
		if i == 0 {
			return newDirHandle(fd), nil
		}
		next, err := openAt(fd, path.Base(chain[i-1].rel), unix.O_PATH|unix.O_DIRECTORY)
		unix.Close(fd)
		if errors.Is(err, unix.ENOENT) {
			return nil, changedErr("%s was moved while being captured", c.abs(chain[i-1].rel))
		}
		if err != nil {
			return nil, openErr("open", c.abs(chain[i-1].rel), err)
		}
		fd = next
	}
}

// readSymlink fills a symlink's entry from the link itself, opened by name
// (O_PATH): its stat and its target belong to one inode.
func (c *capturer) readSymlink(dir int, name string, e *manifest.Entry) error {
	fd, err := openAt(dir, name, unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return changedErr("no longer a symlink")
	}
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(fd, "", buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("readlink: %w", err)
		}
		if n < len(buf) {
			*e = c.metadataEntry(name, &st)
			e.Type, e.Target = manifest.TypeSymlink, string(buf[:n])
			return nil
		}
		buf = make([]byte, 2*len(buf))
	}
}
