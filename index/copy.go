package index

import (
	"bytes"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// CopyTo writes every entry of ix into a new index in dir, opened with o,
// and closes it: the way to move an index under another encryption key
// (or from clear to encrypted), since Badger encrypts a database only when
// it is created, and its key rotation keeps the old data keys. dir must
// not hold an index yet. Only the live version of each key is copied: what
// was deleted or overwritten in ix is not in the copy.
func (ix *Index) CopyTo(dir string, o Options) (err error) {
	dst, err := Open(dir, o)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dst.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close copied index: %w", cerr)
		}
	}()
	wb := dst.db.NewWriteBatch()
	defer wb.Cancel()
	err = ix.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if bytes.Equal(item.Key(), versionKey) {
				continue // Open wrote the schema version
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("index read: %w", err)
			}
			if err := wb.Set(item.KeyCopy(nil), v); err != nil {
				return fmt.Errorf("write copied index: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("write copied index: %w", err)
	}
	return dst.db.Sync()
}
