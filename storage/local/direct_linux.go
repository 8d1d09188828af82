package local

import (
	"os"

	"golang.org/x/sys/unix"
)

// errDirectRefused is how a file system refuses a direct write it does
// not support on this file (or whose alignment we guessed wrong).
var errDirectRefused error = unix.EINVAL

// writeDirect writes b to f in direct mode (a test replaces it).
var writeDirect = (*os.File).Write

// setDirect sets O_DIRECT on f and returns the alignment of the offsets,
// lengths and addresses of its writes; false (and f unchanged) when the
// file system does no direct I/O on it.
func setDirect(f *os.File) (align int, ok bool) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, false
	}
	rc.Control(func(fd uintptr) {
		align = directAlignment(int(fd))
		if align == 0 {
			return
		}
		flags, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err != nil {
			return
		}
		_, err = unix.FcntlInt(fd, unix.F_SETFL, flags|unix.O_DIRECT)
		ok = err == nil
	})
	return align, ok
}

// directAlignment is the alignment direct writes to fd need, from statx
// STATX_DIOALIGN; the page size when the kernel does not say (a wrong
// guess makes a direct write fail with EINVAL, which falls back); 0 when
// the file takes no direct I/O or needs an alignment directBuffer is no
// multiple of.
func directAlignment(fd int) int {
	var st unix.Statx_t
	err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &st)
	if err != nil || st.Mask&unix.STATX_DIOALIGN == 0 {
		return 4096
	}
	if st.Dio_offset_align == 0 {
		return 0
	}
	a := max(int(st.Dio_offset_align), int(st.Dio_mem_align), 4096)
	if a&(a-1) != 0 || directBuffer%a != 0 {
		return 0
	}
	return a
}

// clearDirect turns O_DIRECT off on f.
func clearDirect(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	cerr := rc.Control(func(fd uintptr) {
		var flags int
		if flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0); err == nil {
			_, err = unix.FcntlInt(fd, unix.F_SETFL, flags&^unix.O_DIRECT)
		}
	})
	if cerr != nil {
		return cerr
	}
	return err
}
