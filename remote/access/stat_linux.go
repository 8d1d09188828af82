package access

import (
	"io/fs"
	"syscall"
)

// fileIdentity returns the device, inode and ctime of fi: with size and
// mtime they tell one version of access.json from the next.
func fileIdentity(fi fs.FileInfo) (dev, ino uint64, ctimeNsec int64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino, st.Ctim.Nano()
	}
	return 0, 0, 0
}

// syscallNoFollow refuses to open the access file through a symlink.
const syscallNoFollow = syscall.O_NOFOLLOW
