package repo

import "syscall"

// oNoAtime keeps repair's reads of user files from moving their atime.
const oNoAtime = syscall.O_NOATIME
