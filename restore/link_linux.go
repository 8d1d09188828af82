package restore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"smp/cas"
	"smp/cas/manifest"
)

// restoreLinked restores a file held by a hard link or clone in the store.
// The object is checked first: a hard link shares the user's inode, so any
// write to the user's file since capture shows in its size, mtime or ctime
// (or its hash when one was recorded), and such a file is reported, never
// restored silently. Then, on the same filesystem, the file is linked (hard
// link records) or cloned into place; across filesystems it is copied.
func (r *restorer) restoreLinked(job *fileJob, objects *objectDir) error {
	e := &job.entry
	if r.opts.LinkDir == "" {
		return errors.New("hard-link record restored without the store's links directory")
	}
	if err := manifest.CheckObject(e.Link.Object); err != nil {
		return err
	}
	objPath := filepath.Join(r.opts.LinkDir, filepath.FromSlash(e.Link.Object))
	if e.Link.Method == manifest.LinkHard && e.Link.Hash.IsZero() {
		if done, err := r.linkInPlace(job, objPath, objects); done || err != nil {
			return err
		}
	}
	obj, err := os.OpenFile(objPath, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("store object %s: %w", e.Link.Object, err)
	}
	defer obj.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(obj.Fd()), &st); err != nil {
		return fmt.Errorf("stat store object: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("store object %s is not a regular file: %w", e.Link.Object, cas.ErrCorrupt)
	}
	if err := r.checkObject(e, obj, &st); err != nil {
		return err
	}
	dir := job.dir
	tmp := tempName()
	// A hard link restores the very inode when it was the file's own (not a
	// --hardlink-dedupe object shared with an identical file).
	if e.Link.Method == manifest.LinkHard && st.Ino == e.Inode && r.linkedMetaMatches(e, &st, objPath) {
		if err := unix.Linkat(unix.AT_FDCWD, objPath, dir.fd, tmp, 0); err == nil {
			if err := unix.Renameat(dir.fd, tmp, dir.fd, job.name); err != nil {
				unix.Unlinkat(dir.fd, tmp, 0)
				return fmt.Errorf("rename into place: %w", err)
			}
			// rename(2) between two names of one inode does nothing and
			// leaves the temporary name.
			unix.Unlinkat(dir.fd, tmp, 0)
			r.done(job, e.Size)
			r.opts.Progress.Linked.Add(1)
			return nil
		} // EXDEV (target on another filesystem), EMLINK: copy instead
	}
	fd, err := unix.Openat(dir.fd, tmp, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(fd), job.rel)
	fail := func(err error) error {
		f.Close()
		unix.Unlinkat(dir.fd, tmp, 0)
		return err
	}
	if err := unix.IoctlFileClone(fd, int(obj.Fd())); err != nil {
		// No reflink here: copy (copy_file_range under io.Copy).
		if _, err := obj.Seek(0, io.SeekStart); err != nil {
			return fail(err)
		}
		if _, err := io.Copy(f, obj); err != nil {
			return fail(fmt.Errorf("copy from store object: %w", err))
		}
	} else {
		r.opts.Progress.Cloned.Add(1)
	}
	if err := r.setMeta(*e, fd); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		unix.Unlinkat(dir.fd, tmp, 0)
		return fmt.Errorf("close: %w", err)
	}
	if err := unix.UtimesNanoAt(dir.fd, tmp, timespecs(e.MTimeNs), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		unix.Unlinkat(dir.fd, tmp, 0)
		return fmt.Errorf("set mtime: %w", err)
	}
	if err := unix.Renameat(dir.fd, tmp, dir.fd, job.name); err != nil {
		unix.Unlinkat(dir.fd, tmp, 0)
		return fmt.Errorf("rename into place: %w", err)
	}
	r.done(job, e.Size)
	return nil
}

// linkInPlace is the fast path of restoreLinked, for a hard-linked file
// without a recorded hash (nothing to read): it checks the object by its
// metadata alone and links it straight to its final name, one link where
// a copy needs a temporary name and a rename: restoring a hard-link record
// should cost what cp -al costs. done is false when the caller must take
// the general path (the object is not the file's own inode any more, the
// link failed, or a file is in the way, which replaceable already allowed
// to be replaced: that goes through a temporary name, atomically).
func (r *restorer) linkInPlace(job *fileJob, objPath string, objects *objectDir) (done bool, err error) {
	e := &job.entry
	bucket, name := filepath.Split(objPath)
	bucketFD, err := objects.open(bucket)
	if err != nil {
		return false, fmt.Errorf("store object %s: %w", e.Link.Object, err)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(bucketFD, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return false, fmt.Errorf("store object %s: %w", e.Link.Object, &os.PathError{Op: "lstat", Path: objPath, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, fmt.Errorf("store object %s is not a regular file: %w", e.Link.Object, cas.ErrCorrupt)
	}
	if err := r.checkObject(e, nil, &st); err != nil {
		return false, err
	}
	if st.Ino != e.Inode || !r.linkedMetaMatches(e, &st, objPath) {
		return false, nil
	}
	dir := job.dir
	// linkat never follows a symlink at the new name: one planted there is
	// EEXIST, like any other file in the way.
	if err := unix.Linkat(bucketFD, name, dir.fd, job.name, 0); err != nil {
		var cur unix.Stat_t
		if errors.Is(err, unix.EEXIST) && unix.Fstatat(dir.fd, job.name, &cur, unix.AT_SYMLINK_NOFOLLOW) == nil &&
			cur.Dev == st.Dev && cur.Ino == st.Ino {
			// Already in place (an earlier restore of this record), with
			// the metadata the record wants.
			r.done(job, e.Size)
			r.opts.Progress.Linked.Add(1)
			return true, nil
		}
		return false, nil
	}
	r.done(job, e.Size)
	r.opts.Progress.Linked.Add(1)
	return true, nil
}

func (r *restorer) checkObject(e *manifest.Entry, obj *os.File, st *unix.Stat_t) error {
	if !e.Link.Hash.IsZero() {
		if obj == nil {
			return errors.New("hash check needs the object open")
		}
		if r.opts.Hash == nil {
			return errors.New("hash check needs a hasher")
		}
		if _, err := obj.Seek(0, io.SeekStart); err != nil {
			return err
		}
		got, err := cas.SumStream(obj, r.opts.Hash)
		if err != nil {
			return fmt.Errorf("hash store object: %w", err)
		}
		if got != e.Link.Hash || uint64(st.Size) != e.Size {
			return fmt.Errorf("store object %s: contents %w (the user's file was modified after capture); not restored", e.Link.Object, ErrChangedSinceCapture)
		}
		return nil
	}
	// Size and mtime catch every ordinary write. The ctime cannot be a gate:
	// adding or removing any name of the inode moves it (the OS reinstall
	// deleting the user's copy, an earlier restore linking one), so it only
	// confirms: unchanged ctime proves nothing was touched at all. A write
	// that also put the old mtime back is caught only with a recorded hash
	// (--hardlink-dedupe).
	if uint64(st.Size) != e.Size || st.Mtim.Nano() != e.MTimeNs {
		return fmt.Errorf("store object %s: size or mtime %w (the user's file was modified after capture); not restored", e.Link.Object, ErrChangedSinceCapture)
	}
	return nil
}

// linkedMetaMatches reports whether the store object at path (stat st)
// already has the owner, mode and xattrs the restored file must have.
// Only then may it be linked into place: the object is the user's own
// inode, shared with the store's link set and with the original file when
// it still exists, so a chown or chmod after linking (a --map, the restore
// policy, a chmod since capture) would change those too, and a link would
// carry xattrs the restore must not give (file capabilities the policy
// drops, ACLs set since capture). A file that needs other metadata is
// copied instead.
func (r *restorer) linkedMetaMatches(e *manifest.Entry, st *unix.Stat_t, path string) bool {
	if r.opts.Owners && (int(st.Uid) != r.uid(*e) || int(st.Gid) != r.gid(*e)) {
		return false
	}
	return st.Mode&0o7777 == e.Mode && xattrsEqual(path, e.Xattrs)
}

const selinuxXattr = "security.selinux"

// xattrsEqual reports whether the file at path (not following a symlink)
// has exactly the xattrs want, names and values; any error answers no.
func xattrsEqual(path string, want map[string][]byte) bool {
	wanted := len(want)
	if _, ok := want[selinuxXattr]; ok {
		wanted--
	}
	n, err := unix.Llistxattr(path, nil)
	if err != nil || n == 0 {
		return err == nil && wanted == 0
	}
	buf := make([]byte, n)
	if n, err = unix.Llistxattr(path, buf); err != nil {
		return false
	}
	// The SELinux label is left out: the restore never sets it (the
	// policy drops security.*), and a linked inode keeps the label the
	// user's own file has, as a copy gets its directory's.
	names := slices.DeleteFunc(strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00"),
		func(name string) bool { return name == selinuxXattr })
	if len(names) != wanted {
		return false
	}
	for _, name := range names {
		v, ok := want[name]
		if !ok {
			return false
		}
		got := make([]byte, len(v)+1) // one byte more: a longer value fails
		m, err := unix.Lgetxattr(path, name, got)
		if err != nil || !bytes.Equal(got[:m], v) {
			return false
		}
	}
	return true
}

// objectDir holds a worker's open store bucket directories: a record's
// objects are numbered in walk order and spread over a few buckets at a
// time, so one worker meets the same buckets file after file, and linking
// relative to them saves resolving the whole store path twice per file.
type objectDir struct {
	fds map[string]int
}

// maxObjectDirs bounds the descriptors a worker keeps (capture spreads
// consecutive objects over 16 buckets).
const maxObjectDirs = 32

func (o *objectDir) open(dir string) (int, error) {
	if fd, ok := o.fds[dir]; ok {
		return fd, nil
	}
	if len(o.fds) >= maxObjectDirs {
		o.close() // the walk has moved on to later buckets
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	if o.fds == nil {
		o.fds = map[string]int{}
	}
	o.fds[dir] = fd
	return fd, nil
}

func (o *objectDir) close() {
	for dir, fd := range o.fds {
		unix.Close(fd)
		delete(o.fds, dir)
	}
}
