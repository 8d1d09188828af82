package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"smp/cas"
	"smp/storage"
)

// gc on a store several smp share (a bucket): time-delayed two-phase
// deletion. docs/FORMAT.md ("gc on a shared store") gives the argument;
// in short, one run:
//
//  1. reads the storage's clock (now), then refreshes the index: every
//     pack, record and tombstone any writer stored before now, and every
//     marks object (condemned packs; their replacement packs indexed);
//  2. sweeps: a condemned pack whose newest mark is older than that mark's
//     grace is deleted when every live blob in it is located in one of the
//     replacement packs its marks name; otherwise (a capture reused one
//     of its blobs after all) the live blobs are copied out and the pack
//     is condemned again, to wait a whole grace more;
//  3. marks: every pack older than the grace with no live blob located in
//     it, or whose live fraction is below RepackBelow, is condemned: the
//     live blobs it holds that are not already in a pack nobody condemned
//     are copied to new packs, then one new marks object names the
//     condemned packs and the packs that hold their live blobs;
//  4. deletes the marks objects whose packs are all gone, and aborts the
//     multipart uploads older than the grace.
//
// Nothing is deleted in the run that condemns it, and a pack is never
// deleted before every writer has had a whole grace to see its mark: a
// writer answers "not held" for a condemned pack's blobs, and a commit
// refuses to reference one whose mark ripens before its record is surely
// listed (marks.go).

// gcShared is GC on a shared store.
func (r *Repo) gcShared(ctx context.Context, opts GCOptions, start time.Time) (*GCReport, error) {
	if opts.Rekey && r.Keyring == nil {
		return nil, fmt.Errorf("gc --rekey: store %s is not encrypted (smp encrypt converts it)", r.Dir)
	}
	if opts.Grace <= 0 {
		return nil, errors.New("gc of a store on S3 needs a grace: give --grace")
	}
	rep := &GCReport{DryRun: opts.DryRun, RepackBelow: opts.RepackBelow, Problems: []string{}, GraceSeconds: opts.Grace.Seconds()}
	now, err := r.storageNow(opts)
	if err != nil {
		return nil, err
	}
	if _, err := r.Refresh(); err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	opts.Now = func() time.Time { return now } // one clock reading for the whole run
	g := &gcRun{r: r, opts: opts, rep: rep, rewritten: map[cas.ID]bool{}}
	// The packs' ages from one listing, not a request per pack.
	if g.created, err = r.packTimes(ctx); err != nil {
		return nil, err
	}
	if g.live, rep.Records, err = r.gcMark(ctx); err != nil {
		return nil, err
	}
	if opts.Pinned != nil {
		opts.Pinned(func(k cas.BlobKey) { g.live[k] = struct{}{} })
	}
	r.sh.mu.Lock()
	cond := make(map[cas.ID]condemnation, len(r.sh.condemned))
	for id, c := range r.sh.condemned {
		cond[id] = c
	}
	r.sh.mu.Unlock()
	s := &sharedRun{gcRun: g, now: now, cond: cond, deleted: map[cas.ID]bool{}}
	if err := s.sweep(ctx); err != nil {
		return nil, err
	}
	removed := rep.BlobsRemoved
	if err := g.account(); err != nil {
		return nil, err
	}
	rep.BlobsRemoved = removed // account counts what a local gc would drop
	if err := s.mark(ctx); err != nil {
		return nil, err
	}
	if !opts.DryRun {
		if err := s.cleanMarks(ctx); err != nil {
			return nil, err
		}
		if a, ok := r.st.(storage.UploadAborter); ok {
			n, err := a.AbortUploads(ctx, now.Add(-opts.Grace))
			rep.UploadsAborted = n
			if err != nil {
				rep.Problems = append(rep.Problems, err.Error())
			}
		}
	}
	r.packs.Close()
	if opts.Rekey && !opts.DryRun {
		if err := r.finishRekey(rep); err != nil {
			return nil, err
		}
	}
	rep.BytesFreed = rep.BytesDeleted - rep.BytesWritten
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// packTimes lists every pack with its creation time (storage clock).
func (r *Repo) packTimes(ctx context.Context) (map[cas.ID]time.Time, error) {
	out := map[cas.ID]time.Time{}
	err := storage.Walk(ctx, r.st, packPrefix, func(info storage.Info) error {
		base := info.Name[strings.LastIndexByte(info.Name, '/')+1:]
		name, ok := strings.CutSuffix(base, ".pack")
		if !ok {
			return nil
		}
		if id, err := cas.ParseID(name); err == nil {
			out[id] = info.Created
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gc: list packs: %w", err)
	}
	return out, nil
}

// storageNow is the storage's clock, never this machine's (opts.Now, which
// Maintain always sets, dates only the records' retention): marks are
// timed by the objects' Last-Modified and the writers judge a mark's age
// by the same clock, so a gc machine whose clock runs ahead must not find
// a mark ripe before they do.
func (r *Repo) storageNow(GCOptions) (time.Time, error) {
	t, err := r.st.Now(context.Background())
	if err != nil {
		return time.Time{}, fmt.Errorf("gc: read the storage's clock: %w", err)
	}
	return t, nil
}

// sharedRun is the state of one gc run on a shared store.
type sharedRun struct {
	*gcRun
	now    time.Time
	cond   map[cas.ID]condemnation // the marks as the run's refresh read them
	remark []cas.ID                // ripe packs a live blob kept: condemned again
	// deleted are the packs this run deleted: their marks stay at
	// least until the next run, so every writer's refresh meanwhile
	// learns from them that the packs are gone.
	deleted map[cas.ID]bool
}

func (s *sharedRun) isLive(k cas.BlobKey) bool {
	if k.Type == cas.BlobTombstone {
		return true
	}
	_, ok := s.live[k]
	return ok
}

func sortedIDs[V any](m map[cas.ID]V) []cas.ID {
	ids := make([]cas.ID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b cas.ID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// sweep deletes the ripe condemned packs whose live blobs all have a copy
// in a replacement pack of their marks, and sets the others aside for
// condemning again.
func (s *sharedRun) sweep(ctx context.Context) error {
	r, rep := s.r, s.rep
	for _, id := range sortedIDs(s.cond) {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := s.cond[id]
		if !c.ripe(s.now) {
			rep.PacksWaiting++
			continue
		}
		info, err := r.packs.Info(id)
		if errors.Is(err, cas.ErrNotFound) {
			continue // deleted by an earlier run; the refresh forgot it
		}
		if err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		if !info.Created.Before(c.at) {
			// Written again since its mark (a writer stored the same
			// blobs anew, and packs are named by their contents): not
			// the object condemned. Its writer's commit was timed
			// against the mark (checkCommitted).
			continue
		}
		entries, err := r.packs.ReadTrailer(id)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("condemned pack %s kept: %v", id.Short(), err))
			continue
		}
		keep := false
		var here []cas.BlobKey // index entries pointing into the pack
		for _, e := range entries {
			loc, err := r.ix.Get(e.Type, e.ID)
			if err != nil && !errors.Is(err, cas.ErrNotFound) {
				return fmt.Errorf("gc: %w", err)
			}
			located := err == nil
			if located && loc.Pack == id {
				here = append(here, e.Key())
			}
			if !s.isLive(e.Key()) {
				continue
			}
			if !located || loc.Pack == id || !c.replacements[loc.Pack] {
				keep = true
				continue
			}
			if _, bad := s.cond[loc.Pack]; bad {
				keep = true
			}
		}
		if keep {
			s.remark = append(s.remark, id)
			continue
		}
		rep.PacksDeleted++
		rep.BytesDeleted += info.Size
		rep.BlobsRemoved += len(here)
		if s.opts.DryRun {
			continue
		}
		// As a local gc retires a pack: no index entry ever names a
		// pack that is gone (a crash leaves a retired pack, which the
		// next refresh forgets once it is gone).
		if err := r.ix.DeleteBlobs(here); err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		if err := r.ix.RetirePack(id); err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		if err := r.packs.Remove(id); err != nil && !errors.Is(err, cas.ErrNotFound) {
			return fmt.Errorf("gc: delete pack: %w", err)
		}
		if err := r.ix.ForgetRetiredPack(id); err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		s.deleted[id] = true
	}
	return nil
}

// mark condemns the packs older than the grace that hold no live blob
// located there, or too few, and the ripe ones sweep set aside: their
// live blobs not already held by a pack nobody condemned are copied to
// new packs first; then one marks object names them all with the packs
// holding their live blobs.
func (s *sharedRun) mark(ctx context.Context) error {
	r, rep := s.r, s.rep
	condemn := map[cas.ID]bool{}
	for _, id := range s.remark {
		condemn[id] = true
	}
	empty, sparse := s.plan()
	if s.opts.Rekey {
		// Every pack under another key, but those condemned already.
		sparse = s.planRekey(slices.Concat(empty, sortedIDs(s.cond)), sparse) // rekey_shared.go
	}
	for _, list := range [][]cas.ID{empty, sparse} {
		for _, id := range list {
			if _, done := s.cond[id]; !done {
				condemn[id] = true
			}
		}
	}
	if len(condemn) == 0 {
		return nil
	}
	w := &gcWriter{r: r, dry: s.opts.DryRun, rep: rep}
	defer w.abort()
	repl := map[cas.ID]bool{}
	copied := map[cas.BlobKey]bool{}
	var marked []cas.ID
	for _, id := range sortedIDs(condemn) {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := r.packs.ReadTrailer(id)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("pack %s not condemned: %v", id.Short(), err))
			continue
		}
		var move []cas.PackEntry
		for _, e := range entries {
			if !s.isLive(e.Key()) || copied[e.Key()] {
				continue
			}
			loc, err := r.ix.Get(e.Type, e.ID)
			if err != nil && !errors.Is(err, cas.ErrNotFound) {
				return fmt.Errorf("gc: %w", err)
			}
			_, oldCond := s.cond[loc.Pack]
			if err == nil && !condemn[loc.Pack] && !oldCond {
				repl[loc.Pack] = true
				continue
			}
			move = append(move, e)
		}
		if err := r.gcCopyEntries(w, id, move); err != nil {
			if errors.Is(err, errCopyProblem) {
				rep.Problems = append(rep.Problems, fmt.Sprintf("pack %s not condemned: %v", id.Short(), err))
				continue
			}
			return err
		}
		for _, e := range move {
			copied[e.Key()] = true
		}
		if len(move) > 0 {
			rep.PacksRewritten++
		}
		marked = append(marked, id)
	}
	if err := w.finish(); err != nil {
		return err
	}
	written := map[cas.ID]bool{}
	for _, id := range w.written {
		repl[id] = true
		written[id] = true
	}
	// A copy named as the pack it copies (the same blobs in the same
	// order: packs are named by their contents) is that pack: keep it.
	marked = slices.DeleteFunc(marked, func(id cas.ID) bool { return written[id] })
	rep.PacksMarked = len(marked)
	if s.opts.DryRun || len(marked) == 0 {
		return nil
	}
	if err := s.leaveSecondOf(ctx, marked); err != nil {
		return err
	}
	m := &marksObject{grace: s.opts.Grace, condemned: marked, replacements: sortedIDs(repl)}
	// The copies are stored (and indexed here) before the marks object
	// that names them, so every writer that sees the mark finds them.
	if err := r.st.PutIfAbsent(ctx, marksName(s.now), encodeMarks(m)); err != nil {
		return fmt.Errorf("gc: write marks: %w", err)
	}
	return r.loadMarks(ctx)
}

// leaveSecondOf returns once the storage's clock has left the second in
// which the newest of packs was written. A storage with whole-second
// times (S3's Last-Modified) would date a marks object written in that
// second the same as the pack, and a pack not older than its mark reads
// as written again since (revived, kept): gc --rekey right after a
// capture would keep the capture's packs under the old key. Times with a
// fraction of a second are already ordered: no wait.
func (s *sharedRun) leaveSecondOf(ctx context.Context, packs []cas.ID) error {
	var newest time.Time
	for _, id := range packs {
		if t := s.created[id]; t.After(newest) {
			newest = t
		}
	}
	if newest.IsZero() || newest.Nanosecond() != 0 {
		return nil
	}
	for range 10 { // the storage's clock; a second or so at most
		now, err := s.r.st.Now(ctx)
		if err != nil {
			return fmt.Errorf("gc: read the storage's clock: %w", err)
		}
		if now.Truncate(time.Second).After(newest) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(newest.Add(time.Second).Sub(now) + 50*time.Millisecond):
		}
	}
	return nil // a clock that does not advance: the pack is kept, the safe side
}

// errCopyProblem wraps a live blob that cannot be copied (damaged): its
// pack is kept whole.
var errCopyProblem = errors.New("cannot copy a live blob")

// gcCopyEntries copies the given blobs of pack id (read, opened,
// decompressed and verified) into w.
func (r *Repo) gcCopyEntries(w *gcWriter, id cas.ID, entries []cas.PackEntry) error {
	if len(entries) == 0 {
		return nil
	}
	if w.dry {
		for _, e := range entries {
			if err := w.add(e, nil); err != nil {
				return err
			}
			w.rep.BlobsCopied++
		}
		return nil
	}
	f, err := r.packs.Open(id)
	if err != nil {
		return fmt.Errorf("%w: %v", errCopyProblem, err)
	}
	defer f.Close()
	var stored, unsealed, plain []byte
	for _, e := range entries {
		stored = slices.Grow(stored[:0], int(e.StoredLen))[:e.StoredLen]
		if _, err := f.ReadAt(stored, int64(e.Offset)); err != nil {
			return fmt.Errorf("%w: read blob %s: %v", errCopyProblem, e.ID.Short(), err)
		}
		if unsealed, err = r.packs.Unseal(id, e, stored, unsealed); err != nil {
			return fmt.Errorf("%w: %v", errCopyProblem, err)
		}
		plain, err = cas.Decompress(plain, unsealed, e.Compression, int(e.RawLen))
		if err == nil {
			err = r.Hasher.Verify(e.Type, e.ID, plain)
		}
		if err != nil {
			return fmt.Errorf("%w: blob %s: %v", errCopyProblem, e.ID.Short(), err)
		}
		if err := w.add(e, unsealed); err != nil {
			return err
		}
		w.rep.BlobsCopied++
	}
	return nil
}

// cleanMarks deletes the marks objects older than twice their grace whose
// condemned packs were all gone before this run: every writer that
// refreshed since has forgotten those packs and indexed the replacement
// packs. (A writer that did not, and meets such a pack at its commit,
// forgets it then: checkCommitted.)
func (s *sharedRun) cleanMarks(ctx context.Context) error {
	r := s.r
	r.sh.mu.Lock()
	var old []*marksObject
	for _, m := range r.sh.marks {
		if s.now.Sub(m.created) >= 2*m.grace {
			old = append(old, m)
		}
	}
	r.sh.mu.Unlock()
	for _, m := range old {
		gone := true
		for _, id := range m.condemned {
			// Gone, or written again since (revived): no longer the
			// object this mark condemned.
			info, err := r.packs.Info(id)
			if err != nil && !errors.Is(err, cas.ErrNotFound) {
				return fmt.Errorf("gc: %w", err)
			}
			if s.deleted[id] || err == nil && info.Created.Before(m.created) {
				gone = false
				break
			}
		}
		if !gone {
			continue
		}
		if err := r.st.Delete(ctx, m.name); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("gc: delete marks: %w", err)
		}
	}
	return r.loadMarks(ctx)
}
