package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/index"
	"smp/repo/report"
	"smp/storage"
)

// Garbage collection frees the blobs no live record reaches: chunks, trees
// and record blobs of removed records. See "Garbage collection" in
// docs/FORMAT.md for the on-disk side.
//
// Order of changes (each step is durable before the next starts), so that a
// crash at any point leaves every live record restorable and the next run
// finishes the job:
//
//  1. copy the live blobs of sparse packs into new packs (written to a
//     temporary file, fsynced, renamed; the directory fsynced);
//  2. index each new pack (its blobs' locations now point to it);
//  3. delete the index entries of dead blobs, then retire each old pack in
//     the index (drop its pack key and mark it retired, in one transaction);
//  4. delete the retired packs' files, then their retired marks.
//
// No index entry ever points into a pack file that is gone: a pack is
// retired only when no blob entry points into it, and its file is deleted
// only after that. A crash after step 1 leaves a committed pack that is not
// indexed; the next run deletes it when every blob in it is indexed in some
// other pack (it is a copy), and otherwise keeps it for an index rebuild.
//
// Memory: the mark phase keeps a Go map of every live blob (type and ID: the
// records, their trees and their chunks, plus every tombstone, one per record
// ever removed): 33 bytes of key plus map overhead per live blob, so
// halving the store's chunk size about doubles it. The cost grows with the
// live data, not with the store's history: removed records cost a
// tombstone ID each, garbage only the list of dead blobs (33 bytes each)
// collected for deletion, and every pack a few counters.

// gcFailAfter, when positive, makes GC stop with errGCInjected right after
// that step (see the gcStep constants) as a crash would. Tests only.
var gcFailAfter int

var errGCInjected = errors.New("gc: injected failure")

const (
	gcStepPackWritten  = 1 // a new pack is committed to disk, not yet indexed
	gcStepIndexed      = 2 // every new pack is indexed
	gcStepBlobsDeleted = 3 // dead blobs' index entries are deleted
	gcStepRetired      = 4 // old packs are retired in the index, files remain
	gcStepFileDeleted  = 5 // a retired pack's file is gone, its mark is not
)

func gcStep(n int) error {
	if gcFailAfter == n {
		return fmt.Errorf("after step %d: %w", n, errGCInjected)
	}
	return nil
}

// ErrBusy is returned by GC when blobs are being written through the same
// Repo: they are not yet reachable from a record and would be collected.
var ErrBusy = errors.New("store has uncommitted writes in this process")

// GCOptions tune GC.
type GCOptions struct {
	// DryRun computes the report without changing anything.
	DryRun bool
	// RepackBelow rewrites a pack whose live fraction (stored bytes of its
	// live blobs / bytes of its data area) is below it, 0 to 1. A pack with
	// no live blob is always deleted; 0 rewrites nothing.
	RepackBelow float64
	// Grace keeps every blob of a pack younger than this (by its creation
	// time in the storage), live or not: the uploads of a capture that has
	// not committed yet, which a re-run of an interrupted capture reuses.
	// 0 keeps none.
	Grace time.Duration
	// Now is the clock Grace is measured with (default the storage's,
	// which stamped the packs).
	Now func() time.Time
	// Pinned, when set, is called once after marking: every blob it yields
	// is kept, as chunks an open capture session was told the store holds
	// (smp serve) and will reference when it commits.
	Pinned func(keep func(cas.BlobKey))
	// ShortGraceOK lets gc on a shared store run with a grace shorter
	// than SharedMinGrace: tests only (smp gc reads it from
	// SMP_TEST_SHORT_GC_GRACE=1), where no capture outlasts it.
	ShortGraceOK bool
	// Rekey also rewrites every pack not sealed under the keyring's
	// current master key (packs in clear too, in a store being converted)
	// and then copies the index under the current key and re-seals the
	// store's sealed files: afterwards the older master keys seal nothing
	// and can be retired (see rekey.go). Encrypted stores only.
	Rekey bool
}

// GCReport is what GC did (or, with DryRun, would do): the report of
// POST /v1/gc and smp gc --json, defined in remote/report.
type GCReport = report.GCReport

// gcPack is the accounting of one indexed pack.
type gcPack struct {
	info      index.PackInfo
	live      int    // live blobs whose index entry points here
	liveBytes uint64 // their stored bytes
}

// liveFraction is the share of the pack's data area held by live blobs. The
// header and trailer (sealed, in an encrypted store) are left out so that
// a pack with no garbage scores exactly 1 and is never rewritten.
func (p *gcPack) liveFraction(sealed bool) float64 {
	data := p.info.Size - cas.PackHeaderSize - packTrailerLen(p.info.Blobs, sealed)
	if data <= 0 {
		return 1
	}
	return float64(p.liveBytes) / float64(data)
}

// packTrailerLen is the trailer length of a pack of n blobs, sealed (an
// encrypted store's: the entries are sealed as one) or not.
func packTrailerLen(n int, sealed bool) int64 {
	l := int64(n)*cas.PackEntrySize + cas.PackFooterSize
	if sealed {
		l += cas.SealOverhead
	}
	return l
}

// GC deletes every blob that no live record reaches and keeps every
// tombstone. Packs left with no live blob are deleted; packs whose live
// fraction is below opts.RepackBelow are rewritten. No other goroutine may
// use the Repo while GC runs (the smp gc command is a process of its own
// holding the store lock); GC refuses with ErrBusy when blobs written through
// this Repo are not yet committed. A cancelled ctx stops GC before the next
// pack it would rewrite, and always before it deletes index entries; like a
// crash, that leaves the store sound.
func (r *Repo) GC(ctx context.Context, opts GCOptions) (*GCReport, error) {
	start := time.Now()
	if math.IsNaN(opts.RepackBelow) || opts.RepackBelow < 0 || opts.RepackBelow > 1 {
		return nil, fmt.Errorf("gc: repack threshold %v is not between 0 and 1", opts.RepackBelow)
	}
	if err := r.gcIdle(); err != nil {
		return nil, err
	}
	if r.sh != nil {
		return r.gcShared(ctx, opts, start)
	}
	if opts.Rekey && r.Keyring == nil {
		return nil, fmt.Errorf("gc --rekey: store %s is not encrypted (smp encrypt converts it)", r.Dir)
	}
	g := &gcRun{r: r, opts: opts, rewritten: map[cas.ID]bool{},
		rep: &GCReport{DryRun: opts.DryRun, RepackBelow: opts.RepackBelow, Problems: []string{}, GraceSeconds: opts.Grace.Seconds()}}
	rep := g.rep

	// Mark.
	var err error
	if g.live, rep.Records, err = r.gcMark(ctx); err != nil {
		return nil, err
	}
	// Finish an interrupted run: delete the files of retired packs.
	if err := r.gcDeleteRetired(rep, g.rewritten); err != nil {
		return nil, err
	}
	if err := g.account(); err != nil {
		return nil, err
	}
	// Committed packs the index does not list.
	if err := r.gcUnindexed(rep, g.packs); err != nil {
		return nil, err
	}
	empty, sparse := g.plan()
	if opts.Rekey {
		sparse = g.planRekey(empty, sparse)
	}

	// Steps 1 and 2.
	if err := g.rewrite(ctx, empty, sparse); err != nil {
		return nil, err
	}
	if opts.DryRun {
		g.dryRunTotals()
		rep.Seconds = time.Since(start).Seconds()
		return rep, nil
	}
	if err := gcStep(gcStepIndexed); err != nil {
		return nil, err
	}
	// Step 3.
	if err := g.retire(); err != nil {
		return nil, err
	}
	if err := gcStep(gcStepRetired); err != nil {
		return nil, err
	}

	// Step 4: delete their files.
	if err := r.gcDeleteRetired(rep, g.rewritten); err != nil {
		return nil, err
	}
	// Drop cached descriptors, which would keep deleted packs' space.
	r.packs.Close()
	if opts.Rekey {
		if err := r.finishRekey(rep); err != nil {
			return nil, err
		}
	}
	rep.BytesFreed = rep.BytesDeleted - rep.BytesWritten
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// gcRun is the state of one GC between its phases.
type gcRun struct {
	r           *Repo
	opts        GCOptions
	rep         *GCReport
	live        map[cas.BlobKey]struct{} // marked, then pinned, young and tombstones added
	packs       map[cas.ID]*gcPack       // every indexed pack
	dead        []cas.BlobKey            // indexed blobs not live
	deadRecords []cas.ID                 // record blobs among them
	rewritten   map[cas.ID]bool          // packs whose live blobs were copied out
	retiring    []cas.ID                 // packs to retire: empty, then rewritten
	created     map[cas.ID]time.Time     // packs' creation times from a listing (shared store), or nil
}

// account sorts every indexed blob into live or dead and counts each
// pack's live blobs. Tombstones, the blobs of packs younger than the
// grace and the blobs opts.Pinned yields are live.
func (g *gcRun) account() error {
	r := g.r
	g.packs = map[cas.ID]*gcPack{}
	err := r.ix.Packs(func(p index.PackInfo) error {
		g.packs[p.ID] = &gcPack{info: p}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	young, err := r.gcYoungPacks(g.packs, g.opts, g.created)
	if err != nil {
		return err
	}
	if g.opts.Pinned != nil {
		g.opts.Pinned(func(k cas.BlobKey) { g.live[k] = struct{}{} })
	}
	err = r.ix.Blobs(func(l index.Location) error {
		if l.Type == cas.BlobTombstone || young[l.Pack] {
			g.live[l.Key()] = struct{}{}
		}
		if _, ok := g.live[l.Key()]; !ok {
			g.dead = append(g.dead, l.Key())
			if l.Type == cas.BlobRecord {
				g.deadRecords = append(g.deadRecords, l.ID)
			}
			return nil
		}
		if p := g.packs[l.Pack]; p != nil {
			p.live++
			p.liveBytes += uint64(l.StoredLen)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	g.rep.LiveBlobs = len(g.live)
	g.rep.BlobsRemoved = len(g.dead)
	return nil
}

// plan returns, in ID order, the packs with no live blob and those whose
// live fraction is below opts.RepackBelow.
func (g *gcRun) plan() (empty, sparse []cas.ID) {
	ids := make([]cas.ID, 0, len(g.packs))
	for id := range g.packs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b cas.ID) int { return bytes.Compare(a[:], b[:]) })
	for _, id := range ids {
		p := g.packs[id]
		g.rep.PacksScanned++
		switch {
		case p.live == 0:
			empty = append(empty, id)
		case p.liveFraction(g.r.Keyring != nil) < g.opts.RepackBelow:
			sparse = append(sparse, id)
		}
	}
	return empty, sparse
}

// rewrite does steps 1 and 2: tombstones for record blobs that were never
// live (a crash inside CommitRecord), so an index rebuild from packs
// cannot resurrect them once their chunks are gone, then the live blobs of
// sparse packs. The empty packs and the sparse ones fully copied are left
// in g.retiring.
func (g *gcRun) rewrite(ctx context.Context, empty, sparse []cas.ID) error {
	r, rep := g.r, g.rep
	w := &gcWriter{r: r, dry: g.opts.DryRun, rep: rep}
	defer w.abort()
	for _, rec := range g.deadRecords {
		tomb := r.Hasher.SumBlob(cas.BlobTombstone, rec[:])
		tombKey := cas.BlobKey{Type: cas.BlobTombstone, ID: tomb}
		if _, ok := g.live[tombKey]; ok {
			continue
		}
		stored, c := cas.Compress(nil, rec[:])
		e := cas.PackEntry{Type: cas.BlobTombstone, Compression: c, ID: tomb, StoredLen: uint32(len(stored)), RawLen: cas.IDSize}
		if err := w.add(e, stored); err != nil {
			return err
		}
		g.live[tombKey] = struct{}{}
		rep.TombstonesWritten++
	}
	g.retiring = append(g.retiring, empty...)
	for _, id := range sparse {
		if err := ctx.Err(); err != nil {
			return err
		}
		ok, err := r.gcCopyLive(w, g.packs[id], g.live)
		if err != nil {
			return err
		}
		if ok {
			g.rewritten[id] = true
			g.retiring = append(g.retiring, id)
		}
	}
	if err := w.finish(); err != nil {
		return err
	}
	return ctx.Err()
}

// dryRunTotals counts what steps 3 and 4 would delete.
func (g *gcRun) dryRunTotals() {
	rep := g.rep
	for _, id := range g.retiring {
		rep.BytesDeleted += g.packs[id].info.Size
		if g.rewritten[id] {
			rep.PacksRewritten++
		} else {
			rep.PacksDeleted++
		}
	}
	rep.BytesFreed = rep.BytesDeleted - rep.BytesWritten
}

// retire does step 3: forget dead blobs, then retire the old packs.
func (g *gcRun) retire() error {
	r, rep := g.r, g.rep
	if err := r.ix.DeleteBlobs(g.dead); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	if err := gcStep(gcStepBlobsDeleted); err != nil {
		return err
	}
	for _, id := range g.retiring {
		held, err := r.gcStillIndexed(id)
		if errors.Is(err, cas.ErrCorrupt) && !g.rewritten[id] {
			// An unreadable trailer: trust the scan, which found no live
			// blob there and whose dead entries are now deleted.
			held, err = 0, nil
		}
		if err != nil || held != 0 {
			if err == nil {
				err = fmt.Errorf("%d of its blobs are still indexed there", held)
			}
			rep.Problems = append(rep.Problems, fmt.Sprintf("pack %s kept: %v", id.Short(), err))
			delete(g.rewritten, id)
			continue
		}
		if err := r.ix.RetirePack(id); err != nil {
			return fmt.Errorf("gc: %w", err)
		}
	}
	return nil
}

// gcYoungPacks returns the packs younger than opts.Grace, their creation
// times taken from created when set (one listing) or else asked for each.
func (r *Repo) gcYoungPacks(packs map[cas.ID]*gcPack, opts GCOptions, created map[cas.ID]time.Time) (map[cas.ID]bool, error) {
	young := map[cas.ID]bool{}
	if opts.Grace <= 0 {
		return young, nil
	}
	var now time.Time
	if opts.Now != nil {
		now = opts.Now()
	} else if t, err := r.st.Now(context.Background()); err == nil {
		now = t // ages are read by the storage's clock: compare with it
	} else {
		return nil, fmt.Errorf("gc: read the storage's clock: %w", err)
	}
	for id := range packs {
		var info storage.Info
		var err error
		if t, ok := created[id]; ok {
			info.Created = t
		} else if created != nil {
			continue // not listed: gone
		} else if info, err = r.packs.Info(id); err != nil {
			continue // a missing pack holds nothing to keep; gcDeleteRetired and verify report it
		}
		if now.Sub(info.Created) < opts.Grace {
			young[id] = true
		}
	}
	return young, nil
}

// gcIdle fails when this Repo holds uncommitted blobs. (A failed pack holds
// none: its blobs left pending when it failed.)
func (r *Repo) gcIdle() error {
	r.mu.Lock()
	busy := len(r.pending) > 0
	r.mu.Unlock()
	for _, s := range r.writers {
		s.mu.Lock()
		if s.pack != nil && s.pack.Count() > 0 {
			busy = true
		}
		s.mu.Unlock()
	}
	if busy {
		return fmt.Errorf("gc: %w; commit or close them first", ErrBusy)
	}
	return nil
}

// gcMark returns every live record and every tree and chunk it
// references, and the number of live records. A tree that cannot be read
// stops GC: what it references is unknown, so nothing may be deleted.
func (r *Repo) gcMark(ctx context.Context) (map[cas.BlobKey]struct{}, int, error) {
	records, err := r.Records()
	if err != nil {
		return nil, 0, fmt.Errorf("gc: %w", err)
	}
	live := make(map[cas.BlobKey]struct{}, 1024)
	// Linked entries (hard-link records) have no chunks. Seen is the live
	// set: a tree shared with a record marked before is walked once.
	w := manifest.Walker{Load: r, Seen: live}
	for _, rec := range records {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		live[cas.BlobKey{Type: cas.BlobRecord, ID: rec.ID}] = struct{}{}
		if err := w.Walk(ctx, rec.Tree); err != nil {
			return nil, 0, fmt.Errorf("gc: record %s of %s: %w (nothing was deleted; run smp verify)", rec.ID.Short(), rec.Computer, err)
		}
	}
	return live, len(records), nil
}

// gcCopyLive copies the live blobs whose index entry points into pack p to
// new packs, verifying each. It reports whether every one was copied; when
// not (a damaged blob), the pack must be kept and the reason is in the
// report. Copies already written stay: they are indexed and sound.
func (r *Repo) gcCopyLive(w *gcWriter, p *gcPack, live map[cas.BlobKey]struct{}) (bool, error) {
	id := p.info.ID
	problem := func(err error) (bool, error) {
		w.rep.Problems = append(w.rep.Problems, fmt.Sprintf("pack %s not rewritten: %v", id.Short(), err))
		return false, nil
	}
	entries, err := r.packs.ReadTrailer(id)
	if err != nil {
		return problem(err)
	}
	var f storage.Object
	if !w.dry {
		if f, err = r.packs.Open(id); err != nil {
			return problem(err)
		}
		defer f.Close()
	}
	var stored, unsealed, plain []byte
	copied := 0
	for _, e := range entries {
		if _, ok := live[e.Key()]; !ok {
			continue
		}
		loc, err := r.ix.Get(e.Type, e.ID)
		if errors.Is(err, cas.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("gc: %w", err)
		}
		if loc.Pack != id || loc.Offset != e.Offset {
			continue // the indexed copy is elsewhere; this one is garbage
		}
		if !w.dry {
			if cap(stored) < int(loc.StoredLen) {
				stored = make([]byte, loc.StoredLen)
			}
			stored = stored[:loc.StoredLen]
			if _, err := f.ReadAt(stored, int64(loc.Offset)); err != nil {
				return problem(fmt.Errorf("read blob %s: %w", loc.ID.Short(), err))
			}
			// A sealed blob is opened (authenticated) here and sealed
			// anew by the pack it is copied to, under the current key.
			if unsealed, err = r.packs.Unseal(id, loc.PackEntry, stored, unsealed); err != nil {
				return problem(err)
			}
			plain, err = cas.Decompress(plain, unsealed, loc.Compression, int(loc.RawLen))
			if err == nil {
				err = r.Hasher.Verify(loc.Type, loc.ID, plain)
			}
			if err != nil {
				return problem(fmt.Errorf("blob %s: %w", loc.ID.Short(), err))
			}
		}
		if err := w.add(loc.PackEntry, unsealed); err != nil {
			return false, err
		}
		copied++
		w.rep.BlobsCopied++
	}
	if copied != p.live {
		return problem(fmt.Errorf("found %d of the %d live blobs the index places there", copied, p.live))
	}
	return true, nil
}

// gcStillIndexed counts the blobs of pack id whose index entry still points
// into it. A pack whose file is missing holds none that could be read.
func (r *Repo) gcStillIndexed(id cas.ID) (int, error) {
	entries, err := r.packs.ReadTrailer(id)
	if errors.Is(err, cas.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		loc, err := r.ix.Get(e.Type, e.ID)
		if errors.Is(err, cas.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if loc.Pack == id {
			n++
		}
	}
	return n, nil
}

// gcDeleteRetired deletes the file of every retired pack, then its mark.
// With rep.DryRun it only counts them.
func (r *Repo) gcDeleteRetired(rep *GCReport, rewritten map[cas.ID]bool) error {
	type retired struct {
		id   cas.ID
		size int64
	}
	var list []retired
	err := r.ix.RetiredPacks(func(id cas.ID, size int64) error {
		list = append(list, retired{id, size})
		return nil
	})
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	for _, p := range list {
		size, err := r.packs.Stat(p.id)
		gone := errors.Is(err, cas.ErrNotFound)
		if err != nil && !gone {
			return fmt.Errorf("gc: %w", err)
		}
		if !gone {
			// Retiring checked this already; check again before the
			// one step that cannot be undone.
			held, err := r.gcStillIndexed(p.id)
			if err == nil && held > 0 {
				err = fmt.Errorf("%d of its blobs are indexed there", held)
			}
			if err != nil && !errors.Is(err, cas.ErrCorrupt) {
				rep.Problems = append(rep.Problems, fmt.Sprintf("retired pack %s kept: %v", p.id.Short(), err))
				continue
			}
			if !rep.DryRun {
				if err := r.packs.Remove(p.id); err != nil && !errors.Is(err, cas.ErrNotFound) {
					return fmt.Errorf("gc: delete pack: %w", err)
				}
			}
			rep.BytesDeleted += size
			if rewritten[p.id] {
				rep.PacksRewritten++
			} else {
				rep.PacksDeleted++
			}
			if err := gcStep(gcStepFileDeleted); err != nil && !rep.DryRun {
				return err
			}
		}
		if !rep.DryRun {
			if err := r.ix.ForgetRetiredPack(p.id); err != nil {
				return fmt.Errorf("gc: %w", err)
			}
		}
	}
	return nil
}

// gcUnindexed looks at committed pack files the index lists neither as
// packs nor as retired: a crash between committing a pack and indexing it
// leaves one. A pack every blob of which is indexed in another indexed pack
// is a redundant copy and is deleted; any other is kept (an index rebuild
// would need it) and counted.
func (r *Repo) gcUnindexed(rep *GCReport, packs map[cas.ID]*gcPack) error {
	retired := map[cas.ID]bool{}
	if err := r.ix.RetiredPacks(func(id cas.ID, _ int64) error { retired[id] = true; return nil }); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	onDisk := map[cas.ID]int64{}
	if err := r.packs.Walk(func(id cas.ID, size int64) error { onDisk[id] = size; return nil }); err != nil {
		return fmt.Errorf("gc: list packs: %w", err)
	}
	for id, size := range onDisk {
		if packs[id] != nil || retired[id] {
			continue
		}
		redundant := true
		entries, err := r.packs.ReadTrailer(id)
		if err != nil {
			redundant = false
		}
		for _, e := range entries {
			loc, err := r.ix.Get(e.Type, e.ID)
			if err != nil || loc.Pack == id || packs[loc.Pack] == nil {
				redundant = false
				break
			}
			if _, ok := onDisk[loc.Pack]; !ok {
				redundant = false
				break
			}
		}
		if !redundant {
			rep.UnindexedPacks++
			continue
		}
		if !rep.DryRun {
			if err := r.packs.Remove(id); err != nil && !errors.Is(err, cas.ErrNotFound) {
				return fmt.Errorf("gc: delete pack: %w", err)
			}
		}
		rep.PacksDeleted++
		rep.BytesDeleted += size
	}
	return nil
}

// gcWriter writes copied blobs to new packs, data and metadata apart as the
// normal write path does, committing and indexing each pack as it fills.
// With dry set it only computes the packs it would write.
type gcWriter struct {
	r   *Repo
	dry bool
	rep *GCReport
	// written are the packs committed, in order.
	written []cas.ID
	packs   [2]*cas.PendingPack
	sim     [2]struct {
		size  uint64 // header and data bytes so far
		count int
	}
}

func gcClass(t cas.BlobType) int {
	if t == cas.BlobData {
		return 0
	}
	return 1
}

func (w *gcWriter) add(e cas.PackEntry, stored []byte) error {
	i := gcClass(e.Type)
	if w.dry {
		s := &w.sim[i]
		if s.count == 0 {
			s.size = cas.PackHeaderSize
		}
		s.size += uint64(e.StoredLen)
		s.count++
		if int64(s.size) >= w.r.Config.PackSize {
			w.simCommit(i)
		}
		return nil
	}
	if w.packs[i] == nil {
		p, err := w.r.packs.Create()
		if err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		w.packs[i] = p
	}
	if err := w.packs[i].Add(e.Type, e.ID, e.Compression, stored, int(e.RawLen)); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	if int64(w.packs[i].Size()) >= w.r.Config.PackSize {
		return w.commit(i)
	}
	return nil
}

func (w *gcWriter) simCommit(i int) {
	s := &w.sim[i]
	if s.count == 0 {
		return
	}
	w.rep.PacksWritten++
	w.rep.BytesWritten += int64(s.size) + packTrailerLen(s.count, w.r.Keyring != nil)
	s.size, s.count = 0, 0
}

// commit makes pack i durable (step 1) and then indexes it (step 2).
func (w *gcWriter) commit(i int) error {
	p := w.packs[i]
	w.packs[i] = nil
	id, entries, size, err := w.r.storePack(p)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	w.rep.PacksWritten++
	w.rep.BytesWritten += size
	w.written = append(w.written, id)
	if err := gcStep(gcStepPackWritten); err != nil {
		return err
	}
	if err := w.r.ix.AddPack(id, size, entries); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	return nil
}

// finish commits the partly filled packs.
func (w *gcWriter) finish() error {
	for i := range w.packs {
		if w.dry {
			w.simCommit(i)
			continue
		}
		if w.packs[i] != nil && w.packs[i].Count() > 0 {
			if err := w.commit(i); err != nil {
				return err
			}
		}
	}
	return nil
}

// abort discards packs not committed (after an error).
func (w *gcWriter) abort() {
	for i, p := range w.packs {
		if p != nil {
			p.Abort()
			w.packs[i] = nil
		}
	}
}
