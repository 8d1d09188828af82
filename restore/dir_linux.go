package restore

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"smp/cas/manifest"
)

// Directories below the target are only ever reached one name at a time
// relative to an open parent directory, with O_NOFOLLOW|O_DIRECTORY (or
// openat2 with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS): no symlink below the
// target is followed, whether it lies on a path from the record, on a --map
// destination, or was planted while the restore runs. A symlink where a
// directory is needed is an error naming it, or is replaced by a directory
// under --overwrite always.

// dirHandle is a target directory shared by the walker and the file jobs
// in it. Files are created with *at(2) calls relative to its descriptor,
// on single validated names (no '/'), with O_NOFOLLOW/O_EXCL and rename,
// which never follow a symlink in the final component: so nothing escapes
// the directory, and each operation is one syscall. Going through os.Root
// for every file re-opened the parent directory on every call and
// dominated restore time on trees of small files (several openat calls
// per file).
//
// The descriptor is valid only while pinned (pin/unpin): r.fds closes the
// least recently used unpinned ones, so a deep tree does not hold one
// descriptor per level (fdCache).
//
// A directory's own metadata is applied (or, for one that existed, its
// times put back) when its last reference is released (finishDir): after
// the walker listed it and every file in it was restored, so writing its
// entries can no longer move its mtime, and a read-only mode cannot block
// them. Each directory holds a reference on its parent until
// then, so parents finish after their children.
type dirHandle struct {
	rel    string // target-relative; "" for the target itself
	r      *restorer
	parent *dirHandle // nil for the target; held until this one finishes
	name   string     // path relative to parent: one name unless --map placed it
	entry  *manifest.Entry
	refs   atomic.Int32
	// fresh: this restore made the directory, so it held nothing before:
	// its names need no check for something in the way (one stat per file
	// saved; another process adding a file to it meanwhile may see that
	// file replaced).
	fresh    bool
	dev, ino uint64 // identity, checked when the descriptor is reopened
	state    *dirState

	// Guarded by r.fds.mu; fd and f change only while unpinned.
	f          *os.File // nil while closed
	fd         int      // -1 while closed
	pins       int
	prev, next *dirHandle // in r.fds' list of unpinned open handles
	listed     bool
}

// openChild makes sure name in parent is a real directory (never a symlink
// to one) and opens it relative to the parent's descriptor.
func (r *restorer) openChild(parent *dirHandle, name, rel string, e manifest.Entry) (*dirHandle, error) {
	if err := parent.pin(); err != nil {
		return nil, err
	}
	defer parent.unpin()
	made, err := r.ensureDir(parent.fd, name, parent.fresh, "the record has a directory")
	if err != nil {
		return nil, err
	}
	fd, err := openDirAt(parent.fd, name)
	if err != nil {
		return nil, err
	}
	return r.newHandle(fd, parent, name, rel, &e, made)
}

func describeMode(m uint32) string {
	switch m & unix.S_IFMT {
	case unix.S_IFLNK:
		return "a symlink"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFREG:
		return "a file"
	}
	return "a special file"
}

func (h *dirHandle) acquire() { h.refs.Add(1) }

func (h *dirHandle) release() {
	if h.refs.Add(-1) != 0 {
		return
	}
	h.r.finishDir(h)
	h.r.fds.closeFD(h)
	if h.parent != nil {
		h.parent.release()
	}
}

const dirOpenFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// noOpenat2 is set once openat2(2) turned out to be missing (before Linux
// 5.6); the component-by-component walk then does the same job.
var noOpenat2 atomic.Bool

// openDirBeneath opens directory rel (one or more names) below dirfd
// without following any symlink and without leaving dirfd's tree.
func openDirBeneath(dirfd int, rel string) (int, error) {
	if !noOpenat2.Load() {
		fd, err := unix.Openat2(dirfd, rel, &unix.OpenHow{
			Flags:   dirOpenFlags,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.ENOSYS):
			noOpenat2.Store(true)
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.ENAMETOOLONG):
			// A seccomp filter refusing openat2, or a path longer than
			// PATH_MAX (a deep tree): one name at a time works for both.
		default:
			return -1, err
		}
	}
	cur := dirfd
	for _, name := range strings.Split(rel, "/") {
		if name == "" || name == "." || name == ".." {
			if cur != dirfd {
				unix.Close(cur)
			}
			return -1, fmt.Errorf("%q is not a path below the target: %w", rel, unix.EINVAL)
		}
		fd, err := unix.Openat(cur, name, dirOpenFlags, 0)
		if cur != dirfd {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		cur = fd
	}
	return cur, nil
}

// openDirAt opens the single name in dirfd as a directory, never through a
// symlink (swapped in after the caller looked: ELOOP or ENOTDIR).
func openDirAt(dirfd int, name string) (int, error) {
	fd, err := unix.Openat(dirfd, name, dirOpenFlags, 0)
	switch {
	case err == nil:
		return fd, nil
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		return -1, fmt.Errorf("open directory: replaced by a symlink or file while restoring; not followed: %w", err)
	}
	return -1, fmt.Errorf("open directory: %w", err)
}

// ensureDir makes sure name in dirfd is a real directory (never a symlink
// to one): it creates it when missing (made reports that), keeps an
// existing directory, and replaces anything else only under --overwrite
// always. fresh says dirfd was made by this restore, so name cannot exist
// yet (no stat needed). what names the need in the error ("the record has
// a directory").
func (r *restorer) ensureDir(dirfd int, name string, fresh bool, what string) (made bool, err error) {
	var st unix.Stat_t
	err = error(unix.ENOENT)
	if !fresh {
		err = unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	}
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return false, nil
	case err == nil && r.opts.Overwrite == OverwriteAlways:
		if err := unix.Unlinkat(dirfd, name, 0); err != nil {
			return false, fmt.Errorf("replace %s with a directory: %w", describeMode(st.Mode), err)
		}
	case err == nil:
		return false, fmt.Errorf("exists as %s where %s; not followed or replaced (use --overwrite always)", describeMode(st.Mode), what)
	case !errors.Is(err, unix.ENOENT):
		return false, err
	}
	err = unix.Mkdirat(dirfd, name, 0o700)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return false, fmt.Errorf("create directory: %w", err)
	}
	return err == nil, nil
}

// openPath returns a handle on target-relative directory rel, creating
// missing directories (0700: a --map destination's parents have no entry
// in the record), never following a symlink. The caller releases it.
func (r *restorer) openPath(rel string) (*dirHandle, error) {
	fd, err := openDirBeneath(r.top.fd, rel) // the target stays pinned
	made := false
	if err != nil {
		if fd, made, err = r.makePath(rel); err != nil {
			return nil, err
		}
	}
	return r.newHandle(fd, r.top, rel, rel, nil, made)
}

// makePath walks rel one name at a time from the target, making each
// directory with ensureDir; an error names the path where it stopped.
func (r *restorer) makePath(rel string) (fd int, made bool, err error) {
	cur := r.top.fd
	parts := strings.Split(rel, "/")
	for i, name := range parts {
		sub := strings.Join(parts[:i+1], "/")
		if manifest.ValidName(name) != nil {
			err = fmt.Errorf("%s: not a valid name", sub)
		} else if made, err = r.ensureDir(cur, name, false, "a directory is needed"); err != nil {
			err = fmt.Errorf("%s: %w", sub, err)
		} else if fd, err = openDirAt(cur, name); err != nil {
			err = fmt.Errorf("%s: %w", sub, err)
		}
		if cur != r.top.fd {
			unix.Close(cur)
		}
		if err != nil {
			return -1, false, err
		}
		cur = fd
	}
	return cur, made, nil
}

// checkMapTargets refuses, before anything is written, a --map destination
// that runs through a symlink (or a non-directory) already in the target:
// restore would have to follow it. --overwrite always replaces such a
// symlink with a directory instead.
func (r *restorer) checkMapTargets() error {
	if r.opts.Overwrite == OverwriteAlways {
		return nil
	}
	for _, m := range r.opts.Maps {
		if m.To == "" {
			continue
		}
		if err := checkNoSymlink(r.top.fd, m.To); err != nil {
			return fmt.Errorf("--map %s=%s: %w", m.From, m.To, err)
		}
	}
	return nil
}

// checkNoSymlink reports the first component of rel below dirfd that is a
// symlink, or a non-directory before the last component.
func checkNoSymlink(dirfd int, rel string) error {
	cur := dirfd
	defer func() {
		if cur != dirfd {
			unix.Close(cur)
		}
	}()
	parts := strings.Split(rel, "/")
	for i, name := range parts {
		sub := strings.Join(parts[:i+1], "/")
		var st unix.Stat_t
		err := unix.Fstatat(cur, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		switch {
		case errors.Is(err, unix.ENOENT):
			return nil // created by the restore
		case err != nil:
			return fmt.Errorf("%s: %w", sub, err)
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			return fmt.Errorf("%s is a symlink; restore never follows symlinks below the root (remove it, or pass --overwrite always to replace it with a directory)", sub)
		case i == len(parts)-1:
			return nil
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			return fmt.Errorf("%s is %s, not a directory (remove it, or pass --overwrite always to replace it)", sub, describeMode(st.Mode))
		}
		fd, err := openDirAt(cur, name)
		if err != nil {
			return fmt.Errorf("%s: %w", sub, err)
		}
		if cur != dirfd {
			unix.Close(cur)
		}
		cur = fd
	}
	return nil
}

// newHandle wraps fd, just opened as name below parent, in a handle
// holding one reference (the caller's). The directory's partial files of
// an earlier, killed restore are removed the first time this restore
// reaches the directory.
func (r *restorer) newHandle(fd int, parent *dirHandle, name, rel string, e *manifest.Entry, made bool) (*dirHandle, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat directory: %w", err)
	}
	h := &dirHandle{rel: rel, f: os.NewFile(uintptr(fd), rel), fd: fd, r: r, parent: parent, name: name,
		entry: e, fresh: made, dev: uint64(st.Dev), ino: st.Ino}
	h.refs.Store(1)
	if parent != nil {
		parent.acquire()
	}
	if first := r.register(h, &st, made); first && !made {
		r.removePartials(h)
	}
	r.fds.idle(h)
	return h, nil
}

// dirState is what this restore knows of one target directory (by device
// and inode) while any handle on it is open: a --map can reach one
// directory through several handles, and only the last one to finish
// applies its metadata.
type dirState struct {
	handles int
	made    bool            // this restore created it
	entry   *manifest.Entry // the record's entry for it, if any
	rel     string          // entry's target path
	times   []unix.Timespec // atime and mtime when this restore first opened it
}

type dirKey struct{ dev, ino uint64 }

// register records h's directory; first reports that no other handle on
// it is open (so no file of this restore can be in it yet).
func (r *restorer) register(h *dirHandle, st *unix.Stat_t, made bool) (first bool) {
	r.dirMu.Lock()
	defer r.dirMu.Unlock()
	k := dirKey{h.dev, h.ino}
	s := r.dirStates[k]
	if s == nil {
		s = &dirState{times: []unix.Timespec{st.Atim, st.Mtim}}
		r.dirStates[k] = s
		first = true
	}
	s.handles++
	s.made = s.made || made
	if s.entry == nil && h.entry != nil {
		s.entry, s.rel = h.entry, h.rel
	}
	h.state = s
	return first
}

// finishDir runs when h's last reference is released. The last handle on
// a directory applies the record's metadata to a directory this restore
// made, or to any directory under --overwrite always. A directory that
// existed before is the target system's: its mode, owner, xattrs and
// times stay as they were (the times are put back, since adding entries
// moved them) and it is counted as left alone.
func (r *restorer) finishDir(h *dirHandle) {
	s := h.state
	r.dirMu.Lock()
	s.handles--
	last := s.handles == 0
	if last {
		delete(r.dirStates, dirKey{h.dev, h.ino})
	}
	r.dirMu.Unlock()
	if !last {
		return
	}
	apply := s.entry != nil && (s.made || r.opts.Overwrite == OverwriteAlways)
	if !apply && s.made {
		return // a --map destination's parent, made with no entry: nothing to apply
	}
	if err := h.pin(); err != nil {
		if s.entry != nil {
			r.fail(s.rel, err)
		}
		return
	}
	defer h.unpin()
	if !apply {
		// Best effort: the directory's contents were restored either way.
		_ = futimens(h.fd, s.times)
		if s.entry != nil {
			r.dirsKept.Add(1)
		}
		return
	}
	err := r.setMeta(*s.entry, h.fd)
	if err == nil {
		if err = futimens(h.fd, timespecs(s.entry.MTimeNs)); err != nil {
			err = fmt.Errorf("set mtime: %w", err)
		}
	}
	if err != nil {
		r.fail(s.rel, err)
	}
	r.dirCount.Add(1)
}

// futimens sets the atime and mtime of the open file fd (utimensat with a
// NULL path), to the nanosecond.
func futimens(fd int, ts []unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// fdCache bounds the directory descriptors a restore holds, whatever the
// depth of the tree: a handle's descriptor is needed only while one of its
// users has it pinned (creating an entry in it, restoring a file into it,
// finishing it). Unpinned descriptors stay open, most recently used first,
// up to max; older ones are closed and reopened on the next pin, relative
// to the parent's (itself reopened when needed) and checked to be the same
// directory.
type fdCache struct {
	mu         sync.Mutex
	head, tail *dirHandle // unpinned open handles, most recent first
	n, max     int
}

// maxIdleDirs bounds the unpinned directory descriptors held; Run lowers
// it under a low RLIMIT_NOFILE.
var maxIdleDirs = 256

func idleLimit() int {
	n := maxIdleDirs
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur/8 < uint64(n) {
		n = int(lim.Cur / 8)
	}
	return max(n, 4)
}

func (c *fdCache) unlink(h *dirHandle) {
	if h.prev != nil {
		h.prev.next = h.next
	} else {
		c.head = h.next
	}
	if h.next != nil {
		h.next.prev = h.prev
	} else {
		c.tail = h.prev
	}
	h.prev, h.next, h.listed = nil, nil, false
	c.n--
}

// idle puts h, open and unpinned, first in the list, closing the least
// recently used descriptors beyond max.
func (c *fdCache) idle(h *dirHandle) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.push(h)
}

func (c *fdCache) push(h *dirHandle) {
	h.next, h.listed = c.head, true
	if c.head != nil {
		c.head.prev = h
	} else {
		c.tail = h
	}
	c.head = h
	c.n++
	for c.n > c.max {
		old := c.tail
		c.unlink(old)
		old.f.Close()
		old.f, old.fd = nil, -1
	}
}

// maxStepPath bounds the path opened in one step when reopening: a long
// way down from the nearest open ancestor is walked in a few steps, each
// one openat2 well below PATH_MAX.
const maxStepPath = 1024

// pin makes h.fd and h.f usable until the matching unpin. A closed
// descriptor is reopened from the nearest ancestor still open, and each
// directory opened on the way is checked to be the very directory its
// handle was (one moved into its place while the restore ran is not
// written into).
func (h *dirHandle) pin() error {
	c := &h.r.fds
	c.mu.Lock()
	var down []*dirHandle // closed handles from h up to the open ancestor a
	a := h
	for a.fd < 0 {
		if a.parent == nil {
			c.mu.Unlock()
			return errors.New("restore target closed")
		}
		down = append(down, a)
		a = a.parent
	}
	c.pinLocked(a)
	c.mu.Unlock()
	for len(down) > 0 {
		i := len(down) - 1 // a's child
		n := len(down[i].name)
		for i > 0 && n+1+len(down[i-1].name) <= maxStepPath {
			i--
			n += 1 + len(down[i].name)
		}
		names := make([]string, 0, len(down)-i)
		for j := len(down) - 1; j >= i; j-- {
			names = append(names, down[j].name)
		}
		next := down[i]
		fd, err := openDirBeneath(a.fd, strings.Join(names, "/"))
		a.unpin()
		if err != nil {
			return fmt.Errorf("reopen directory: %w", err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return fmt.Errorf("reopen directory: %w", err)
		}
		if uint64(st.Dev) != next.dev || st.Ino != next.ino {
			unix.Close(fd)
			return errors.New("directory was replaced while restoring; not written into")
		}
		c.mu.Lock()
		if next.fd >= 0 { // another user reopened it meanwhile
			unix.Close(fd)
		} else {
			next.fd, next.f = fd, os.NewFile(uintptr(fd), next.rel)
		}
		c.pinLocked(next)
		c.mu.Unlock()
		a, down = next, down[:i]
	}
	return nil
}

func (c *fdCache) pinLocked(h *dirHandle) {
	if h.listed {
		c.unlink(h)
	}
	h.pins++
}

func (h *dirHandle) unpin() {
	c := &h.r.fds
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.pins--; h.pins == 0 && h.fd >= 0 {
		c.push(h)
	}
}

// closeFD closes h's descriptor for good (its last reference is gone).
func (c *fdCache) closeFD(h *dirHandle) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.listed {
		c.unlink(h)
	}
	if h.f != nil {
		h.f.Close()
		h.f, h.fd = nil, -1
	}
}
