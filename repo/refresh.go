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
	Packs        int      `json:"packs"`   // packs added to the index
	Records      int      `json:"records"` // records made live
	Removed      int      `json:"removed"` // records removed by tombstones
	DamagedPacks []string `json:"damaged_packs,omitempty"`
	Incomplete   []string `json:"incomplete_records,omitempty"`
}

// Refresh brings the index up to date with packs that other writers
// stored since it was built: the cache of a store on S3 that several smp
// share. Each pack the index does not know is indexed from its trailer
// (which lists its blobs, so it is its own index segment); its records
// are made live once every blob they reference is indexed, and its
// tombstones remove theirs. Packs only ever appear whole (one PUT), and a
// writer commits a record only after the packs it references are stored,
// so a record found here never references a pack still being written.
// The caller holds the store's lock (an open Repo).
func (r *Repo) Refresh() (*RefreshReport, error) {
	if r.readOnly {
		return nil, fmt.Errorf("refresh %s: the store was opened read-only", r.Dir)
	}
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
	err := r.packs.Walk(func(id cas.ID, size int64) error {
		if known[id] {
			return nil
		}
		entries, err := r.packs.ReadTrailer(id)
		if err != nil {
			rep.DamagedPacks = append(rep.DamagedPacks, id.String()+": "+err.Error())
			return nil
		}
		if err := r.ix.AddPack(id, size, entries); err != nil {
			return err
		}
		rep.Packs++
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
			continue
		}
		if err := r.ix.PutRecord(rid, b); err != nil {
			return nil, err
		}
		rep.Records++
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
