package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"smp/cas"
	"smp/storage"
)

// Index segments (docs/FORMAT.md, "Index segments"): a writer on a shared
// store (a bucket) lists the packs it committed in immutable segment
// objects, segments/<segment ID>.seg, so that the other smp sharing the
// bucket index them with one GET per segment instead of reading every
// pack's trailer (a HEAD and three ranged GETs each). A segment is written
// after the packs it lists and before Flush returns, so before any record
// referencing them is committed: a record found in the bucket references
// only packs some segment lists, except packs of a writer that died
// between its pack and its segment, which readers find by their trailers.

// segmentPrefix is where segments are named in the storage.
const segmentPrefix = "segments/"

// SegmentGrace is how long a refresh that may wait (a server's periodic
// one, RefreshOptions.Defer) leaves a pack no segment lists to a later
// refresh: its writer lists it at the end of the upload or flush that
// filled it, which is seldom longer. A pack older than this has lost its
// segment (its writer died); the reader that indexes it from its trailer
// then lists it in a segment of its own.
const SegmentGrace = 10 * time.Second

// segmentGrace is SegmentGrace, shortened by tests.
var segmentGrace = SegmentGrace

// segmentEveryPacks is how many packs a writer commits before it lists
// them in a segment without waiting for a flush: a long capture of one
// command is deduplicated against by the other writers as it goes.
const segmentEveryPacks = 64

func segmentName(id cas.ID) string { return segmentPrefix + id.String() + ".seg" }

// parseSegmentName returns the ID of a segment object's name.
func parseSegmentName(name string) (cas.ID, bool) {
	hex, ok := strings.CutSuffix(strings.TrimPrefix(name, segmentPrefix), ".seg")
	if !ok || strings.Contains(hex, "/") {
		return cas.ID{}, false
	}
	id, err := cas.ParseID(hex)
	return id, err == nil
}

// listSegment queues pack p for the next segment this Repo writes.
func (r *Repo) listSegment(p cas.SegmentPack) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unsegmented = append(r.unsegmented, p)
	return len(r.unsegmented)
}

// writeSegments lists every pack queued by listSegment in segments, in
// order; the segments are taken in by this Repo's own index. On a store
// that is not shared it does nothing. What could not be written stays
// queued for the next call.
func (r *Repo) writeSegments() error {
	if !r.shared {
		return nil
	}
	r.segMu.Lock()
	defer r.segMu.Unlock()
	r.mu.Lock()
	packs := r.unsegmented
	r.unsegmented = nil
	r.mu.Unlock()
	if len(packs) == 0 {
		return nil
	}
	done := 0
	s, err := r.segmentSealer()
	for _, g := range cas.SplitSegments(packs) {
		if err != nil {
			break
		}
		b := cas.EncodeSegment(g, s)
		id := cas.SegmentIDOf(b)
		if err = r.st.Put(context.Background(), segmentName(id), b); err != nil {
			err = fmt.Errorf("write index segment: %w", err)
			break
		}
		done += len(g)
		if err = r.ix.AddSegments([]cas.ID{id}); err != nil {
			break
		}
	}
	if done < len(packs) {
		r.mu.Lock()
		r.unsegmented = append(packs[done:len(packs):len(packs)], r.unsegmented...)
		r.mu.Unlock()
	}
	return err
}

// newPackOptions say which packs indexNewPacks takes in.
type newPackOptions struct {
	// known reports the packs the index holds already (nil: none).
	known func(cas.ID) bool
	// deferYoung leaves packs no segment lists that are younger than
	// this, by the storage's clock, to a later call (0: none).
	deferYoung time.Duration
}

// newPacksFound is what indexNewPacks found.
type newPacksFound struct {
	segments, fromSegments, fromTrailers, deferred int
	damaged                                        []string // packs
	damagedSegments                                []string // their packs were read from trailers
}

// indexNewPacks calls add for every pack in the storage that o.known does
// not report, with the entries a segment lists for it when one does (the
// listed size matching the pack's), else the entries of its trailer. The
// segments are listed before the packs: a segment is written after its
// packs, so every pack a listed segment names is in the pack listing that
// follows (unless deleted since), and when no pack is new no segment
// needs reading. A pack whose trailer does not read is reported, not
// added; a damaged segment is reported and its packs read from their
// trailers. Segments read are recorded in the index.
func (r *Repo) indexNewPacks(o newPackOptions, add func(id cas.ID, size int64, entries []cas.PackEntry) error) (*newPacksFound, error) {
	ctx := context.Background()
	found := &newPacksFound{}
	listed := map[cas.ID]int64{}
	if r.st != nil {
		err := storage.Walk(ctx, r.st, segmentPrefix, func(info storage.Info) error {
			if id, ok := parseSegmentName(info.Name); ok {
				listed[id] = info.Size
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list index segments: %w", err)
		}
	}
	var gone []cas.ID
	if err := r.ix.Segments(func(id cas.ID) error {
		if _, ok := listed[id]; ok {
			delete(listed, id)
		} else {
			gone = append(gone, id)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	unknown := map[cas.ID]storage.Info{}
	if err := r.packs.WalkInfo(func(id cas.ID, info storage.Info) error {
		if o.known == nil || !o.known(id) {
			unknown[id] = info
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var read []cas.ID
	for id, size := range listed {
		if len(unknown) > 0 {
			packs, err := r.readSegment(id, size)
			if errors.Is(err, storage.ErrNotFound) {
				continue // compacted away since the listing
			}
			// A segment sealed under a master key this process lacks (one
			// rotated in since it started) is passed over like a damaged
			// one: its packs are then read from their trailers.
			if err != nil && !errors.Is(err, cas.ErrCorrupt) && !errors.Is(err, cas.ErrNoKey) {
				return nil, err
			}
			if err != nil {
				found.damagedSegments = append(found.damagedSegments, id.String()+": "+err.Error())
			}
			for _, p := range packs {
				if info, ok := unknown[p.ID]; ok && info.Size == p.Size {
					if err := add(p.ID, p.Size, p.Entries); err != nil {
						return nil, err
					}
					delete(unknown, p.ID)
					found.fromSegments++
				}
			}
			found.segments++
		}
		// Without a new pack, every pack the segment lists is known.
		read = append(read, id)
	}
	if err := r.indexFromTrailers(o, unknown, found, add); err != nil {
		return nil, err
	}
	if err := r.ix.AddSegments(read); err != nil {
		return nil, err
	}
	return found, r.ix.ForgetSegments(gone)
}

// readSegment reads and decodes segment id of size bytes (as listed).
func (r *Repo) readSegment(id cas.ID, size int64) ([]cas.SegmentPack, error) {
	if size > cas.MaxSegmentSize {
		return nil, fmt.Errorf("%d bytes, over the %d byte limit: %w", size, cas.MaxSegmentSize, cas.ErrCorrupt)
	}
	// Exactly the listed size: an object replaced by a larger one since
	// the listing cannot make this read more than the limit.
	b, err := r.st.Get(context.Background(), segmentName(id), 0, size, nil)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("shorter than listed: %w", cas.ErrCorrupt)
	}
	if err != nil {
		return nil, fmt.Errorf("read index segment %s: %w", id.Short(), err)
	}
	if cas.SegmentIDOf(b) != id {
		return nil, fmt.Errorf("its bytes do not hash to its name: %w", cas.ErrCorrupt)
	}
	return cas.DecodeSegment(b, r.packs.Sealer())
}

// indexFromTrailers adds the packs of unknown, which no segment lists,
// from their trailers: those younger than o.deferYoung are left for a
// later call, and those older than SegmentGrace, whose writer has not
// listed them, are listed in this Repo's next segment.
func (r *Repo) indexFromTrailers(o newPackOptions, unknown map[cas.ID]storage.Info, found *newPacksFound, add func(cas.ID, int64, []cas.PackEntry) error) error {
	if len(unknown) == 0 {
		return nil
	}
	var now time.Time
	if r.st != nil {
		if t, err := r.st.Now(context.Background()); err == nil {
			now = t
		} else if o.deferYoung > 0 {
			return fmt.Errorf("read the storage's clock: %w", err)
		}
	}
	for id, info := range unknown {
		age := now.Sub(info.Created)
		if o.deferYoung > 0 && age < o.deferYoung {
			found.deferred++
			continue
		}
		entries, err := r.packs.ReadTrailer(id)
		if err != nil {
			found.damaged = append(found.damaged, id.String()+": "+err.Error())
			continue
		}
		if err := add(id, info.Size, entries); err != nil {
			return err
		}
		found.fromTrailers++
		if r.shared && !now.IsZero() && age >= segmentGrace {
			r.listSegment(cas.SegmentPack{ID: id, Size: info.Size, Entries: entries})
		}
	}
	return nil
}

// Compaction: every flush of every writer adds a segment, so their number
// grows with the uploads. CompactSegments merges the small ones into few.
const (
	// compactAbove is how many small segments a compaction waits for.
	compactAbove = 256
	// compactAge is how old a segment must be to be merged: every
	// server refreshing every few seconds has read it long before, so
	// none misses the packs it lists when it is deleted.
	compactAge = time.Minute
)

// compactLimits are compactAbove and compactAge, shortened by tests.
var compactLimits = struct {
	above int
	age   time.Duration
}{compactAbove, compactAge}

// CompactReport is what CompactSegments did.
type CompactReport struct {
	Merged  int `json:"segments_merged"`  // small segments read and deleted
	Written int `json:"segments_written"` // segments written in their place
	Packs   int `json:"packs"`            // packs the new segments list
	Dropped int `json:"packs_dropped"`    // listed packs no longer in the storage
}

// CompactSegments merges the small segments (under half of
// cas.MaxSegmentBody) older than a minute into new ones, when there are
// more than compactAbove of them, and deletes them: the new segments are
// written first, so every pack stays listed. A pack no longer in the
// storage (gc deleted it) is left out. Two servers compacting at once
// both write the merged list and both delete the old segments; the
// duplicate listing is harmless and merged by a later compaction. A
// reader that listed a deleted segment and reads it after its deletion
// skips it and finds its packs from their trailers. On a store that is
// not shared it does nothing.
func (r *Repo) CompactSegments() (*CompactReport, error) {
	rep := &CompactReport{}
	if !r.shared || r.readOnly {
		return rep, nil
	}
	ctx := context.Background()
	now, err := r.st.Now(ctx)
	if err != nil {
		return nil, fmt.Errorf("compact index segments: %w", err)
	}
	type seg struct {
		id   cas.ID
		size int64
	}
	var small []seg
	err = storage.Walk(ctx, r.st, segmentPrefix, func(info storage.Info) error {
		if id, ok := parseSegmentName(info.Name); ok && info.Size < cas.MaxSegmentBody/2 && now.Sub(info.Created) >= compactLimits.age {
			small = append(small, seg{id, info.Size})
		}
		return nil
	})
	if err != nil || len(small) <= compactLimits.above {
		return rep, err
	}
	ids := make([]cas.ID, len(small))
	sizes := make([]int64, len(small))
	for i, s := range small {
		ids[i], sizes[i] = s.id, s.size
	}
	return r.rewriteSegments(ctx, ids, sizes)
}

// rewriteBatchBytes is about how many bytes of old segments
// rewriteSegments reads before it writes their packs anew: the packs of
// one batch, with their entries, are what it holds in memory (at most
// this plus one segment), however many segments it rewrites.
var rewriteBatchBytes int64 = cas.MaxSegmentBody

// rewriteSegments writes the packs the segments ids (of the listed sizes)
// list, less those no longer in the storage, into new segments sealed
// under the current key, then deletes the old ones, in batches of about
// rewriteBatchBytes of old segments: a batch's new segments are written
// (and indexed) before its old ones are deleted, and a pack listed by an
// earlier batch is in a segment written already, so every pack stays
// listed at every moment. Besides one batch it holds one entry per pack
// (which packs exist, which it listed), none per blob.
func (r *Repo) rewriteSegments(ctx context.Context, ids []cas.ID, sizes []int64) (*CompactReport, error) {
	rep := &CompactReport{}
	exists := map[cas.ID]int64{}
	if err := r.packs.Walk(func(id cas.ID, size int64) error { exists[id] = size; return nil }); err != nil {
		return nil, err
	}
	listed := map[cas.ID]bool{}
	var b rewriteBatch
	for i, id := range ids {
		sp, err := r.readSegment(id, sizes[i])
		if errors.Is(err, storage.ErrNotFound) {
			continue // another server compacted it
		}
		if err != nil && !errors.Is(err, cas.ErrCorrupt) {
			return nil, err
		}
		for _, p := range sp {
			switch {
			case listed[p.ID]:
			case exists[p.ID] != p.Size:
				rep.Dropped++
			default:
				listed[p.ID] = true
				b.packs = append(b.packs, p)
			}
		}
		b.merged = append(b.merged, id)
		b.bytes += sizes[i]
		if b.bytes >= rewriteBatchBytes {
			if err := r.writeRewriteBatch(ctx, &b, rep); err != nil {
				return nil, err
			}
		}
	}
	if err := r.writeRewriteBatch(ctx, &b, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// rewriteBatch is the part of a rewriteSegments read and not yet written.
type rewriteBatch struct {
	packs  []cas.SegmentPack // to list in new segments
	merged []cas.ID          // old segments whose packs are in packs (or listed already)
	bytes  int64             // the old segments' size
}

// writeRewriteBatch writes b's packs into new segments, indexes them,
// then deletes b's old segments and forgets them, counting in rep; b is
// then empty.
func (r *Repo) writeRewriteBatch(ctx context.Context, b *rewriteBatch, rep *CompactReport) error {
	if len(b.merged) == 0 {
		return nil
	}
	var written []cas.ID
	s, err := r.segmentSealer()
	if err != nil {
		return err
	}
	for _, g := range cas.SplitSegments(b.packs) {
		enc := cas.EncodeSegment(g, s)
		id := cas.SegmentIDOf(enc)
		if err := r.st.Put(ctx, segmentName(id), enc); err != nil {
			return fmt.Errorf("write index segment: %w", err)
		}
		written = append(written, id)
	}
	if err := r.ix.AddSegments(written); err != nil {
		return err
	}
	for _, id := range b.merged {
		if err := r.st.Delete(ctx, segmentName(id)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("delete a merged index segment: %w", err)
		}
	}
	if err := r.ix.ForgetSegments(b.merged); err != nil {
		return err
	}
	rep.Merged += len(b.merged)
	rep.Written += len(written)
	rep.Packs += len(b.packs)
	*b = rewriteBatch{}
	return nil
}

// segmentSealer returns what seals the index segments written now (nil:
// in clear), once its key is confirmed current (sealable).
func (r *Repo) segmentSealer() (*cas.Sealer, error) {
	s := r.packs.Sealer().Pin()
	if s == nil {
		return nil, nil
	}
	if err := r.sealable(s.Current()); err != nil {
		return nil, fmt.Errorf("write index segment: %w", err)
	}
	return s, nil
}
