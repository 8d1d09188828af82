package repo_test

import "syscall"

// mkfifo makes a FIFO at path: a file whose open would block a careless reader.
func mkfifo(path string) error { return syscall.Mkfifo(path, 0o644) }
