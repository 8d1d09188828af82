package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/index"
)

// RebuildReport describes an index rebuilt from packs.
type RebuildReport struct {
	Packs          int      `json:"packs"`
	DamagedPacks   []string `json:"damaged_packs"`
	Blobs          int      `json:"blobs"`
	Records        int      `json:"records"`         // live again
	Removed        int      `json:"removed_records"` // tombstoned, left out
	Incomplete     []string `json:"incomplete_records"`
	OldIndexKeptAt string   `json:"old_index_kept_at,omitempty"`
}

// RebuildIndex recreates the whole index of the store in dir from its pack
// files alone: every pack's trailer is checked against its name and indexed,
// and every record blob becomes live again unless a tombstone names it or a
// blob it needs (tree or chunk) is in no pack, so no dangling record is
// ever made live. The old index directory is set aside first and deleted
// only after the new one is complete, so an interrupted rebuild can be run
// again. Damaged packs are reported and skipped.
func RebuildIndex(dir string) (*RebuildReport, error) {
	cfg, err := readConfig(dir)
	if err != nil {
		return nil, err
	}
	lock, err := lockStore(dir)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	rep := &RebuildReport{DamagedPacks: []string{}, Incomplete: []string{}}
	ixDir := filepath.Join(dir, "index")
	old := ""
	if _, err := os.Stat(ixDir); err == nil {
		old = filepath.Join(dir, "index.old-"+strconv.FormatInt(time.Now().UnixNano(), 10))
		if err := os.Rename(ixDir, old); err != nil {
			return nil, fmt.Errorf("set the old index aside: %w", err)
		}
	}
	packs, err := cas.NewPackDir(filepath.Join(dir, "packs"))
	if err != nil {
		return nil, err
	}
	defer packs.Close()
	ix, err := index.Open(ixDir)
	if err != nil {
		return nil, err
	}
	var key [32]byte
	copy(key[:], cfg.HashKey)
	r := &Repo{Dir: dir, Config: cfg, Hasher: cas.NewHasher(key), packs: packs, ix: ix}
	records := map[cas.ID]bool{}
	var tombstones []index.Location
	err = packs.Walk(func(id cas.ID, size int64) error {
		entries, err := packs.ReadTrailer(id)
		if err != nil {
			rep.DamagedPacks = append(rep.DamagedPacks, id.String()+": "+err.Error())
			return nil
		}
		if err := ix.AddPack(id, size, entries); err != nil {
			return err
		}
		rep.Packs++
		rep.Blobs += len(entries)
		for _, e := range entries {
			switch e.Type {
			case cas.BlobRecord:
				records[e.ID] = true
			case cas.BlobTombstone:
				tombstones = append(tombstones, index.Location{Pack: id, PackEntry: e})
			}
		}
		return nil
	})
	if err != nil {
		ix.Close()
		return nil, fmt.Errorf("rebuild index: %w", err)
	}
	for _, loc := range tombstones {
		b, err := r.ReadAt(cas.BlobTombstone, loc, nil)
		if err != nil || len(b) != cas.IDSize {
			continue // an unreadable tombstone cannot remove anything
		}
		var rid cas.ID
		copy(rid[:], b)
		if records[rid] {
			delete(records, rid)
			rep.Removed++
		}
	}
	for rid := range records {
		b, err := r.ReadBlob(cas.BlobRecord, rid, nil)
		if err != nil {
			rep.Incomplete = append(rep.Incomplete, rid.String()+": "+err.Error())
			continue
		}
		rec, err := manifest.DecodeRecord(b)
		if err != nil {
			rep.Incomplete = append(rep.Incomplete, rid.String()+": "+err.Error())
			continue
		}
		if missing := r.missingBlobs(rec.Tree); missing != nil {
			rep.Incomplete = append(rep.Incomplete, rid.String()+": "+missing.Error())
			continue
		}
		if err := ix.PutRecord(rid, b); err != nil {
			ix.Close()
			return nil, err
		}
		rep.Records++
	}
	if err := ix.Close(); err != nil {
		return nil, fmt.Errorf("close rebuilt index: %w", err)
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			rep.OldIndexKeptAt = old
		}
	}
	return rep, nil
}

// missingBlobs reports the first tree or chunk below tree id that is not
// indexed (or a tree that does not decode).
func (r *Repo) missingBlobs(id cas.ID) error {
	t, err := r.LoadTree(id)
	if err != nil {
		return err
	}
	for _, e := range t.Entries {
		switch e.Type {
		case manifest.TypeDir:
			if err := r.missingBlobs(e.Subtree); err != nil {
				return err
			}
		case manifest.TypeFile:
			for _, ch := range e.Chunks {
				if ok, err := r.ix.Has(ch.ID); err != nil || !ok {
					if err == nil {
						err = errors.New("chunk " + ch.ID.Short() + " is in no pack")
					}
					return err
				}
			}
		}
	}
	return nil
}
