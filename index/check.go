package index

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/fb"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2"
	"github.com/dgraph-io/ristretto/v2/z"
)

// ErrDamaged is returned when the index files cannot be read safely: the
// index must be rebuilt from the packs.
var ErrDamaged = errors.New("index is damaged")

// checkTables opens every table the MANIFEST lists the way Badger's own open
// does (footer, checksummed table index, last block), but here, where a
// panic can be recovered. Badger opens tables in goroutines of its own: a
// garbled footer makes table.initIndex panic there ("slice bounds out of
// range", badger v4.9.6), beyond any recover, and a table whose index fails
// its checksum is silently left out, hiding part of the index. The cost is
// what Badger itself reads on open (footer and table index, one block per
// table); no table is read whole.
//
// An encrypted index (key set: the index key) is checked the same way,
// each table with its data key from KEYREGISTRY, which is read only; a
// key that does not open KEYREGISTRY is left for Badger's open to report
// (ErrWrongKey).
//
// A missing MANIFEST is no damage here: Badger starts a new index, and the
// caller decides whether an empty index is acceptable (OpenExisting).
// Tables the MANIFEST does not list are not checked: Badger deletes them
// (a kill during a flush or compaction leaves such half-written files).
func checkTables(dir string, key []byte) error {
	fp, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open index manifest: %w", err)
	}
	mf, _, err := badger.ReplayManifestFile(fp, 0, badger.DefaultOptions(dir).WithLogger(nil))
	fp.Close()
	if err != nil {
		return damaged("MANIFEST", err)
	}
	var reg *tableKeys
	if key != nil && len(mf.Tables) > 0 {
		kr, err := openKeyRegistry(dir, key)
		if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
			return nil
		}
		if err != nil {
			return damaged(badger.KeyRegistryFileName, err)
		}
		defer kr.Close()
		if reg, err = newTableKeys(kr); err != nil {
			return err
		}
		defer reg.cache.Close()
	}
	ids := slices.Sorted(maps.Keys(mf.Tables))
	errs := make([]error, len(ids))
	// Tables are checked in parallel, as Badger opens them: each check
	// recovers its own panics.
	var wg sync.WaitGroup
	var wrongKey error // the index is not under the key given: not damage
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, id := range ids {
		tm := mf.Tables[id]
		var dk *pb.DataKey
		switch {
		case key != nil && tm.KeyID == 0:
			// An index in clear opened with a key: the key is wrong
			// for it (a store being converted to encryption still has
			// one), not damage.
			wrongKey = fmt.Errorf("its tables are in clear: %w", ErrWrongKey)
		case key != nil:
			// The tables' data keys are sealed in KEYREGISTRY by the
			// index key.
			if dk, err = reg.keys.DataKey(tm.KeyID); err != nil {
				errs[i] = err
				continue
			}
		case tm.KeyID != 0:
			// An encrypted index opened without a key (the MANIFEST's
			// checksum held, so the key ID is Badger's own).
			wrongKey = fmt.Errorf("its tables are encrypted: %w", ErrWrongKey)
		}
		if wrongKey != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			errs[i] = checkTable(table.NewFilename(id, dir), tableCheck{compression: tm.Compression, dataKey: dk, reg: reg})
			<-sem
		}()
	}
	wg.Wait()
	if wrongKey != nil {
		return wrongKey
	}
	for i, err := range errs {
		if err != nil {
			return damaged(filepath.Base(table.NewFilename(ids[i], dir)), err)
		}
	}
	return nil
}

// openKeyRegistry reads KEYREGISTRY (read only), turning a panic while
// reading it into an error: Badger's reader trusts the file's lengths (a
// registry cut inside a data key panics with "bad IV length", badger
// v4.9.6), and Badger's own open, which reads it again, runs only after
// this read succeeded.
func openKeyRegistry(dir string, key []byte) (kr *badger.KeyRegistry, err error) {
	defer func() {
		if p := recover(); p != nil {
			kr, err = nil, fmt.Errorf("unreadable: %v", p)
		}
	}()
	return badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: dir, ReadOnly: true, EncryptionKey: key})
}

// tableKeys are what checking the tables of an encrypted index needs: its
// data keys, and the table index cache Badger requires to read an
// encrypted table (its decrypted index is kept there).
type tableKeys struct {
	keys  *badger.KeyRegistry
	cache *ristretto.Cache[uint64, *fb.TableIndex]
}

func newTableKeys(kr *badger.KeyRegistry) (*tableKeys, error) {
	c, err := ristretto.NewCache(&ristretto.Config[uint64, *fb.TableIndex]{NumCounters: 1 << 12, MaxCost: 4 << 20, BufferItems: 64})
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	return &tableKeys{keys: kr, cache: c}, nil
}

// tableCheck is how to read one table: its compression and, in an
// encrypted index, its data key.
type tableCheck struct {
	compression options.CompressionType
	dataKey     *pb.DataKey
	reg         *tableKeys
}

// checkTable opens one table read-only and closes it again, turning a panic
// while reading it into an error.
func checkTable(path string, tc tableCheck) (err error) {
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	// Unmap and close by hand: the table's own Close would msync the
	// read-only mapping (most of this check's cost), and DecrRef would
	// delete the file once the last reference is dropped.
	defer func() {
		z.Munmap(mf.Data)
		mf.Fd.Close()
	}()
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("table footer or last block unreadable: lengths out of range")
		}
	}()
	if len(mf.Data) == 0 {
		return errors.New("empty table file")
	}
	o := table.Options{
		Compression: tc.compression,
		BlockSize:   4 << 10, // only consulted to size buffers for compressed tables
		ChkMode:     options.OnBlockRead,
		DataKey:     tc.dataKey,
	}
	if tc.dataKey != nil {
		o.IndexCache = tc.reg.cache
	}
	_, err = table.OpenTable(mf, o)
	return err
}

// damaged wraps a table or MANIFEST problem into ErrDamaged, on one line.
func damaged(file string, err error) error {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	return fmt.Errorf("%w: %s: %s", ErrDamaged, file, msg)
}

// withChecks makes Badger verify each block's checksum when it reads the
// block, and each value's when it reads one from the value log: a garbled
// table then fails the read ("checksum mismatch") instead of returning
// another blob's location, which would be reported as damaged data.
func withChecks(opts badger.Options) badger.Options {
	return opts.WithChecksumVerificationMode(options.OnBlockRead).WithVerifyValueChecksum(true)
}

// ErrNoIndex is returned by OpenExisting when dir holds no index yet.
var ErrNoIndex = errors.New("no index")

// OpenExisting opens the index in dir like Open, but an index that does not
// exist yet (no directory, no MANIFEST, or no schema key: every index gets
// its schema key when first opened, before anything else is written) is
// refused with ErrNoIndex, and nothing is created or written. The caller
// decides whether a new, empty index is right (a new store) or would hide
// the store's contents (an index lost while packs exist).
func OpenExisting(dir string, o ...Options) (*Index, error) {
	return openExisting(dir, false, optionsOf(o))
}

func openExisting(dir string, readOnly bool, o Options) (*Index, error) {
	if _, err := os.Stat(filepath.Join(dir, badger.ManifestFilename)); errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoIndex
	}
	return open(dir, false, readOnly, o)
}

// OpenReadOnly opens an existing index for reading only, like
// OpenExisting. Badger then creates no memtable or value log file and
// flushes nothing on Close, which takes most of the cost of a short
// process's open and close (a restore: 20 ms down to 7 on the bench
// machine). Writes fail with ErrReadOnly. An index Badger cannot open
// read-only (a torn write-ahead log that only a writable open repairs)
// fails here; callers then open it writable.
func OpenReadOnly(dir string, o ...Options) (*Index, error) {
	return openExisting(dir, true, optionsOf(o))
}
