package capture

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Every file and directory below the capture root is opened by its name in
// its parent's open descriptor, never by a path: a local user who owns a
// directory being captured can rename a symlink over a name between the walk
// and the open, and a path (or a name without O_NOFOLLOW) would then reach a
// file of someone else's, read with the capturing user's rights.
//
// O_NONBLOCK: a FIFO renamed over a regular file's name opens at once (and is
// then refused by its type) instead of blocking a worker for good. O_NOCTTY:
// a terminal device never becomes the capture's controlling terminal.
const openFlags = unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC

// noOpenat2 is set once openat2 proved missing (ENOSYS, or a seccomp filter
// refusing it): openat with O_NOFOLLOW gives the same guarantee for the
// single names opened here.
var noOpenat2 atomic.Bool

// openat2 is the raw call (a variable so tests can refuse it).
var openat2 = unix.Openat2

// openAt opens name, one component, in the directory open as dir with
// openFlags added to flags, retrying on EINTR. A symlink gives ELOOP.
func openAt(dir int, name string, flags int) (int, error) {
	if flags&unix.O_PATH != 0 {
		// openat2 refuses any other flag with O_PATH; such a descriptor
		// reads nothing, so none is needed.
		flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	} else {
		flags |= openFlags
	}
	for {
		var fd int
		var err error
		if !noOpenat2.Load() {
			fd, err = openat2(dir, name, &unix.OpenHow{
				Flags:   uint64(flags),
				Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
			})
			if err == unix.ENOSYS {
				noOpenat2.Store(true)
				continue
			}
		} else {
			fd, err = unix.Openat(dir, name, flags, 0)
		}
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// openDirAt opens the directory name in dir for listing it.
func openDirAt(dir int, name string) (int, error) {
	return openAt(dir, name, unix.O_RDONLY|unix.O_DIRECTORY)
}

// openParent opens the parent ("..") of the directory open as dir. ".."
// may lead anywhere once the directory was moved: the caller compares the
// result with the parent it expects.
func openParent(dir int) (int, error) {
	for {
		fd, err := unix.Openat(dir, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// openFileAt opens the file name in dir for reading, without updating its
// access time where the capturing user may ask for that.
func openFileAt(dir int, name string) (int, error) {
	fd, err := openAt(dir, name, unix.O_RDONLY|unix.O_NOATIME)
	if err == unix.EPERM {
		fd, err = openAt(dir, name, unix.O_RDONLY) // O_NOATIME needs ownership
	}
	return fd, err
}

// fstat is unix.Fstat retried on EINTR.
func fstat(fd int, st *unix.Stat_t) error {
	for {
		if err := unix.Fstat(fd, st); err != unix.EINTR {
			return err
		}
	}
}

type changedError struct{ what string }

func (e changedError) Error() string {
	return "changed during capture (" + e.what + "): capture it again"
}
func (e changedError) Is(target error) bool { return target == ErrChanged }

// changedErr says how the file at a name changed.
func changedErr(format string, args ...any) error {
	return changedError{fmt.Sprintf(format, args...)}
}

// openErr turns the error of opening a listed name into what is reported:
// a symlink (ELOOP), a socket (ENXIO) or a non-directory (ENOTDIR) where
// the walk saw something else is a change during capture.
func openErr(op, abs string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP):
		return changedErr("a symlink now")
	case errors.Is(err, unix.ENXIO):
		return changedErr("a socket or device now")
	case errors.Is(err, unix.ENOTDIR):
		return changedErr("no longer a directory")
	}
	return &fs.PathError{Op: op, Path: abs, Err: err}
}

var fdXattrBufs = sync.Pool{New: func() any { return new([4096]byte) }}

// fdXattrs reads the extended attributes of the file open as fd: the very
// inode whose contents and stat are captured.
func fdXattrs(fd int) map[string][]byte {
	buf := fdXattrBufs.Get().(*[4096]byte)
	defer fdXattrBufs.Put(buf)
	list := buf[:]
	n, err := flistxattr(fd, list)
	if err == unix.ERANGE {
		// More than 4 KiB of names: ask for the size, then read them.
		if n, err = flistxattr(fd, nil); err == nil && n > 0 {
			list = make([]byte, n)
			n, err = flistxattr(fd, list)
		}
	}
	if err != nil || n <= 0 {
		return nil // unsupported filesystems and no xattrs look the same
	}
	names := splitXattrNames(string(list[:n]))
	out := make(map[string][]byte, len(names))
	for _, name := range names {
		if !utf8.ValidString(name) {
			continue // not representable in a tree; such names do not occur in practice
		}
		if v, ok := fgetxattr(fd, name); ok {
			out[name] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func flistxattr(fd int, dest []byte) (int, error) {
	for {
		n, err := unix.Flistxattr(fd, dest)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// fgetxattr reads one value, sized by a first call when it is over 4 KiB.
func fgetxattr(fd int, name string) ([]byte, bool) {
	var small [4096]byte
	for {
		n, err := unix.Fgetxattr(fd, name, small[:])
		switch err {
		case nil:
			return append([]byte{}, small[:n]...), true
		case unix.EINTR:
			continue
		case unix.ERANGE:
			size, err := unix.Fgetxattr(fd, name, nil)
			if err != nil || size <= 0 {
				return nil, false
			}
			v := make([]byte, size)
			if n, err = unix.Fgetxattr(fd, name, v); err == unix.ERANGE {
				continue // grew meanwhile
			} else if err != nil {
				return nil, false
			}
			return v[:n], true
		default:
			return nil, false
		}
	}
}

// fdReader reads a file open as fd from offset 0 with pread, so a second
// attempt reads it again from the start. After a large read that filled
// the caller's buffer it asks the kernel for the next as much (posix_fadvise
// WILLNEED), so that the disk reads it while the caller chunks this one.
type fdReader struct {
	fd    int
	off   int64
	ahead int64 // asked to be read ahead up to here
}

func (r *fdReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Pread(r.fd, p, r.off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		r.off += int64(n)
		if n == len(p) && n >= readAheadMin && r.off+int64(n) > r.ahead {
			_ = unix.Fadvise(r.fd, r.off, int64(n), unix.FADV_WILLNEED)
			r.ahead = r.off + int64(n)
		}
		return n, nil
	}
}
