package index

import (
	"errors"
	"fmt"
	"io/fs"
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

// memTableSizeFor returns the memtable size to open the index in dir with:
// memTableSize, or more when a memtable log left by a process that did not
// close the index holds more than such a memtable takes. Badger replays
// each log into a memtable whose arena it sizes from this option, and
// panics ("Arena too small") when the log's entries do not fit, as they
// would not for a log written when memtables were larger (an older smp's,
// or a larger memTableSize). A log holds its allocated blocks'
// worth of entries at most (logs are preallocated sparse, so these are the
// bytes written). An entry takes its key and value plus 26 bytes and 4 per
// skiplist level in an arena, against 9 bytes more in the log: for the
// shortest keys (9 bytes with Badger's version) at the average height, 2.3
// times its log bytes, and far less for the index's 43-byte keys; twice
// the log as memTableSize gives an arena of 2.6 times it.
func memTableSizeFor(dir string) (int64, error) {
	mems, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	if err != nil {
		return 0, err
	}
	size := int64(memTableSize)
	for _, m := range mems {
		st, err := os.Lstat(m)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("open index: %w", err)
		}
		if st.Mode().IsRegular() {
			size = max(size, 2*min(allocated(st), st.Size()))
		}
	}
	return size, nil
}
