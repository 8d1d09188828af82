package repo

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"

	"smp/cas"
	"smp/index"
	"smp/keys"
)

// ErrIndexLost is returned when a store holds packs but its index is
// missing or new: opening it would show an empty store.
var ErrIndexLost = errors.New("index is missing")

// openIndex opens the store's index. A new, empty index is created only
// while the store holds no pack: smp init writes no index, and the first
// open writes the index's schema key before any pack can exist (packs are
// written only through an open Repo), so packs beside a missing or new
// index mean the index was lost (deleted, or an interrupted rebuild). Its
// errors are one line and say how to recover.
func openIndex(dir string, packs *cas.PackDir, readOnly bool, c crypt) (*index.Index, keys.KeyID, error) {
	ixDir := filepath.Join(dir, "index")
	if readOnly {
		if ix, kid, err := c.openIndexWith(func(o index.Options) (*index.Index, error) { return index.OpenReadOnly(ixDir, o) }); err == nil {
			return ix, kid, nil
		} // a writable open creates, repairs or explains it
	}
	ix, kid, err := c.openIndexWith(func(o index.Options) (*index.Index, error) { return index.OpenExisting(ixDir, o) })
	if errors.Is(err, index.ErrNoIndex) {
		var found bool
		found, err = hasPacks(packs)
		switch {
		case err != nil:
			return nil, 0, fmt.Errorf("open index: list packs: %w", err)
		case found:
			return nil, 0, fmt.Errorf("%s holds packs but its index is missing or empty, so the store would look empty: run smp index rebuild --store %s: %w", dir, dir, ErrIndexLost)
		}
		ix, err = index.Open(ixDir, c.index)
		kid = c.current
	}
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return nil, 0, oneLineError{err} // names the store's index; no rebuild advice
		}
		if errors.Is(err, index.ErrWrongKey) {
			err = fmt.Errorf("%s: %w: open it with the store's own key", dir, err)
		} else if errors.Is(err, index.ErrDamaged) {
			err = fmt.Errorf("%w: run smp index rebuild --store %s (it rebuilds the index from the packs)", err, dir)
		} else {
			err = fmt.Errorf("%w (if the index is damaged or lost, run smp index rebuild --store %s)", err, dir)
		}
		return nil, 0, oneLineError{err}
	}
	return ix, kid, nil
}

var errFound = errors.New("found")

// hasPacks reports whether the store holds at least one committed pack.
func hasPacks(packs *cas.PackDir) (bool, error) {
	err := packs.Walk(func(cas.ID, int64) error { return errFound })
	if errors.Is(err, errFound) {
		return true, nil
	}
	return false, err
}

// oneLineError prints a wrapped error on one line: Badger's messages may
// span several.
type oneLineError struct{ err error }

func (e oneLineError) Error() string { return strings.Join(strings.Fields(e.err.Error()), " ") }
func (e oneLineError) Unwrap() error { return e.err }
