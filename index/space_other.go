//go:build !linux

package index

import "os"

// statfsFree reports the free space as unknown: the check is skipped where
// smp has no statfs of its own.
func statfsFree(string) (uint64, bool) { return 0, false }

// allocated returns the file's length: without block counts, a sparse log
// counts as written (the safe side).
func allocated(st os.FileInfo) int64 { return st.Size() }
