package repo

// Records: committing, listing, finding and removing a store's records.

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"smp/cas"
	"smp/cas/manifest"
)

// CommitRecord flushes every pack, stores the record and marks it live. A
// record is visible only after all it references is durable and indexed:
// it fails if any pack failed since the Repo was opened.
func (r *Repo) CommitRecord(rec *manifest.Record) (cas.ID, error) {
	return r.CommitRecordSince(0, rec)
}

// CommitRecordSince is CommitRecord for a caller whose blobs were added
// after mark, or that checked itself that every blob the record references
// is indexed (a server's commit): a pack that failed before, with other
// blobs, does not fail it. On a shared store the record is checked
// against gc's marks with every pack this Repo wrote or reused (a capture
// process's own Repo); a server names its session's packs with
// CommitRecordRefs instead.
func (r *Repo) CommitRecordSince(mark Mark, rec *manifest.Record) (cas.ID, error) {
	var packs []cas.ID
	if r.sh != nil {
		packs = r.touchedPacks()
	}
	return r.CommitRecordRefs(mark, rec, packs)
}

// CommitRecordRefs is CommitRecordSince whose record references blobs in
// packs (the packs it reuses and the ones its blobs were written to). On
// a shared store it fails with ErrCondemned, committing nothing, when gc
// condemned one of them before the record could be seen by the run that
// deletes it (marks.go, checkCondemned and checkCommitted); elsewhere
// packs is not looked at.
func (r *Repo) CommitRecordRefs(mark Mark, rec *manifest.Record, packs []cas.ID) (cas.ID, error) {
	if r.sh != nil {
		// What this Repo touched so far is checked now (by the caller's
		// list or CommitRecordSince's): a server, which names its
		// packs, never lets it grow past its last commit.
		defer r.clearTouched()
	}
	if err := r.FlushSince(mark); err != nil {
		return cas.ID{}, err
	}
	if r.sh != nil {
		if err := r.checkCondemned(packs); err != nil {
			return cas.ID{}, err
		}
	}
	b, err := rec.Encode()
	if err != nil {
		return cas.ID{}, err
	}
	own := r.Mark()
	id, _, err := r.PutBlob(cas.BlobRecord, b)
	if err != nil {
		return cas.ID{}, err
	}
	if err := r.FlushSince(own); err != nil {
		return cas.ID{}, err
	}
	if r.sh != nil {
		if err := r.recheckCommitted(id, packs); err != nil {
			return cas.ID{}, err
		}
	}
	if err := r.ix.PutRecord(id, b); err != nil {
		return cas.ID{}, err
	}
	return id, nil
}

// recheckCommitted runs checkCommitted for record id, just stored: on a
// failure it stores the record's tombstone, so no refresh makes it live,
// and returns the failure.
func (r *Repo) recheckCommitted(id cas.ID, packs []cas.ID) error {
	loc, err := r.ix.Get(cas.BlobRecord, id)
	if err != nil {
		return fmt.Errorf("commit record: %w", err)
	}
	info, err := r.packs.Info(loc.Pack)
	if err != nil {
		return fmt.Errorf("commit record: %w", err)
	}
	cerr := r.checkCommitted(packs, info.Created)
	if cerr == nil {
		return nil
	}
	if err := r.RemoveRecord(id); err != nil {
		return fmt.Errorf("%w (and its tombstone failed: %v)", cerr, err)
	}
	return fmt.Errorf("commit record: %w", cerr)
}

// RecordInfo is a live record and its ID.
type RecordInfo struct {
	ID cas.ID
	*manifest.Record
}

// Records returns every live record, oldest first.
func (r *Repo) Records() ([]RecordInfo, error) {
	var out []RecordInfo
	err := r.ix.Records(func(id cas.ID, b []byte) error {
		rec, err := manifest.DecodeRecord(b)
		if err != nil {
			return fmt.Errorf("record %s: %w", id.Short(), err)
		}
		out = append(out, RecordInfo{ID: id, Record: rec})
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return bytes.Compare(out[i].ID[:], out[j].ID[:]) < 0
	})
	return out, err
}

// ErrNoRecord is returned when no record matches.
var ErrNoRecord = errors.New("no such record")

// FindRecord resolves a record ID or unique ID prefix (at least 4 hex
// digits), or with computer set and ref empty, that computer's newest record.
func (r *Repo) FindRecord(ref, computer string) (RecordInfo, error) {
	records, err := r.Records()
	if err != nil {
		return RecordInfo{}, err
	}
	var found []RecordInfo
	for _, rec := range records {
		if computer != "" && rec.Computer != computer {
			continue
		}
		if ref != "" && !strings.HasPrefix(rec.ID.String(), strings.ToLower(ref)) {
			continue
		}
		found = append(found, rec)
	}
	switch {
	case ref == "" && computer == "":
		return RecordInfo{}, fmt.Errorf("give --record ID or --computer NAME")
	case ref != "" && len(ref) < 4:
		return RecordInfo{}, fmt.Errorf("record ID prefix %q is too short: give at least 4 hex digits", ref)
	case len(found) == 0 && ref != "":
		return RecordInfo{}, fmt.Errorf("record %q: %w (list them with smp records)", ref, ErrNoRecord)
	case len(found) == 0:
		return RecordInfo{}, fmt.Errorf("computer %q has no record: %w (list them with smp records)", computer, ErrNoRecord)
	case ref != "" && len(found) > 1:
		return RecordInfo{}, fmt.Errorf("record prefix %q matches %d records: give more digits", ref, len(found))
	}
	return found[len(found)-1], nil
}

// Record returns live record id by its full ID with one index lookup (no
// scan of every record, as FindRecord does for prefixes).
func (r *Repo) Record(id cas.ID) (RecordInfo, error) {
	b, err := r.ix.Record(id)
	if errors.Is(err, cas.ErrNotFound) {
		return RecordInfo{}, fmt.Errorf("record %s: %w (list them with smp records)", id.Short(), ErrNoRecord)
	}
	if err != nil {
		return RecordInfo{}, err
	}
	rec, err := manifest.DecodeRecord(b)
	if err != nil {
		return RecordInfo{}, fmt.Errorf("record %s: %w", id.Short(), err)
	}
	return RecordInfo{ID: id, Record: rec}, nil
}

// RemoveRecord writes a tombstone (so an index rebuild from packs keeps the
// record removed) and then drops the record from the live set. File data is
// freed later by garbage collection.
func (r *Repo) RemoveRecord(id cas.ID) error {
	mark := r.Mark() // the tombstone is the only blob this flush is for
	if _, _, err := r.PutBlob(cas.BlobTombstone, id[:]); err != nil {
		return fmt.Errorf("remove record %s: %w", id.Short(), err)
	}
	if err := r.FlushSince(mark); err != nil {
		return fmt.Errorf("remove record %s: %w", id.Short(), err)
	}
	if err := r.ix.DeleteRecord(id); err != nil {
		return fmt.Errorf("remove record %s: %w", id.Short(), err)
	}
	return nil
}
