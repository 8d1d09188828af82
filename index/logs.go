package index

import (
	"fmt"
	"os"
	"path/filepath"
)

// logHeaderSize is the header Badger writes at the start of every
// memtable write-ahead log (.mem) and value log (.vlog) file: key ID and
// IV, 20 bytes (vlogHeaderSize in badger v4).
const logHeaderSize = 20

// removeUnwrittenLogs deletes memtable and value log files shorter than
// their header. Badger creates such a file with O_CREATE, then sizes it
// with ftruncate and writes the header through the mapping: a process
// killed in between leaves a zero-length file, and Badger's next open of
// it fails once ("Open existing file ... Create a new file" for a value
// log, dgraph-io/badger#2207 for a memtable) before it repairs it itself.
// Such a file holds no entry (entries follow the header), and the store
// lock guarantees no other process is writing it. A file killed after the
// ftruncate is all zeros: Badger reads that as an empty log with key ID 0
// (no encryption) and opens it.
func removeUnwrittenLogs(dir string) error {
	for _, pattern := range []string{"*.mem", "*.vlog"} {
		files, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return err
		}
		for _, f := range files {
			st, err := os.Lstat(f)
			if err != nil || !st.Mode().IsRegular() || st.Size() >= logHeaderSize {
				continue
			}
			if err := os.Remove(f); err != nil {
				return fmt.Errorf("remove unwritten index log %s: %w", f, err)
			}
		}
	}
	return nil
}
