package repo

import (
	"context"
	"errors"
	"fmt"
	"path"

	"smp/cas"
	"smp/cas/manifest"
	"smp/index"
	"smp/internal/sysfile"
	"smp/repo/report"
)

// Stats are a store's size figures, as GET /v1/stats and smp stats --json
// give them (defined in package report).
type Stats = report.Stats

// Stats computes the store's figures from the index and the pack files.
func (r *Repo) Stats() (*Stats, error) {
	var s Stats
	records, err := r.Records()
	if err != nil {
		return nil, err
	}
	s.Records = len(records)
	released, err := r.ReleasedAt()
	if err != nil {
		return nil, err
	}
	for _, rec := range records {
		s.LogicalBytes += rec.Bytes
		if rec.LinkSet != "" {
			s.LinkRecords++
			s.LinkedFiles += rec.LinkedFiles + rec.ClonedFiles
			s.LinkRecordBytes += rec.Bytes
		}
		if _, ok := released[rec.ID]; ok {
			s.Released++
		} else {
			s.Captured++
		}
	}
	if free, err := FreeBytes(r.Dir); err == nil {
		s.FreeBytes = free
	}
	var storedData uint64
	err = r.ix.Blobs(func(l index.Location) error {
		switch l.Type {
		case cas.BlobData:
			s.Chunks++
			s.UniqueBytes += uint64(l.RawLen)
			storedData += uint64(l.StoredLen)
		case cas.BlobTree:
			s.Trees++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = r.packs.Walk(func(_ cas.ID, size int64) error {
		s.Packs++
		s.StoredBytes += uint64(size)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	if s.StoredBytes > 0 {
		s.DedupeRatio = float64(s.LogicalBytes-s.LinkRecordBytes) / float64(s.StoredBytes)
	}
	if storedData > 0 {
		s.Compression = float64(s.UniqueBytes) / float64(storedData)
	}
	return &s, nil
}

// FreeBytes returns the space an unprivileged writer may still use on the
// filesystem holding dir.
func FreeBytes(dir string) (uint64, error) { return sysfile.FreeBytes(dir) }

// Damage is a blob that a record needs and the store cannot deliver.
type Damage struct {
	Blob   string   `json:"blob"`
	Type   string   `json:"type"`
	Pack   string   `json:"pack,omitempty"`
	Reason string   `json:"reason"`
	Users  []string `json:"affects"` // "record-prefix:path"
}

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Records      int       `json:"records"`
	Trees        int       `json:"trees"`
	Chunks       int       `json:"chunks"`
	BytesRead    uint64    `json:"bytes_read"`
	Damaged      []*Damage `json:"damaged"`
	DamagedFiles int       `json:"damaged_files"`
	// UnindexedPacks are pack files the index lists neither as packs nor
	// as retired: left by a crash between writing a pack and indexing it
	// (gc removes or keeps them), or lost with a damaged index, which may
	// then have lost records too (smp index rebuild brings them back).
	UnindexedPacks []string `json:"unindexed_packs"`
}

// maxAffected caps how many paths one damaged chunk lists in a report.
const maxAffected = 20

// Verify checks that every blob the records reference is indexed and lies
// inside an existing pack; with readData it also reads and re-hashes each
// data chunk (trees and record blobs are always read). Each blob is checked
// once however many records share it.
func (r *Repo) Verify(records []RecordInfo, readData bool, progress func(chunks int)) (*VerifyReport, error) {
	rep := &VerifyReport{Records: len(records), Damaged: []*Damage{}}
	checked := map[cas.BlobKey]*Damage{} // nil value: sound
	packSize := map[cas.ID]int64{}
	var buf []byte
	check := func(id cas.ID, t cas.BlobType) *Damage {
		k := cas.BlobKey{Type: t, ID: id}
		if d, ok := checked[k]; ok {
			return d
		}
		d := r.checkBlob(id, t, readData, packSize, &buf, &rep.BytesRead)
		checked[k] = d
		if d != nil {
			rep.Damaged = append(rep.Damaged, d)
		}
		if t == cas.BlobData {
			rep.Chunks++
			if progress != nil && rep.Chunks%256 == 0 {
				progress(rep.Chunks)
			}
		}
		return d
	}
	affect := func(d *Damage, rec RecordInfo, p string) {
		if len(d.Users) < maxAffected {
			d.Users = append(d.Users, rec.ID.Short()+":"+p)
		} else if len(d.Users) == maxAffected {
			d.Users = append(d.Users, "...")
		}
	}
	if readData && r.ahead != nil {
		// By request (S3): the data chunks are read pack by pack first
		// (verifypacks.go); the walk below finds them in checked.
		if err := r.verifyDataByPack(records, checked, packSize, rep, progress); err != nil {
			return nil, err
		}
	}
	for _, rec := range records {
		// The record blob is the copy an index rebuild makes live again;
		// listing and restore use the index's copy, so nothing else would
		// ever read it. Its damage breaks no file: it is named on its own.
		if d := check(rec.ID, cas.BlobRecord); d != nil {
			if len(d.Users) == 0 {
				d.Reason += " (the record still restores from the index's copy, but an index rebuild would lose it)"
			}
			affect(d, rec, "")
		}
		// Every path is walked (no Seen): a damaged blob names each path of
		// each record it breaks. Blobs are still checked once (check).
		w := manifest.Walker{Load: r,
			Enter: func(id cas.ID, dir string) error {
				if d := check(id, cas.BlobTree); d != nil {
					affect(d, rec, dir+"/")
					return manifest.SkipTree
				}
				rep.Trees++
				return nil
			},
			Tree: func(id cas.ID, dir string, _ *manifest.Tree, err error) error {
				if err != nil {
					d := &Damage{Blob: id.String(), Type: "tree", Reason: err.Error()}
					checked[cas.BlobKey{Type: cas.BlobTree, ID: id}] = d
					rep.Damaged = append(rep.Damaged, d)
					affect(d, rec, dir+"/")
				}
				return nil
			},
			Entry: func(dir string, e *manifest.Entry) error {
				broken := false
				for _, ch := range e.Chunks {
					if d := check(ch.ID, cas.BlobData); d != nil {
						affect(d, rec, path.Join(dir, e.Name))
						broken = true
					}
				}
				if broken {
					rep.DamagedFiles++
				}
				return nil
			},
		}
		if err := w.Walk(context.Background(), rec.Tree); err != nil {
			return nil, err
		}
	}
	unindexed, err := r.unindexedPacks()
	if err != nil {
		return nil, err
	}
	rep.UnindexedPacks = unindexed
	return rep, nil
}

// unindexedPacks lists the committed pack files the index does not know.
func (r *Repo) unindexedPacks() ([]string, error) {
	known := map[cas.ID]bool{}
	if err := r.ix.Packs(func(p index.PackInfo) error { known[p.ID] = true; return nil }); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if err := r.ix.RetiredPacks(func(id cas.ID, _ int64) error { known[id] = true; return nil }); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	out := []string{}
	err := r.packs.Walk(func(id cas.ID, _ int64) error {
		if !known[id] {
			out = append(out, id.String())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify: list packs: %w", err)
	}
	return out, nil
}

func (r *Repo) checkBlob(id cas.ID, t cas.BlobType, readData bool, packSize map[cas.ID]int64, buf *[]byte, read *uint64) *Damage {
	d := &Damage{Blob: id.String(), Type: t.String()}
	loc, err := r.ix.Get(t, id)
	if err != nil {
		d.Reason = "not in the index"
		if !errors.Is(err, cas.ErrNotFound) {
			d.Reason = err.Error()
		}
		return d
	}
	d.Pack = loc.Pack.String()
	if loc.Type != t {
		d.Reason = fmt.Sprintf("indexed as %s, referenced as %s", loc.Type, t)
		return d
	}
	size, ok := packSize[loc.Pack]
	if !ok {
		size, err = r.packs.Stat(loc.Pack)
		if err != nil {
			size = -1
		}
		packSize[loc.Pack] = size
	}
	if size < 0 {
		d.Reason = "pack file is missing"
		return d
	}
	if loc.Offset+uint64(loc.StoredLen) > uint64(size) {
		d.Reason = "pack file is truncated"
		return d
	}
	if readData || t != cas.BlobData {
		data, err := r.packs.ReadBlob(loc.Pack, loc.PackEntry, r.Hasher, *buf)
		if err != nil {
			d.Reason = err.Error()
			return d
		}
		*read += uint64(loc.StoredLen)
		if cap(data) > cap(*buf) {
			*buf = data[:0]
		}
	}
	return nil
}
