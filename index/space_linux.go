package index

import (
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// statfsFree returns the bytes an unprivileged writer may still use on the
// filesystem of path, or of its nearest existing parent (a new index's
// directory does not exist before Badger creates it).
func statfsFree(path string) (uint64, bool) {
	for {
		var st unix.Statfs_t
		err := unix.Statfs(path, &st)
		if err == nil {
			return st.Bavail * uint64(st.Bsize), true
		}
		parent := filepath.Dir(path)
		if err != unix.ENOENT || parent == path {
			return 0, false
		}
		path = parent
	}
}

// allocated returns the bytes a file occupies on disk: Badger's logs are
// sparse, preallocated with ftruncate.
func allocated(st os.FileInfo) int64 {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return sys.Blocks * 512
	}
	return st.Size()
}
