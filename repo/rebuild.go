package repo

import (
	"context"
	"encoding/binary"
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
	Packs        int      `json:"packs"`
	FromSegments int      `json:"packs_from_segments"` // of which listed by an index segment
	DamagedPacks []string `json:"damaged_packs"`
	// DamagedSegments are index segments that did not decode: their
	// packs were read from their trailers, so the index misses nothing.
	DamagedSegments []string `json:"damaged_segments,omitempty"`
	Blobs           int      `json:"blobs"`
	Records         int      `json:"records"`         // live again
	Removed         int      `json:"removed_records"` // tombstoned, left out
	Incomplete      []string `json:"incomplete_records"`
	// Duplicates is how many blobs were found in more than one pack (a
	// repair's new copy beside the damaged one, or a pack written twice);
	// each such blob is indexed at a copy that reads back.
	Duplicates int `json:"duplicated_blobs"`
	// Unreadable lists duplicated blobs none of whose copies reads back:
	// one of them is indexed anyway, and verify will name it.
	Unreadable     []string `json:"unreadable_duplicates"`
	OldIndexKeptAt string   `json:"old_index_kept_at,omitempty"`
}

// rebuildHook, when set by a test, runs at named points of RebuildIndex;
// an error stops the rebuild there, as a crash would.
var rebuildHook func(point string) error

// RebuildIndex recreates the whole index of the store in dir from its pack
// files alone: every pack's trailer is checked against its name and indexed,
// and every record blob becomes live again unless a tombstone names it or a
// blob it needs (tree or chunk) is in no pack, so no dangling record is
// ever made live. Damaged packs are reported and skipped.
//
// A blob found in several packs is indexed at a copy that reads back
// (decompressed and re-hashed): after smp verify --repair and before gc,
// the damaged copy is still in its old pack and may be read last. Only such
// blobs are read, so the cost stays that of reading the trailers.
//
// The new index is built in index.rebuild and swapped in only when
// complete: an interrupted rebuild leaves either the old index or no index
// at all (which every command refuses, saying to rebuild), never a partial
// one that would look like a store with fewer records.
func RebuildIndex(dir string) (*RebuildReport, error) { return RebuildIndexWith(dir, OpenOptions{}) }

// RebuildIndexWith is RebuildIndex with the keys of o: an encrypted
// store's index is rebuilt encrypted under the keyring's current index key.
func RebuildIndexWith(dir string, o OpenOptions) (*RebuildReport, error) {
	lo, err := openLocked(dir, o)
	if err != nil {
		return nil, err
	}
	lo.st.Close()
	cfg, c, lock := lo.cfg, lo.c, lo.lock
	defer lock.Close()
	rep := &RebuildReport{DamagedPacks: []string{}, Incomplete: []string{}, Unreadable: []string{}}
	ixDir := filepath.Join(dir, "index")
	newDir := filepath.Join(dir, "index.rebuild")
	if err := os.RemoveAll(newDir); err != nil { // left by an interrupted rebuild
		return nil, fmt.Errorf("remove an unfinished rebuild: %w", err)
	}
	st, err := openStorage(dir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	packs := c.packs(st)
	defer packs.Close()
	ix, err := index.Open(newDir, c.index)
	if err != nil {
		return nil, err
	}
	r := &Repo{Dir: dir, Config: cfg, Hasher: hasherOf(cfg, lo.kr), Keyring: lo.kr, st: st, packs: packs, ix: ix}
	if err := r.rebuildInto(rep); err != nil {
		ix.Close()
		return nil, fmt.Errorf("rebuild index: %w", err)
	}
	if err := ix.Close(); err != nil {
		return nil, fmt.Errorf("close rebuilt index: %w", err)
	}
	if rebuildHook != nil {
		if err := rebuildHook("built"); err != nil {
			return nil, err
		}
	}
	old := ""
	if _, err := os.Stat(ixDir); err == nil {
		old = filepath.Join(dir, "index.old-"+strconv.FormatInt(time.Now().UnixNano(), 10))
		if err := os.Rename(ixDir, old); err != nil {
			return nil, fmt.Errorf("set the old index aside: %w", err)
		}
	}
	if rebuildHook != nil {
		if err := rebuildHook("old set aside"); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(newDir, ixDir); err != nil {
		return nil, fmt.Errorf("put the rebuilt index in place: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			rep.OldIndexKeptAt = old
		}
	}
	return rep, nil
}

// rebuildInto indexes every pack into r's (new) index and makes records live.
func (r *Repo) rebuildInto(rep *RebuildReport) error {
	records := map[cas.ID]bool{}
	var tombstones []index.Location
	// Duplicates are found without keeping every ID: a map of 8-byte
	// prefixes flags candidates, and a second pass over the trailers, run
	// only when there are some, gathers the candidates' copies. A blob is
	// its type and ID: a chunk with a tree's ID is no copy of the tree.
	seen := make(map[uint64]struct{})
	candidates := map[cas.BlobKey][]index.Location{}
	// Every pack: from the index segment that lists it, or its trailer.
	found, err := r.indexNewPacks(newPackOptions{}, func(id cas.ID, size int64, entries []cas.PackEntry) error {
		if err := r.ix.AddPack(id, size, entries); err != nil {
			return err
		}
		rep.Packs++
		rep.Blobs += len(entries)
		for _, e := range entries {
			p := binary.LittleEndian.Uint64(e.ID[:8])
			if _, ok := seen[p]; ok {
				candidates[e.Key()] = nil
			} else {
				seen[p] = struct{}{}
			}
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
		return err
	}
	rep.DamagedPacks = append(rep.DamagedPacks, found.damaged...)
	rep.DamagedSegments = found.damagedSegments
	rep.FromSegments = found.fromSegments
	seen = nil
	if len(candidates) > 0 {
		if err := r.pickReadableCopies(candidates, rep); err != nil {
			return err
		}
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
		if err := r.ix.PutRecord(rid, b); err != nil {
			return err
		}
		rep.Records++
	}
	return nil
}

// pickReadableCopies gathers every copy of the candidate blobs (keys of
// copies) and, for each blob found in more than one pack, indexes a copy
// that reads back: the one AddPack left indexed when it does, else the
// first other that does. When none does, the indexed one stays and the blob
// is reported.
func (r *Repo) pickReadableCopies(copies map[cas.BlobKey][]index.Location, rep *RebuildReport) error {
	err := r.packs.Walk(func(id cas.ID, _ int64) error {
		entries, err := r.packs.ReadTrailer(id)
		if err != nil {
			return nil // reported by the first pass
		}
		for _, e := range entries {
			if locs, ok := copies[e.Key()]; ok {
				copies[e.Key()] = append(locs, index.Location{Pack: id, PackEntry: e})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var buf []byte
	readable := func(l index.Location) error {
		data, err := r.packs.ReadBlob(l.Pack, l.PackEntry, r.Hasher, buf)
		if err == nil && cap(data) > cap(buf) {
			buf = data[:0]
		}
		return err
	}
	var moved []index.Location
	for k, locs := range copies {
		if len(locs) < 2 {
			continue // an 8-byte prefix shared by two different blobs
		}
		rep.Duplicates++
		cur, err := r.ix.Get(k.Type, k.ID)
		if err != nil {
			return err
		}
		firstErr := readable(cur)
		if firstErr == nil {
			continue
		}
		found := false
		for _, l := range locs {
			if l.Pack == cur.Pack && l.Offset == cur.Offset {
				continue
			}
			if readable(l) == nil {
				moved = append(moved, l)
				found = true
				break
			}
		}
		if !found {
			rep.Unreadable = append(rep.Unreadable, fmt.Sprintf("%s %s: none of its %d copies reads back: %v", cur.Type, k.ID, len(locs), firstErr))
		}
	}
	return r.ix.SetLocations(moved)
}

// missingBlobs reports the first tree or chunk below tree id that is not
// indexed (or a tree that does not decode).
func (r *Repo) missingBlobs(id cas.ID) error {
	w := manifest.Walker{Load: r, Seen: map[cas.BlobKey]struct{}{}, Chunk: func(ch cas.ID, _ *manifest.Entry) error {
		if ok, err := r.ix.Has(cas.BlobData, ch); err != nil || !ok {
			if err == nil {
				err = errors.New("chunk " + ch.Short() + " is in no pack")
			}
			return err
		}
		return nil
	}}
	return w.Walk(context.Background(), id)
}

// syncDir makes renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
