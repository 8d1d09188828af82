package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"smp/cas"
	"smp/index"
	"smp/storage"
)

// Time-delayed two-phase deletion on a store several smp share (a bucket):
// docs/FORMAT.md, "gc on a shared store", states the protocol and why no
// record ever references a deleted blob. This file is the part every
// writer runs: reading gc's marks, answering "not held" for what they
// condemn or when the index is stale, and checking a commit against them.
// gcshared.go is gc's own part.

// marksPrefix is where gc's marks objects are named in the storage.
const marksPrefix = "gc/marks/"

// marksMagic starts a marks object, version 1.
var marksMagic = [8]byte{'S', 'M', 'P', 'G', 'C', 'M', 'K', '1'}

const (
	marksHeaderLen = 8 + 8 + 4 + 4
	// maxMarksBytes bounds a marks object read: a million packs.
	maxMarksBytes = marksHeaderLen + (1<<20)*cas.IDSize
)

// SharedRefreshBound is how old the last refresh of a shared store's index
// may be for its writers to answer that the store holds a blob: past it,
// every have-query is answered "not held" (the blob is sent again) until
// a refresh succeeds. gc's grace must exceed it plus the longest capture.
const SharedRefreshBound = 30 * time.Second

// SharedMinGrace is the shortest grace gc accepts on a shared store,
// unless the caller (a test) says otherwise: it must exceed the longest
// capture session plus SharedRefreshBound for captures running while gc
// marks not to fail their commit (safety does not depend on it).
const SharedMinGrace = time.Hour

// clockMargin is the slack a commit leaves between its record's
// Last-Modified and the moment a mark ripens: the object store stamps to
// the second, and the gateways of one store may disagree slightly.
const clockMargin = 5 * time.Second

// ErrCondemned fails a commit that would reference a blob only held in a
// pack gc marked for deletion.
var ErrCondemned = errors.New("a blob this capture reuses is in a pack gc marked for deletion meanwhile: nothing was committed; run the capture again (it sends what is missing)")

// marksObject is one immutable marks object: the packs one gc run
// condemned, the packs holding the copies of their live blobs, and the
// grace it promised, with the object's own creation time (storage clock).
type marksObject struct {
	name         string
	created      time.Time
	grace        time.Duration
	condemned    []cas.ID
	replacements []cas.ID
}

// encodeMarks encodes a marks object:
//
//	magic "SMPGCMK1" | grace ns u64le | n condemned u32le | n replacements u32le
//	| condemned pack IDs (32 bytes each) | replacement pack IDs
func encodeMarks(m *marksObject) []byte {
	b := make([]byte, 0, marksHeaderLen+cas.IDSize*(len(m.condemned)+len(m.replacements)))
	b = append(b, marksMagic[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(m.grace))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.condemned)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.replacements)))
	for _, id := range m.condemned {
		b = append(b, id[:]...)
	}
	for _, id := range m.replacements {
		b = append(b, id[:]...)
	}
	return b
}

// decodeMarks decodes a marks object. The counts must account for the
// length exactly; nothing is allocated from what the input claims before
// that is checked.
func decodeMarks(b []byte) (*marksObject, error) {
	if len(b) < marksHeaderLen || len(b) > maxMarksBytes || !bytes.Equal(b[:8], marksMagic[:]) {
		return nil, fmt.Errorf("marks object: not a version 1 marks object: %w", cas.ErrCorrupt)
	}
	grace := binary.LittleEndian.Uint64(b[8:])
	nc := uint64(binary.LittleEndian.Uint32(b[16:]))
	nr := uint64(binary.LittleEndian.Uint32(b[20:]))
	body := uint64(len(b) - marksHeaderLen)
	if grace > uint64(1<<62) || body%cas.IDSize != 0 || nc+nr != body/cas.IDSize {
		return nil, fmt.Errorf("marks object: counts do not match its length: %w", cas.ErrCorrupt)
	}
	m := &marksObject{grace: time.Duration(grace), condemned: make([]cas.ID, nc), replacements: make([]cas.ID, nr)}
	p := b[marksHeaderLen:]
	for i := range m.condemned {
		copy(m.condemned[i][:], p)
		p = p[cas.IDSize:]
	}
	for i := range m.replacements {
		copy(m.replacements[i][:], p)
		p = p[cas.IDSize:]
	}
	return m, nil
}

// condemnation is what the marks say of one pack: its newest mark's time
// and the grace that mark promised, and the packs that hold copies of its
// live blobs (every mark naming it).
type condemnation struct {
	at           time.Time
	grace        time.Duration
	replacements map[cas.ID]bool
}

// ripe reports whether the pack may be deleted at now (storage clock).
func (c condemnation) ripe(now time.Time) bool { return !now.Before(c.at.Add(c.grace)) }

// sharedState is what a Repo on a shared store knows of gc's marks.
type sharedState struct {
	mu          sync.Mutex
	marks       map[string]*marksObject // by object name
	condemned   map[cas.ID]condemnation
	refreshedAt time.Time           // local clock: start of the last successful refresh
	touched     map[cas.ID]struct{} // packs this Repo wrote or answered "held" from
	// orphans are packs condemned by marks since deleted, still to be
	// looked up by forgetDeleted once.
	orphans    map[cas.ID]bool
	refreshing sync.Mutex // one lazy refresh at a time
	// loading orders loadMarks calls: each applies a listing no older
	// than the one applied before it, so none forgets newer marks.
	loading sync.Mutex
	bound   time.Duration // SharedRefreshBound (tests lower it)
}

func newSharedState() *sharedState {
	return &sharedState{marks: map[string]*marksObject{}, condemned: map[cas.ID]condemnation{},
		touched: map[cas.ID]struct{}{}, orphans: map[cas.ID]bool{}, bound: SharedRefreshBound}
}

// loadMarks reads the marks objects that appeared since the last call,
// forgets the ones deleted, applies the new ones oldest first (their
// replacement packs are indexed again from their trailers, which moves
// the live blobs of condemned packs to their copies in this index) and
// recomputes the condemned packs.
func (r *Repo) loadMarks(ctx context.Context) error {
	sh := r.sh
	sh.loading.Lock()
	defer sh.loading.Unlock()
	var listed []storage.Info
	if err := storage.Walk(ctx, r.st, marksPrefix, func(info storage.Info) error {
		listed = append(listed, info)
		return nil
	}); err != nil {
		return fmt.Errorf("list gc marks: %w", err)
	}
	sh.mu.Lock()
	known := make(map[string]bool, len(sh.marks))
	for name := range sh.marks {
		known[name] = true
	}
	sh.mu.Unlock()
	var fresh []*marksObject
	seen := map[string]bool{}
	for _, info := range listed {
		seen[info.Name] = true
		if known[info.Name] {
			continue
		}
		if info.Size > maxMarksBytes {
			return fmt.Errorf("gc marks %s: %d bytes, more than a marks object holds: %w", info.Name, info.Size, cas.ErrCorrupt)
		}
		// Exactly the listed size, which was checked above.
		b, err := r.st.Get(ctx, info.Name, 0, info.Size, nil)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("shorter than listed: %w", cas.ErrCorrupt)
		}
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted since the listing: its packs are gone
		}
		if err != nil {
			return fmt.Errorf("read gc marks: %w", err)
		}
		m, err := decodeMarks(b)
		if err != nil {
			// A writer cannot tell what it condemns: refuse to answer
			// "held" (the refresh fails) rather than guess. Deleting
			// the object is safe: its packs are then simply kept.
			return fmt.Errorf("gc marks %s: %w: delete that object from the bucket (the packs it condemned are then kept)", info.Name, err)
		}
		m.name, m.created = info.Name, info.Created
		fresh = append(fresh, m)
	}
	slices.SortFunc(fresh, func(a, b *marksObject) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return bytes.Compare([]byte(a.name), []byte(b.name))
	})
	for _, m := range fresh {
		if err := r.indexReplacements(m.replacements); err != nil {
			return err
		}
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for name, m := range sh.marks {
		if !seen[name] {
			for _, id := range m.condemned {
				sh.orphans[id] = true
			}
			delete(sh.marks, name)
		}
	}
	for _, m := range fresh {
		sh.marks[m.name] = m
	}
	sh.condemned = condemnedBy(sh.marks)
	return nil
}

// condemnedBy folds marks objects into what each condemned pack waits for:
// the newest mark naming a pack sets its clock (a pack condemned again
// waits a whole grace again).
func condemnedBy(marks map[string]*marksObject) map[cas.ID]condemnation {
	out := map[cas.ID]condemnation{}
	for _, m := range marks {
		for _, id := range m.condemned {
			c, ok := out[id]
			if !ok {
				c.replacements = map[cas.ID]bool{}
			}
			if !ok || m.created.After(c.at) {
				c.at, c.grace = m.created, m.grace
			}
			for _, q := range m.replacements {
				c.replacements[q] = true
			}
			out[id] = c
		}
	}
	return out
}

// indexReplacements indexes the given packs again from their trailers,
// so that every blob they hold is located there. A pack gone (gc deleted
// it since, after condemning it in turn) is skipped.
func (r *Repo) indexReplacements(ids []cas.ID) error {
	for _, id := range ids {
		info, err := r.packs.Info(id)
		if errors.Is(err, cas.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("gc marks: %w", err)
		}
		entries, err := r.packs.ReadTrailer(id)
		if errors.Is(err, cas.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("gc marks: replacement %w", err)
		}
		if err := r.ix.AddPack(id, info.Size, entries); err != nil {
			return fmt.Errorf("gc marks: %w", err)
		}
	}
	return nil
}

// refreshShared ends a successful Refresh of a shared store: the marks
// are read and applied, the condemned packs gc has deleted are dropped
// from the index, and the index counts as fresh from start (local clock).
func (r *Repo) refreshShared(start time.Time) error {
	if r.sh == nil {
		return nil
	}
	ctx := context.Background()
	if err := r.refreshKeys(ctx, start); err != nil {
		return err
	}
	if err := r.loadMarks(ctx); err != nil {
		return err
	}
	if err := r.forgetDeleted(ctx); err != nil {
		return err
	}
	r.sh.mu.Lock()
	r.sh.refreshedAt = start
	r.sh.mu.Unlock()
	return nil
}

// forgetDeleted drops from the index every condemned pack that is no
// longer in the storage, with the blob entries that point into it. Only
// gc deletes packs, and only condemned ones whose grace has passed by the
// storage's clock, so no other pack is looked up: a refresh every few
// seconds costs one clock reading, not a request per pack a large repack
// condemned. Meanwhile a condemned pack is answered "not held" anyway.
func (r *Repo) forgetDeleted(ctx context.Context) error {
	indexed := map[cas.ID]bool{}
	if err := r.ix.Packs(func(p index.PackInfo) error { indexed[p.ID] = true; return nil }); err != nil {
		return err
	}
	r.sh.mu.Lock()
	var gone []cas.ID
	var waiting []cas.ID
	var waits []condemnation
	for id, c := range r.sh.condemned {
		if indexed[id] {
			waiting, waits = append(waiting, id), append(waits, c)
		}
	}
	for id := range r.sh.orphans {
		if _, still := r.sh.condemned[id]; indexed[id] && !still {
			gone = append(gone, id)
		}
	}
	clear(r.sh.orphans)
	r.sh.mu.Unlock()
	if len(waiting) > 0 {
		now, err := r.st.Now(ctx) // the clock the marks are timed by
		if err != nil {
			return fmt.Errorf("gc marks: read the storage's clock: %w", err)
		}
		for i, id := range waiting {
			if waits[i].ripe(now) {
				gone = append(gone, id)
			}
		}
	}
	var drop []cas.ID
	for _, id := range gone {
		if _, err := r.st.Stat(ctx, r.packs.Name(id)); errors.Is(err, storage.ErrNotFound) {
			drop = append(drop, id)
		} else if err != nil {
			return fmt.Errorf("gc marks: %w", err)
		}
	}
	return r.dropPacks(drop)
}

// dropPacks removes packs from the index with every blob entry pointing
// into them.
func (r *Repo) dropPacks(ids []cas.ID) error {
	if len(ids) == 0 {
		return nil
	}
	set := map[cas.ID]bool{}
	for _, id := range ids {
		set[id] = true
	}
	var keys []cas.BlobKey
	if err := r.ix.Blobs(func(l index.Location) error {
		if set[l.Pack] {
			keys = append(keys, l.Key())
		}
		return nil
	}); err != nil {
		return err
	}
	if err := r.ix.DeleteBlobs(keys); err != nil {
		return err
	}
	for _, id := range ids {
		if err := r.ix.RetirePack(id); err != nil {
			return err
		}
		if err := r.ix.ForgetRetiredPack(id); err != nil {
			return err
		}
	}
	return nil
}

// fresh reports whether this Repo may answer "held": its last refresh is
// within the bound. A stale one refreshes first (one caller at a time;
// the others answer "not held" meanwhile).
func (r *Repo) fresh() bool {
	sh := r.sh
	sh.mu.Lock()
	ok := time.Since(sh.refreshedAt) <= sh.bound
	sh.mu.Unlock()
	if ok || r.readOnly {
		return ok
	}
	if !sh.refreshing.TryLock() {
		return false
	}
	defer sh.refreshing.Unlock()
	if _, err := r.Refresh(); err != nil {
		return false
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return time.Since(sh.refreshedAt) <= sh.bound
}

// mayHold reports whether a blob located in pack may be answered "held"
// (and reused) by a writer of a shared store: the index is fresh and gc
// has not condemned the pack. A yes is remembered for the commit's check.
func (r *Repo) mayHold(pack cas.ID) bool {
	if r.sh == nil {
		return true
	}
	if !r.fresh() {
		return false
	}
	r.sh.mu.Lock()
	defer r.sh.mu.Unlock()
	if _, bad := r.sh.condemned[pack]; bad {
		return false
	}
	r.sh.touched[pack] = struct{}{}
	return true
}

// touch remembers a pack this Repo wrote, for the commit's check.
func (r *Repo) touch(pack cas.ID) {
	if r.sh == nil {
		return
	}
	r.sh.mu.Lock()
	r.sh.touched[pack] = struct{}{}
	r.sh.mu.Unlock()
}

// clearTouched forgets the packs touched so far.
func (r *Repo) clearTouched() {
	r.sh.mu.Lock()
	clear(r.sh.touched)
	r.sh.mu.Unlock()
}

// touchedPacks returns the packs this Repo wrote or answered "held" from.
func (r *Repo) touchedPacks() []cas.ID {
	r.sh.mu.Lock()
	defer r.sh.mu.Unlock()
	out := make([]cas.ID, 0, len(r.sh.touched))
	for id := range r.sh.touched {
		out = append(out, id)
	}
	return out
}

// LookupHeld is Lookup for answering a have-query: on a shared store a
// blob is "not found" when the index is older than SharedRefreshBound or
// the blob's pack is condemned by gc, so the client sends it again. A
// blob of another type is "not found" too.
func (r *Repo) LookupHeld(t cas.BlobType, id cas.ID) (index.Location, error) {
	loc, err := r.ix.Get(t, id)
	if err != nil {
		return index.Location{}, err
	}
	if loc.Type != t || !r.mayHold(loc.Pack) {
		return index.Location{}, fmt.Errorf("blob %s: %w", id.Short(), cas.ErrNotFound)
	}
	return loc, nil
}

// LoadMarks reads gc's marks objects that appeared since the last look
// (a server does it before checking a commit's references). A store
// others do not share has none.
func (r *Repo) LoadMarks() error {
	if r.sh == nil {
		return nil
	}
	return r.loadMarks(context.Background())
}

// checkCondemned is a commit's check before it writes its record: no pack
// it reuses or wrote is condemned by a mark, unless the pack was written
// again after the mark (revived: a writer stored the very same blobs
// again, and packs are named by their contents), which checkCommitted
// then times.
func (r *Repo) checkCondemned(packs []cas.ID) error {
	if err := r.loadMarks(context.Background()); err != nil {
		return fmt.Errorf("commit record: %w", err)
	}
	for _, p := range packs {
		r.sh.mu.Lock()
		c, bad := r.sh.condemned[p]
		r.sh.mu.Unlock()
		if !bad {
			continue
		}
		if revived, err := r.revived(p, c); err != nil {
			return fmt.Errorf("commit record: %w", err)
		} else if !revived {
			return fmt.Errorf("pack %s: %w", p.Short(), ErrCondemned)
		}
	}
	return nil
}

// revived reports whether condemned pack p was written again at or after
// its mark (by the storage's clock, to the second: a pack written in the
// second of its mark counts as revived, which only keeps it).
func (r *Repo) revived(p cas.ID, c condemnation) (bool, error) {
	info, err := r.packs.Info(p)
	if errors.Is(err, cas.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !info.Created.Before(c.at), nil
}

// checkCommitted is a commit's check after its record is stored, written
// at written (storage clock): every pack it reuses or wrote is still
// there, and none was condemned by a mark that ripens before the record
// was surely listed (written plus clockMargin). gc deletes a pack only
// once its mark is ripe, after listing the records, so a record passing
// this is either seen by that listing (and its blobs kept) or refused
// here. It comes after the write, so a writer paused anywhere before it
// cannot outlive the check.
func (r *Repo) checkCommitted(packs []cas.ID, written time.Time) error {
	if err := r.loadMarks(context.Background()); err != nil {
		return err
	}
	r.sh.mu.Lock()
	cond := make(map[cas.ID]condemnation, len(packs))
	for _, p := range packs {
		if c, ok := r.sh.condemned[p]; ok {
			cond[p] = c
		}
	}
	r.sh.mu.Unlock()
	for _, p := range packs {
		if c, ok := cond[p]; ok && !written.Add(clockMargin).Before(c.at.Add(c.grace)) {
			return fmt.Errorf("pack %s: %w", p.Short(), ErrCondemned)
		}
		if _, err := r.packs.Info(p); err != nil {
			if errors.Is(err, cas.ErrNotFound) {
				// Deleted by gc (after a mark this Repo never saw):
				// forget it, so a run again stores its blobs anew.
				if derr := r.dropPacks([]cas.ID{p}); derr != nil {
					return derr
				}
				return fmt.Errorf("pack %s is gone: %w", p.Short(), ErrCondemned)
			}
			return err
		}
	}
	return nil
}

// marksName names a new marks object: the storage's time and a random
// suffix, so two gc runs never write the same name (the name is only for
// people: the object's Last-Modified is its time).
func marksName(now time.Time) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%020d-%s.marks", marksPrefix, now.UnixNano(), hex.EncodeToString(b[:]))
}
