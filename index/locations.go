package index

import (
	"fmt"

	"smp/cas"
)

// SetLocations points each blob's index entry at the given copy, replacing
// the copy AddPack indexed last (an index rebuild that found several copies
// of a blob and chose one that reads back). The packs must be indexed.
func (ix *Index) SetLocations(locs []Location) error {
	if len(locs) == 0 {
		return nil
	}
	if ix.readOnly {
		return ErrReadOnly
	}
	if err := ix.room(len(locs), int64(len(locs))*(1+cas.IDSize+locationSize)); err != nil {
		return fmt.Errorf("set index entries: %w", err)
	}
	wb := ix.db.NewWriteBatch()
	defer wb.Cancel()
	for _, l := range locs {
		if err := wb.Set(blobKey(l.Key()), encodeLocation(l)); err != nil {
			return fmt.Errorf("set index entry of %s: %w", l.ID.Short(), err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("set index entries: %w", err)
	}
	return nil
}
