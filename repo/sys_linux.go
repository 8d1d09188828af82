package repo

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// oNoAtime keeps repair's reads of user files from moving their atime.
const oNoAtime = syscall.O_NOATIME

// noFollow refuses to open a store file through a symlink.
const noFollow = syscall.O_NOFOLLOW

// exchangeDirs swaps the directories a and b in one atomic step
// (renameat2 RENAME_EXCHANGE): a crash leaves either both as they were
// or both swapped.
func exchangeDirs(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}
