package local

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openFlags open the final element of a name without following a link.
const openFlags = unix.O_NOFOLLOW

// swapLock takes an exclusive flock on the storage's directory, so Swaps
// of processes sharing it take turns; the caller holds s.swap.
func (s *Storage) swapLock() (func(), error) {
	f, err := s.root.OpenFile(".", os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("lock storage: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock storage: %w", err)
	}
	return func() { f.Close() }, nil // closing the descriptor drops the lock
}
