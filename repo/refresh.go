package repo

import (
	"fmt"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/index"
)

// RefreshReport is what Refresh found in the storage.
type RefreshReport struct {
	Packs        int      `json:"packs"`               // packs added to the index
	FromSegments int      `json:"packs_from_segments"` // of which listed by an index segment
	Segments     int      `json:"segments_read"`       // index segments read
	Deferred     int      `json:"packs_deferred"`      // young packs no segment lists yet, left for later
	Records      int      `json:"records"`             // records made live
	Removed      int      `json:"removed"`             // records removed by tombstones
	DamagedPacks []string `json:"damaged_packs,omitempty"`
	// DamagedSegments are index segments that did not decode: their
	// packs were read from their trailers, so the index misses nothing.
	DamagedSegments []string `json:"damaged_segments,omitempty"`
	Incomplete      []string `json:"incomplete_records,omitempty"`
}

// RefreshOptions configure RefreshWith.
type RefreshOptions struct {
	// Defer leaves packs that no index segment lists and that are
	// younger than this to a later refresh, when their writer has
	// listed them (a server refreshing every few seconds passes
	// SegmentGrace); 0 reads their trailers now.
	Defer time.Duration
}

// Refresh is RefreshWith without deferring any pack.
func (r *Repo) Refresh() (*RefreshReport, error) { return r.RefreshWith(RefreshOptions{}) }

// RefreshWith brings the index up to date with packs that other writers
// stored since it was built: the cache of a store on S3 that several smp
// share. Each pack the index does not know is indexed from the index
// segment that lists it, or else from its trailer (segments.go); its
// records are made live once every blob they reference is indexed (a
// record found early is tried again by the next refresh), and its
// tombstones remove theirs. Packs only ever appear whole (one PUT), and a
// writer commits a record only after the packs it references are stored,
// so a record found here never references a pack still being written.
// The caller holds the store's lock (an open Repo).
func (r *Repo) RefreshWith(o RefreshOptions) (*RefreshReport, error) {
	if r.readOnly {
		return nil, fmt.Errorf("refresh %s: the store was opened read-only", r.Dir)
	}
	// One refresh at a time: each takes the records still incomplete and
	// leaves the ones still waiting, which two at once would lose.
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	start := time.Now()
	known := map[cas.ID]bool{}
	if err := r.ix.Packs(func(p index.PackInfo) error { known[p.ID] = true; return nil }); err != nil {
		return nil, err
	}
	if err := r.ix.RetiredPacks(func(id cas.ID, _ int64) error { known[id] = true; return nil }); err != nil {
		return nil, err
	}
	rep := &RefreshReport{}
	var records []cas.ID
	var tombstones []index.Location
	found, err := r.indexNewPacks(newPackOptions{known: func(id cas.ID) bool { return known[id] }, deferYoung: o.Defer},
		func(id cas.ID, size int64, entries []cas.PackEntry) error {
			if err := r.ix.AddPack(id, size, entries); err != nil {
				return err
			}
			for _, e := range entries {
				switch e.Type {
				case cas.BlobRecord:
					records = append(records, e.ID)
				case cas.BlobTombstone:
					tombstones = append(tombstones, index.Location{Pack: id, PackEntry: e})
				}
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("refresh the index: %w", err)
	}
	rep.Packs = found.fromSegments + found.fromTrailers
	rep.FromSegments, rep.Segments, rep.Deferred = found.fromSegments, found.segments, found.deferred
	rep.DamagedPacks, rep.DamagedSegments = found.damaged, found.damagedSegments
	removed := map[cas.ID]bool{}
	for _, loc := range tombstones {
		b, err := r.ReadAt(cas.BlobTombstone, loc, nil)
		if err != nil || len(b) != cas.IDSize {
			continue // an unreadable tombstone cannot remove anything
		}
		var rid cas.ID
		copy(rid[:], b)
		removed[rid] = true
	}
	r.mu.Lock()
	for rid := range r.incomplete {
		records = append(records, rid)
	}
	r.incomplete = nil
	r.mu.Unlock()
	if err := r.liveRecords(records, removed, rep); err != nil {
		return nil, err
	}
	for rid := range removed {
		if _, err := r.ix.Record(rid); err != nil {
			continue
		}
		if err := r.ix.DeleteRecord(rid); err != nil {
			return nil, err
		}
		rep.Removed++
	}
	if err := r.refreshShared(start); err != nil {
		return nil, fmt.Errorf("refresh the index: %w", err)
	}
	return rep, nil
}

// liveRecords makes the records found live unless removed, once every
// blob they reference is indexed; the others are kept for the next
// refresh.
func (r *Repo) liveRecords(records []cas.ID, removed map[cas.ID]bool, rep *RefreshReport) error {
	incomplete := map[cas.ID]bool{}
	for _, rid := range records {
		if removed[rid] {
			continue
		}
		if _, err := r.ix.Record(rid); err == nil {
			continue // live already
		}
		b, err := r.ReadBlob(cas.BlobRecord, rid, nil)
		if err == nil {
			var rec *manifest.Record
			if rec, err = manifest.DecodeRecord(b); err == nil {
				err = r.missingBlobs(rec.Tree)
			}
		}
		if err != nil {
			rep.Incomplete = append(rep.Incomplete, rid.String()+": "+err.Error())
			incomplete[rid] = true
			continue
		}
		if err := r.ix.PutRecord(rid, b); err != nil {
			return err
		}
		rep.Records++
	}
	r.mu.Lock()
	r.incomplete = incomplete
	r.mu.Unlock()
	return nil
}
