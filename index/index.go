package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"smp/cas"
)

// SchemaVersion is the key layout version described in the package doc.
// Version 1 keyed blobs by ID alone ("b" + ID); version 2 keys them by type
// and ID ("t" + type + ID). A writable open migrates a version 1 index in
// place (migrate.go).
const SchemaVersion = 2

// ErrSchema is returned when the index was written by another schema.
var ErrSchema = errors.New("index schema mismatch")

const (
	prefixBlob   = 't' // + type u8 + blob ID
	prefixPack   = 'p'
	prefixRecord = 'r'
	locationSize = 1 + 1 + 8 + 4 + 4 + cas.IDSize
)

var versionKey = []byte("v")

// Location is where a blob is stored.
type Location struct {
	Pack cas.ID
	cas.PackEntry
}

// Index is an open Badger index. It is safe for concurrent use.
type Index struct {
	db       *badger.DB
	readOnly bool
	dir      string
	retired  atomic.Uint64 // RetiredGeneration
}

// RetiredGeneration counts the calls of RetirePack and DeleteBlobs on this
// open index: it moves whenever a blob's location may have been removed,
// so a figure derived from locations can be kept until it does.
func (ix *Index) RetiredGeneration() uint64 { return ix.retired.Load() }

// ErrReadOnly is returned by every write to an index opened read-only.
var ErrReadOnly = errors.New("the index was opened read-only")

// ErrWrongKey is returned when an index is encrypted under another key
// than Options.EncryptionKey (or is encrypted and none was given, or is
// in clear and one was given).
var ErrWrongKey = errors.New("the index is encrypted under another key")

// ReadOnly reports whether ix was opened with OpenReadOnly.
func (ix *Index) ReadOnly() bool { return ix.readOnly }

// Badger's sizes, tuned for a small, bounded footprint: a store's memory
// must not grow with its size. Badger preallocates twice memTableSize for
// each memtable's write-ahead log and twice vlogFileSize for each value log
// file, and writes both through shared mappings (see space.go).
//
// A memtable's arena (memTableSize and a batch's worth more, 1.3 times it)
// is allocated whole when the memtable is made, so it counts in full
// against capture's soft memory limit however little is written: a capture
// writes about a hundred bytes per new chunk, and closing the index flushes
// the memtable anyway, so a small one costs a capture nothing. The block
// cache holds decrypted 4 KiB blocks of an encrypted index; lookups of
// hashed keys are spread over the whole index, so a larger cache buys few
// hits on a large store, and a miss costs one block's decryption. The
// index cache holds each table's decoded index and Bloom filter, which
// every lookup needs: about 2 bytes per key, so 16 MiB covers millions of
// keys.
//
// A compaction builds its tables in parallel, each in a buffer of twice
// the table size that Badger keeps pooled afterwards, and with encryption
// each block again encrypted beside it: hashed keys spread every L0 table
// over the whole base level, so each L0 compaction rewrites all of it, at
// once. Small tables (baseTableSize) bound that to Badger's limit on
// builders in flight times a small buffer, where larger tables let one
// compaction hold most of an encrypted capture's peak heap. Lookups search
// one table per level whatever its size.
const (
	memTableSize   = 2 << 20
	numMemtables   = 2
	vlogFileSize   = 64 << 20
	valueThreshold = 1 << 10
	blockCacheSize = 8 << 20
	indexCacheSize = 16 << 20
	baseTableSize  = 256 << 10
)

// Options are how an index is opened.
type Options struct {
	// EncryptionKey, when set (32 bytes), makes Badger encrypt every
	// table, log and value log at rest (AES-256-CTR, with data keys it
	// keeps in KEYREGISTRY sealed by this key). It must be the key the
	// index was created with: an index is never converted in place, it is
	// rebuilt (smp index rebuild). The encryption is unauthenticated; the
	// blobs' AEAD and ID re-hash give integrity.
	EncryptionKey []byte

	// memTableSize replaces the memtable size memTableSizeFor chooses:
	// tests write a log as a larger memtable left it.
	memTableSize int64
}

func optionsOf(o []Options) Options {
	if len(o) > 0 {
		return o[0]
	}
	return Options{}
}

// Open opens (creating when missing) the index in dir.
func Open(dir string, o ...Options) (*Index, error) { return open(dir, true, false, optionsOf(o)) }

// open opens the index in dir; unless create is set, an index without a
// schema key (a new one) is refused with ErrNoIndex before anything is
// written to it. A read-only index never creates one.
func open(dir string, create, readOnly bool, o Options) (*Index, error) {
	if err := removeUnwrittenLogs(dir); err != nil {
		return nil, err
	}
	if err := checkTables(dir, o.EncryptionKey); err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	if !readOnly {
		if err := roomToOpen(dir); err != nil {
			return nil, err
		}
	}
	memTable := o.memTableSize
	if memTable == 0 {
		var err error
		if memTable, err = memTableSizeFor(dir); err != nil {
			return nil, err
		}
	}
	opts := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithMemTableSize(memTable).
		WithNumMemtables(numMemtables).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(baseTableSize).
		WithBlockCacheSize(blockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		WithValueLogFileSize(vlogFileSize).
		WithValueThreshold(valueThreshold).
		WithNumCompactors(2).
		WithCompression(options.None). // keys are hashes: incompressible
		WithSyncWrites(true).
		WithDetectConflicts(false).
		WithReadOnly(readOnly)
	if o.EncryptionKey != nil {
		// Badger requires an index cache with encryption (set above); data
		// keys rotate every ten days by default, kept in KEYREGISTRY.
		opts = opts.WithEncryptionKey(o.EncryptionKey)
	}
	db, err := badger.Open(withChecks(opts))
	if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
		return nil, fmt.Errorf("open index: %w", ErrWrongKey)
	}
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	ix := &Index{db: db, readOnly: readOnly, dir: dir}
	if err := ix.checkSchema(create && !readOnly); err != nil {
		db.Close()
		return nil, err
	}
	return ix, nil
}

// update runs fn, a small write (smallWrite bytes at most), in a
// read-write transaction; a read-only index refuses, and so does a full
// filesystem (see space.go).
func (ix *Index) update(fn func(txn *badger.Txn) error) error {
	if ix.readOnly {
		return ErrReadOnly
	}
	if err := ix.room(2, smallWrite); err != nil {
		return err
	}
	return ix.db.Update(fn)
}

// Close flushes and closes the index.
func (ix *Index) Close() error { return ix.db.Close() }

func key(prefix byte, id cas.ID) []byte {
	k := make([]byte, 1+cas.IDSize)
	k[0] = prefix
	copy(k[1:], id[:])
	return k
}

// blobKey is the index key of a blob: its type is part of it, so a data
// chunk and a tree with the same ID are two entries.
func blobKey(k cas.BlobKey) []byte {
	b := make([]byte, 2+cas.IDSize)
	b[0], b[1] = prefixBlob, byte(k.Type)
	copy(b[2:], k.ID[:])
	return b
}

func encodeLocation(l Location) []byte {
	b := make([]byte, 0, locationSize)
	b = append(b, byte(l.Type), byte(l.Compression))
	b = binary.LittleEndian.AppendUint64(b, l.Offset)
	b = binary.LittleEndian.AppendUint32(b, l.StoredLen)
	b = binary.LittleEndian.AppendUint32(b, l.RawLen)
	return append(b, l.Pack[:]...)
}

// decodeLocation decodes the location of blob k; the type the value
// repeats must be the key's.
func decodeLocation(k cas.BlobKey, b []byte) (Location, error) {
	id := k.ID
	if len(b) != locationSize {
		return Location{}, fmt.Errorf("index entry for %s is %d bytes: %w", k, len(b), cas.ErrCorrupt)
	}
	if cas.BlobType(b[0]) != k.Type {
		return Location{}, fmt.Errorf("index entry for %s says %s: %w", k, cas.BlobType(b[0]), cas.ErrCorrupt)
	}
	l := Location{PackEntry: cas.PackEntry{
		ID:          id,
		Type:        cas.BlobType(b[0]),
		Compression: cas.Compression(b[1]),
		Offset:      binary.LittleEndian.Uint64(b[2:10]),
		StoredLen:   binary.LittleEndian.Uint32(b[10:14]),
		RawLen:      binary.LittleEndian.Uint32(b[14:18]),
	}}
	copy(l.Pack[:], b[18:])
	if l.StoredLen > cas.MaxBlobSize || l.RawLen > cas.MaxBlobSize {
		return Location{}, fmt.Errorf("index entry for %s has length over limit: %w", id.Short(), cas.ErrCorrupt)
	}
	return l, nil
}

// Get returns the location of blob id of type t, or cas.ErrNotFound (also
// when only a blob of another type has that ID).
func (ix *Index) Get(t cas.BlobType, id cas.ID) (Location, error) {
	k := cas.BlobKey{Type: t, ID: id}
	var loc Location
	err := ix.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(blobKey(k))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%s: %w", k, cas.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("index lookup %s: %w", k, err)
		}
		return item.Value(func(v []byte) error {
			loc, err = decodeLocation(k, v)
			return err
		})
	})
	return loc, err
}

// Has reports whether blob id of type t is indexed. Capture asks it of
// every chunk, and most of a first capture's chunks are new: a miss
// formats no error.
func (ix *Index) Has(t cas.BlobType, id cas.ID) (bool, error) {
	k := cas.BlobKey{Type: t, ID: id}
	found := false
	err := ix.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(blobKey(k))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("index lookup %s: %w", k, err)
		}
		found = true
		return item.Value(func(v []byte) error {
			_, err := decodeLocation(k, v)
			return err
		})
	})
	if err != nil {
		return false, err
	}
	return found, nil
}

// AddPack indexes every blob of a committed pack, and the pack, atomically.
func (ix *Index) AddPack(pack cas.ID, size int64, entries []cas.PackEntry) error {
	if ix.readOnly {
		return ErrReadOnly
	}
	if err := ix.room(len(entries)+1, int64(len(entries)+1)*(1+cas.IDSize+locationSize)); err != nil {
		return fmt.Errorf("index pack %s: %w", pack.Short(), err)
	}
	wb := ix.db.NewWriteBatch()
	defer wb.Cancel()
	for _, e := range entries {
		if err := wb.Set(blobKey(e.Key()), encodeLocation(Location{Pack: pack, PackEntry: e})); err != nil {
			return fmt.Errorf("index pack %s: %w", pack.Short(), err)
		}
	}
	info := binary.LittleEndian.AppendUint64(nil, uint64(size))
	info = binary.LittleEndian.AppendUint32(info, uint32(len(entries)))
	if err := wb.Set(key(prefixPack, pack), info); err != nil {
		return fmt.Errorf("index pack %s: %w", pack.Short(), err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("index pack %s: %w", pack.Short(), err)
	}
	return nil
}

// PutRecord marks record id live, keeping its encoded form for listing.
func (ix *Index) PutRecord(id cas.ID, encoded []byte) error {
	if len(encoded) > smallWrite && !ix.readOnly {
		if err := ix.room(1, int64(len(encoded))); err != nil {
			return err
		}
	}
	return ix.update(func(txn *badger.Txn) error {
		return txn.Set(key(prefixRecord, id), encoded)
	})
}

// Record returns the encoded form of live record id, or cas.ErrNotFound.
func (ix *Index) Record(id cas.ID) ([]byte, error) {
	var out []byte
	err := ix.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key(prefixRecord, id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("record %s: %w", id.Short(), cas.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("index lookup of record %s: %w", id.Short(), err)
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	return out, err
}

// DeleteRecord removes record id from the live set.
func (ix *Index) DeleteRecord(id cas.ID) error {
	return ix.update(func(txn *badger.Txn) error {
		return txn.Delete(key(prefixRecord, id))
	})
}

// Records calls fn for every live record.
func (ix *Index) Records(fn func(id cas.ID, encoded []byte) error) error {
	return ix.scan(prefixRecord, func(id cas.ID, v []byte) error { return fn(id, v) })
}

// PackInfo describes one indexed pack.
type PackInfo struct {
	ID    cas.ID
	Size  int64
	Blobs int
}

// Packs calls fn for every indexed pack.
func (ix *Index) Packs(fn func(PackInfo) error) error {
	return ix.scan(prefixPack, func(id cas.ID, v []byte) error {
		if len(v) != 12 {
			return fmt.Errorf("index pack entry %s: %w", id.Short(), cas.ErrCorrupt)
		}
		return fn(PackInfo{ID: id, Size: int64(binary.LittleEndian.Uint64(v)), Blobs: int(binary.LittleEndian.Uint32(v[8:]))})
	})
}

// Blobs calls fn for every indexed blob.
func (ix *Index) Blobs(fn func(Location) error) error {
	return ix.scanKeys([]byte{prefixBlob}, 2+cas.IDSize, func(k, v []byte) error {
		bk := cas.BlobKey{Type: cas.BlobType(k[1])}
		copy(bk.ID[:], k[2:])
		loc, err := decodeLocation(bk, v)
		if err != nil {
			return err
		}
		return fn(loc)
	})
}

// scan calls fn with the ID and value of every key under prefix.
func (ix *Index) scan(prefix byte, fn func(cas.ID, []byte) error) error {
	return ix.scanKeys([]byte{prefix}, 1+cas.IDSize, func(k, v []byte) error {
		var id cas.ID
		copy(id[:], k[1:])
		return fn(id, v)
	})
}

// scanKeys calls fn with every key under prefix, each of which must be
// keyLen bytes long, and a copy of its value.
func (ix *Index) scanKeys(prefix []byte, keyLen int, fn func(k, v []byte) error) error {
	return ix.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) != keyLen {
				return fmt.Errorf("index key of %d bytes under %q: %w", len(k), prefix, cas.ErrCorrupt)
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("index read: %w", err)
			}
			if err := fn(k, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// prefixRetired keys packs that garbage collection has dropped from the
// index but whose file may still be on disk: "g" + pack ID -> pack size
// u64le. Such a pack no longer holds any indexed blob; its file is deleted
// next, then the key. A key left by a crash tells the next gc to finish the
// deletion. Readers that do not know the prefix ignore it (every scan is by
// prefix).
const prefixRetired = 'g'

// DeleteBlobs removes the index entries of blobs keys (garbage collection).
// Missing entries are not an error. Large sets are written in several
// transactions; each deleted entry is durable when DeleteBlobs returns.
func (ix *Index) DeleteBlobs(keys []cas.BlobKey) error {
	defer ix.retired.Add(1)
	if len(keys) == 0 {
		return nil
	}
	if ix.readOnly {
		return ErrReadOnly
	}
	if err := ix.room(len(keys), int64(len(keys))*(2+cas.IDSize)); err != nil {
		return fmt.Errorf("delete index entries: %w", err)
	}
	wb := ix.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(blobKey(k)); err != nil {
			return fmt.Errorf("delete index entries: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("delete index entries: %w", err)
	}
	return nil
}

// RetirePack atomically drops pack id from the indexed packs and records it
// as retired (its file awaits deletion). The caller must first make sure no
// blob entry points into the pack.
func (ix *Index) RetirePack(id cas.ID) error {
	defer ix.retired.Add(1)
	err := ix.update(func(txn *badger.Txn) error {
		var size []byte
		item, err := txn.Get(key(prefixPack, id))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			size = binary.LittleEndian.AppendUint64(nil, 0)
		case err != nil:
			return err
		default:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) < 8 {
				return fmt.Errorf("index pack entry %s: %w", id.Short(), cas.ErrCorrupt)
			}
			size = v[:8]
		}
		if err := txn.Delete(key(prefixPack, id)); err != nil {
			return err
		}
		return txn.Set(key(prefixRetired, id), size)
	})
	if err != nil {
		return fmt.Errorf("retire pack %s: %w", id.Short(), err)
	}
	return nil
}

// RetiredPacks calls fn for every retired pack (see RetirePack) with the size
// it had when indexed.
func (ix *Index) RetiredPacks(fn func(id cas.ID, size int64) error) error {
	return ix.scan(prefixRetired, func(id cas.ID, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("index retired pack entry %s: %w", id.Short(), cas.ErrCorrupt)
		}
		return fn(id, int64(binary.LittleEndian.Uint64(v)))
	})
}

// ForgetRetiredPack removes the retired mark of pack id once its file is gone.
func (ix *Index) ForgetRetiredPack(id cas.ID) error {
	err := ix.update(func(txn *badger.Txn) error {
		return txn.Delete(key(prefixRetired, id))
	})
	if err != nil {
		return fmt.Errorf("forget retired pack %s: %w", id.Short(), err)
	}
	return nil
}

// prefixReleased keys the release time of a record ("s" + record ID ->
// unix nanoseconds, u64le): the restore is done and the retention clock
// runs. It lives only in the index; a rebuild from packs forgets it, which
// errs on the side of keeping records.
const prefixReleased = 's'

// SetReleased records that record id was released at t (unix ns).
func (ix *Index) SetReleased(id cas.ID, unixNano int64) error {
	return ix.update(func(txn *badger.Txn) error {
		return txn.Set(key(prefixReleased, id), binary.LittleEndian.AppendUint64(nil, uint64(unixNano)))
	})
}

// Released calls fn for every released record with its release time.
func (ix *Index) Released(fn func(id cas.ID, unixNano int64) error) error {
	return ix.scan(prefixReleased, func(id cas.ID, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("index release entry %s: %w", id.Short(), cas.ErrCorrupt)
		}
		return fn(id, int64(binary.LittleEndian.Uint64(v)))
	})
}

// ForgetReleased drops a record's release mark (when the record is removed).
func (ix *Index) ForgetReleased(id cas.ID) error {
	return ix.update(func(txn *badger.Txn) error {
		return txn.Delete(key(prefixReleased, id))
	})
}
