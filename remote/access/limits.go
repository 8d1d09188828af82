package access

import "fmt"

// Limits are capacity settings of the store that every server applies
// (smp admin limits), beside its own flags: the stricter of the two
// counts. Zero is no limit. They live in the access file so that every
// smp serve sharing a store on S3 reads them with the tokens.
type Limits struct {
	MaxRecords    int    `json:"max_records,omitempty"`     // live records plus captures in progress
	MaxStoreBytes uint64 `json:"max_store_bytes,omitempty"` // the store's stored bytes plus reservations
	Quota         uint64 `json:"quota,omitempty"`           // new stored bytes per computer
}

// merge returns l with its unset limits taken from o.
func (l Limits) merge(o Limits) Limits {
	if l.MaxRecords == 0 {
		l.MaxRecords = o.MaxRecords
	}
	if l.MaxStoreBytes == 0 {
		l.MaxStoreBytes = o.MaxStoreBytes
	}
	if l.Quota == 0 {
		l.Quota = o.Quota
	}
	return l
}

// SetLimits replaces the store's shared capacity limits (zero: none).
func (s *Store) SetLimits(l Limits) error {
	return s.EditLimits(func(cur *Limits) error { *cur = l; return nil })
}

// EditLimits changes the store's shared capacity limits by edit, applied
// to the limits as they are in the file when it is written (so two
// administrators changing different limits at once both count).
func (s *Store) EditLimits(edit func(*Limits) error) error {
	return s.update(func(f *file) error {
		l := f.Limits
		if err := edit(&l); err != nil {
			return err
		}
		if l.MaxRecords < 0 {
			return fmt.Errorf("negative record limit %d", l.MaxRecords)
		}
		if f.Limits == l {
			return errNoChange
		}
		f.Limits = l
		return nil
	})
}

// Limits returns the store's shared capacity limits.
func (sn *Snapshot) Limits() Limits { return sn.limits }
