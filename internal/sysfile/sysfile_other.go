//go:build !linux

package sysfile

import (
	"fmt"
	"os"
)

// Lock is not implemented on this system.
func Lock(f *os.File, wait bool) error {
	return fmt.Errorf("lock %s: %w", f.Name(), ErrUnsupported)
}

// FreeBytes is not implemented on this system.
func FreeBytes(dir string) (uint64, error) {
	return 0, fmt.Errorf("free space of %s: %w", dir, ErrUnsupported)
}

// WriteFile is not implemented on this system.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return fmt.Errorf("write %s: %w", path, ErrUnsupported)
}
