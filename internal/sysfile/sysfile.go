// Package sysfile holds the few file-system calls the store needs that the
// Go standard library does not offer portably: an exclusive lock on an open
// file, the free space of a filesystem, and an atomic replace with a fixed
// mode. The Linux implementation is the real one; on other systems each call
// returns ErrUnsupported, so the packages above build everywhere and fail
// with one clear line where a store cannot work yet.
package sysfile

import (
	"errors"
	"fmt"
	"runtime"
)

// ErrUnsupported is returned on systems without an implementation.
var ErrUnsupported = fmt.Errorf("not supported on %s", runtime.GOOS)

// ErrWouldBlock is returned by Lock without wait when another process
// holds the lock.
var ErrWouldBlock = errors.New("locked by another process")
