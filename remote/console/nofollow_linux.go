package console

import "syscall"

// syscallNoFollow refuses to follow a symlink planted in place of the
// console's files.
const syscallNoFollow = syscall.O_NOFOLLOW
