package index

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/dgraph-io/badger/v4"

	"smp/cas"
)

// prefixBlobV1 keyed blobs by ID alone in schema version 1: "b" + blob ID
// -> location. A data chunk and a tree with the same ID then shared one
// entry, and whichever was stored first hid the other.
const prefixBlobV1 = 'b'

// readSchema returns the index's schema version string, and whether the
// index has one (a new index has none).
func (ix *Index) readSchema() (string, bool, error) {
	var v []byte
	err := ix.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(versionKey)
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read index schema: %w", err)
	}
	return string(v), true, nil
}

// checkSchema accepts an index of this schema version; a schema 1 index
// opened writable is migrated first. A new index gets the schema key when
// create is set and is refused with ErrNoIndex otherwise.
func (ix *Index) checkSchema(create bool) error {
	v, found, err := ix.readSchema()
	switch {
	case err != nil:
		return err
	case !found && !create:
		return ErrNoIndex
	case !found:
		return ix.setSchema()
	case v == strconv.Itoa(SchemaVersion):
		return nil
	case v == "1" && !ix.readOnly:
		return ix.migrateV1()
	case v == "1":
		return fmt.Errorf("index schema 1 must be migrated to %d by a writable open (any command that writes to the store; or run smp index rebuild): %w", SchemaVersion, ErrSchema)
	}
	return fmt.Errorf("index schema %q, this smp uses %d: run smp index rebuild: %w", v, SchemaVersion, ErrSchema)
}

func (ix *Index) setSchema() error {
	return ix.update(func(txn *badger.Txn) error {
		return txn.Set(versionKey, []byte(strconv.Itoa(SchemaVersion)))
	})
}

// migrateV1 rewrites a schema 1 index to this schema in place: every blob
// entry moves from "b" + ID to "t" + type + ID; its value, which already
// names the type, is unchanged. Steps, each durable before the next and
// each safe to run again: (1) write every typed key, (2) delete the old
// keys, (3) set the schema version. Until (3) the index says version 1, so
// a crash anywhere leaves an index the next writable open migrates again,
// and no smp reads a half-migrated index as complete. The other keys
// (packs, records, retired packs, releases) are the same in both versions.
func (ix *Index) migrateV1() error {
	for _, step := range []string{"write typed keys", "delete old keys"} {
		wb := ix.db.NewWriteBatch()
		err := ix.scanKeys([]byte{prefixBlobV1}, 1+cas.IDSize, func(k, v []byte) error {
			if step == "delete old keys" {
				return wb.Delete(append([]byte(nil), k...))
			}
			if len(v) != locationSize {
				return fmt.Errorf("index entry for %x is %d bytes: %w", k[1:7], len(v), cas.ErrCorrupt)
			}
			bk := cas.BlobKey{Type: cas.BlobType(v[0])}
			copy(bk.ID[:], k[1:])
			return wb.Set(blobKey(bk), v)
		})
		if err == nil {
			err = wb.Flush()
		}
		wb.Cancel()
		if err != nil {
			return fmt.Errorf("migrate index schema 1 to %d: %s: %w (or run smp index rebuild)", SchemaVersion, step, err)
		}
	}
	if err := ix.setSchema(); err != nil {
		return fmt.Errorf("migrate index schema 1 to %d: %w", SchemaVersion, err)
	}
	return nil
}
