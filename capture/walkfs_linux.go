package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"
)

// The walk works on directory descriptors: the os package's Open, Lstat and
// Readdirnames each walk the whole path again and allocate per call, which
// made them over half of a hard-link capture's walk (the walk is the one
// serial part of a capture; bench's BenchmarkHardlink measures it).

// openDir opens a directory for reading its names and looking them up, by
// a path that no one but the capturing user controls: the source root or
// the store's own directories (see openAt for everything below the root).
func openDir(abs string) (int, error) {
	for {
		fd, err := unix.Open(abs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: abs, Err: err}
		}
		return fd, nil
	}
}

// dirEntry is a name from a directory listing and its type as the
// filesystem reported it (unix.DT_*; DT_UNKNOWN when it does not say).
type dirEntry struct {
	name string
	typ  uint8
}

// readDir returns the entries of the directory open as dir, except . and
// .., sorted by name, reading through buf (grown once to 32 KiB and
// returned for reuse).
func readDir(dir int, buf []byte) ([]dirEntry, []byte, error) {
	if len(buf) < 32<<10 {
		buf = make([]byte, 32<<10)
	}
	var entries []dirEntry
	for {
		n, err := unix.Getdents(dir, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, buf, err
		}
		if n <= 0 {
			slices.SortFunc(entries, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
			return entries, buf, nil
		}
		entries, err = parseDirents(buf[:n], entries)
		if err != nil {
			return nil, buf, err
		}
	}
}

// parseDirents appends the entries of a getdents64 buffer: records of
// ino(8) off(8) reclen(2) type(1) name, NUL-terminated and padded.
func parseDirents(b []byte, entries []dirEntry) ([]dirEntry, error) {
	const nameOff = 19
	for len(b) > 0 {
		if len(b) < nameOff {
			return entries, errors.New("short directory entry from getdents")
		}
		reclen := int(binary.NativeEndian.Uint16(b[16:18]))
		if reclen < nameOff || reclen > len(b) {
			return entries, fmt.Errorf("directory entry length %d out of range", reclen)
		}
		typ, name := b[18], b[nameOff:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		ino := binary.NativeEndian.Uint64(b[0:8])
		b = b[reclen:]
		if ino == 0 || string(name) == "." || string(name) == ".." {
			continue // a deleted entry, or the directory and its parent
		}
		entries = append(entries, dirEntry{name: string(name), typ: typ})
	}
	return entries, nil
}

// lstatAt stats name in dir without following a symlink.
func lstatAt(dir int, name string, st *unix.Stat_t) error {
	for {
		err := unix.Fstatat(dir, name, st, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EINTR {
			return err
		}
	}
}

// sysListxattrat is listxattrat(2), Linux 6.13, the same number on every
// architecture. golang.org/x/sys does not wrap it yet; it lists a file's
// xattr names by directory descriptor and name, where llistxattr walks the
// full path (an eighth of a hard-link capture's walk).
const sysListxattrat = 465

var noListxattrat atomic.Bool // the kernel lacks it: use llistxattr

var xattrNameBufs = sync.Pool{New: func() any { return new([4096]byte) }}

// listxattrat is the raw call (a variable so tests can refuse it).
var listxattrat = func(dir int, path *byte, buf []byte) (uintptr, unix.Errno) {
	n, _, errno := unix.Syscall6(sysListxattrat, uintptr(dir), uintptr(unsafe.Pointer(path)),
		unix.AT_SYMLINK_NOFOLLOW, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0)
	return n, errno
}

// listXattrs lists the xattr names of name in dir (abs when dir is -1),
// not following a symlink.
func listXattrs(dir int, name, abs string) ([]string, error) {
	if dir < 0 || noListxattrat.Load() {
		return xattr.LList(abs)
	}
	// The buffer escapes through the syscall: pooled, because a fresh
	// 4 KiB per file was a fifth of a hard-link capture's page faults.
	buf := xattrNameBufs.Get().(*[4096]byte)
	defer xattrNameBufs.Put(buf)
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return nil, err
	}
	for {
		n, errno := listxattrat(dir, p, buf[:])
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.ENOSYS:
			noListxattrat.Store(true)
			return xattr.LList(abs)
		case errno == unix.ERANGE:
			return xattr.LList(abs) // more than 4 KiB of names: rare, let the library size it
		case errors.Is(errno, unix.ENOTSUP):
			return nil, nil
		case errno != 0:
			// A seccomp filter may refuse a syscall it does not know with
			// EPERM instead of ENOSYS: when the path call works, stop
			// using listxattrat rather than lose xattrs.
			names, err := xattr.LList(abs)
			if err == nil {
				noListxattrat.Store(true)
				return names, nil
			}
			return nil, &fs.PathError{Op: "listxattrat", Path: abs, Err: errno}
		}
		if n == 0 {
			return nil, nil
		}
		return splitXattrNames(string(buf[:n])), nil
	}
}

func splitXattrNames(list string) []string {
	var names []string
	for n := range strings.SplitSeq(list, "\x00") {
		if n != "" {
			names = append(names, n)
		}
	}
	return names
}
