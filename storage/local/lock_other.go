//go:build !linux

package local

// openFlags: the portable open has no way to refuse a final link; os.Root
// still keeps every name inside the directory.
const openFlags = 0

// swapLock: without flock, Swaps are serialised within one process only.
func (s *Storage) swapLock() (func(), error) { return func() {}, nil }
