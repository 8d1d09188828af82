//go:build !linux

package repo

import (
	"os"
	"path/filepath"
)

// oNoAtime is zero where the system has no O_NOATIME.
const oNoAtime = 0

// noFollow refuses to open a store file through a symlink.
const noFollow = 0

// exchangeDirs swaps the directories a and b with three renames, where
// the system has no atomic exchange: a crash between them leaves a
// missing, which the store reports (run smp index rebuild).
func exchangeDirs(a, b string) error {
	tmp := filepath.Join(filepath.Dir(a), ".exchange")
	if err := os.Rename(a, tmp); err != nil {
		return err
	}
	if err := os.Rename(b, a); err != nil {
		return err
	}
	return os.Rename(tmp, b)
}
