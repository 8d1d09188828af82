package index

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"smp/cas"
)

// prefixSegment keys the index segments (cas.DecodeSegment) this index
// has taken in: "e" + segment ID -> nothing. A refresh reads only the
// segments the bucket lists that the index does not key yet. Readers that
// do not know the prefix ignore it (every scan is by prefix), and a
// rebuild starts without any, so it reads every segment once.
const prefixSegment = 'e'

// AddSegments records segments ids as taken in.
func (ix *Index) AddSegments(ids []cas.ID) error {
	if len(ids) == 0 {
		return nil
	}
	return ix.segmentKeys(ids, func(txn *badger.Txn, k []byte) error { return txn.Set(k, nil) })
}

// Segments calls fn for every segment taken in.
func (ix *Index) Segments(fn func(id cas.ID) error) error {
	return ix.scan(prefixSegment, func(id cas.ID, _ []byte) error { return fn(id) })
}

// ForgetSegments removes segments ids (no longer in the bucket: compacted).
func (ix *Index) ForgetSegments(ids []cas.ID) error {
	if len(ids) == 0 {
		return nil
	}
	return ix.segmentKeys(ids, func(txn *badger.Txn, k []byte) error { return txn.Delete(k) })
}

// segmentKeys applies op to the keys of ids, a bounded number per
// transaction.
func (ix *Index) segmentKeys(ids []cas.ID, op func(*badger.Txn, []byte) error) error {
	for len(ids) > 0 {
		n := min(len(ids), 256)
		err := ix.update(func(txn *badger.Txn) error {
			for _, id := range ids[:n] {
				if err := op(txn, key(prefixSegment, id)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("index segments: %w", err)
		}
		ids = ids[n:]
	}
	return nil
}
