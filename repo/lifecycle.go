package repo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"smp/cas"
)

// Release marks record id as restored: its retention clock starts at now.
// Releasing twice keeps the first time.
func (r *Repo) Release(id cas.ID, now time.Time) error {
	released, err := r.ReleasedAt()
	if err != nil {
		return err
	}
	if _, ok := released[id]; ok {
		return nil
	}
	if err := r.ix.SetReleased(id, now.UnixNano()); err != nil {
		return fmt.Errorf("release record %s: %w", id.Short(), err)
	}
	return nil
}

// ReleasedAt returns the release time of every released live record.
func (r *Repo) ReleasedAt() (map[cas.ID]time.Time, error) {
	out := map[cas.ID]time.Time{}
	err := r.ix.Released(func(id cas.ID, ns int64) error {
		out[id] = time.Unix(0, ns)
		return nil
	})
	return out, err
}

// Expired returns the released records whose retention has run out at now,
// oldest release first.
func (r *Repo) Expired(retention time.Duration, now time.Time) ([]RecordInfo, error) {
	released, err := r.ReleasedAt()
	if err != nil {
		return nil, err
	}
	records, err := r.Records()
	if err != nil {
		return nil, err
	}
	var out []RecordInfo
	for _, rec := range records {
		if at, ok := released[rec.ID]; ok && !now.Before(at.Add(retention)) {
			out = append(out, rec)
		}
	}
	return out, nil
}

// Drop removes a record entirely from the live set: tombstone, release
// mark and, for a hard-link record, its links.
func (r *Repo) Drop(rec RecordInfo) error {
	if err := r.RemoveRecord(rec.ID); err != nil {
		return err
	}
	if err := r.ix.ForgetReleased(rec.ID); err != nil {
		return fmt.Errorf("forget release of %s: %w", rec.ID.Short(), err)
	}
	if rec.LinkSet != "" {
		return r.RemoveLinks(rec.LinkSet)
	}
	return nil
}

// OrphanLinkSets lists link sets under links/ that no live record names:
// left by a capture that was killed before committing its record. The
// store lock guarantees no capture is running while we look.
func (r *Repo) OrphanLinkSets() ([]string, error) {
	entries, err := os.ReadDir(r.LinkDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list link sets: %w", err)
	}
	records, err := r.Records()
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, rec := range records {
		if rec.LinkSet != "" {
			live[rec.LinkSet] = true
		}
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !live[e.Name()] {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
