package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"smp/cas"
	"smp/cas/manifest"
	"smp/index"
	"smp/internal/sysfile"
	"smp/keys"
	"smp/storage"
)

// ErrLocked is returned when another process holds the store.
var ErrLocked = errors.New("store is in use by another smp process")

// Repo is an open store. It is safe for concurrent use.
type Repo struct {
	Dir    string
	Config *Config
	Hasher *cas.Hasher
	// Keyring is the unlocked keys of an encrypted store (nil for an
	// unencrypted one): the blob codec seals with its current master key.
	Keyring *keys.Keyring

	lock     *os.File
	st       storage.Storage // the store's objects; see storage.go
	packs    *cas.PackDir
	ix       *index.Index
	ixKey    keys.KeyID // the master key the index is encrypted under (0: in clear)
	crypt    crypt
	readOnly bool // opened by OpenReadOnly: AddBlob refuses
	// shared: the store's objects are in a bucket other smp may write
	// to (a cache directory, location.go); its lock excludes only the
	// processes of this machine.
	shared bool
	// sh is what a shared store's writer knows of gc's marks (nil when
	// not shared); see marks.go.
	sh *sharedState
	// keys is what a writer of a shared encrypted store knows of the
	// bucket's keys.json (nil otherwise); see keysshared.go.
	keys *sharedKeys

	// segMu orders the writes of index segments (segments.go);
	// unsegmented, guarded by mu, is the packs no segment lists yet.
	segMu       sync.Mutex
	unsegmented []cas.SegmentPack
	// incomplete, guarded by mu, is the records a refresh found before
	// every blob they reference: each refresh tries them again.
	incomplete map[cas.ID]bool

	usage     usageMemo  // the last Usage answer (usage.go)
	refreshMu sync.Mutex // one RefreshWith at a time (refresh.go)

	mu        sync.Mutex
	pending   map[cas.BlobKey]struct{} // reserved or in an uncommitted pack
	writers   map[cas.BlobType]*packSlot
	commits   chan queuedPack // packs for the committer goroutines
	committer sync.WaitGroup
	ahead     *readAhead // restores' read-ahead on a store on S3; nil on a local one
	// A pack that cannot be written or committed (a full disk) loses its
	// blobs, and only them: its IDs leave pending, so they can be stored
	// again, and later packs are written as usual once there is room.
	// Every flush that may have had blobs in it reports its error (see
	// FlushSince). Guarded by mu.
	failures     []packFailure // oldest first, at most maxFailures
	failDropped  uint64        // highest seq dropped from failures
	firstFailure error         // the first since Open: what Flush reports

	// Packs are numbered as they are queued; committed tracks which are
	// done so Flush can wait for exactly the packs queued before it, even
	// while other goroutines (server sessions) keep queueing new ones.
	queued, doneUpTo uint64          // guarded by mu
	doneSet          map[uint64]bool // committed out of order; guarded by mu
	doneCond         *sync.Cond      // on mu
}

type queuedPack struct {
	seq  uint64
	pack *cas.PendingPack
}

// packFailure is a pack, numbered as queued, that failed.
type packFailure struct {
	seq uint64
	err error
}

// maxFailures bounds Repo.failures on a server whose disk stays full.
const maxFailures = 256

// Mark is a point in the sequence of packs: every blob added after it
// lands in a pack queued after it. See FlushSince.
type Mark uint64

// packSlot is the open pack for one class of blobs. Data chunks and metadata
// (trees, records) go to separate packs so metadata can be read, cached or
// rewritten without touching file data.
type packSlot struct {
	mu   sync.Mutex
	pack *cas.PendingPack
}

// OpenOptions configure OpenWith.
type OpenOptions struct {
	// ReadOnly opens as OpenReadOnly does.
	ReadOnly bool
	// Keyring is the unlocked keys of an encrypted store, when the caller
	// has them already (a test, a server reopening its store).
	Keyring *keys.Keyring
	// Unlock finds the keys of an encrypted store from its key slot file
	// when Keyring is nil. An unencrypted store needs neither.
	Unlock keys.UnlockFunc
	// Transfers bound the parallel requests and their memory on a store
	// on S3 (zero: the defaults).
	Transfers Transfers
}

// Open opens the store in dir and takes its lock.
func Open(dir string) (*Repo, error) { return OpenWith(dir, OpenOptions{}) }

// OpenReadOnly opens the store in dir, and takes its lock, for commands
// that only read it (a restore that keeps its record). Its index is opened
// read-only when Badger allows it, which saves most of a short process's
// index open and close; otherwise, as for a store whose index must first
// be created or repaired, it is opened as by Open. Either way nothing is
// added to the store through it: AddBlob fails.
func OpenReadOnly(dir string) (*Repo, error) { return OpenWith(dir, OpenOptions{ReadOnly: true}) }

// OpenWith opens the store in dir as o says and takes its lock.
func OpenWith(dir string, o OpenOptions) (*Repo, error) {
	lo, err := openLocked(dir, o)
	if err != nil {
		return nil, err
	}
	return finishOpen(dir, lo, o.ReadOnly)
}

// locked is what openLocked opened.
type locked struct {
	cfg  *Config
	kr   *keys.Keyring
	c    crypt
	lock *os.File
	st   storage.Storage
	tr   Transfers
}

// openLocked reads the store's config, unlocks its keys and takes its
// lock: everything of an open but the index. The keys are unlocked before
// anything is written (the lock file, a swept temporary pack), so a
// missing or wrong key leaves the store's bytes as they were.
func openLocked(dir string, o OpenOptions) (*locked, error) {
	cfg, err := readConfig(dir)
	if err != nil {
		return nil, err
	}
	st, err := openStorage(dir)
	if err != nil {
		return nil, err
	}
	kr, err := unlockStore(dir, cfg, st, o)
	if err != nil {
		st.Close()
		return nil, err
	}
	c, err := cryptOf(dir, cfg, kr)
	if err != nil {
		st.Close()
		return nil, err
	}
	lock, err := lockStore(dir)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &locked{cfg: cfg, kr: kr, c: c, lock: lock, st: st, tr: o.Transfers.withDefaults()}, nil
}

// finishOpen opens the index of a store openLocked opened and returns the
// Repo, which then owns lock and st; on error it releases them.
func finishOpen(dir string, lo *locked, readOnly bool) (*Repo, error) {
	cfg, c, lock, st := lo.cfg, lo.c, lo.lock, lo.st
	// Before the index: an index open refused for lack of space must not
	// keep the space a killed writer's packs hold.
	removeStaleTemp(st)
	// A pack is committed once it reaches the pack size, so it ends
	// at most one blob and its trailer beyond it.
	packs := c.packs(st).ExpectSize(cfg.PackSize + cfg.PackSize/8)
	ix, ixKey, err := openIndex(dir, packs, readOnly, c)
	if err != nil {
		packs.Close()
		st.Close()
		lock.Close()
		return nil, err
	}
	r := &Repo{
		Dir: dir, Config: cfg, Hasher: hasherOf(cfg, lo.kr), Keyring: lo.kr,
		lock: lock, st: st, packs: packs, ix: ix, ixKey: ixKey, readOnly: readOnly, crypt: c,
		pending: map[cas.BlobKey]struct{}{},
		writers: map[cas.BlobType]*packSlot{cas.BlobData: {}, cas.BlobTree: {}},
		doneSet: map[uint64]bool{},
	}
	if l, err := ReadLocation(dir); err == nil && l != nil {
		r.shared = true
		r.sh = newSharedState()
		if lo.kr != nil {
			r.keys = &sharedKeys{kr: lo.kr, ver: storage.NoVersion, bound: r.sh.bound}
		}
	}
	r.doneCond = sync.NewCond(&r.mu)
	// Full packs are fsynced and indexed by a background goroutine, so the
	// goroutines filling packs never wait for the disk; the channel holds
	// one pack, which bounds memory and lets backpressure reach writers.
	// On a store reached by request (S3) Transfers.Uploads goroutines
	// upload packs at once (each PUT waits on the network, not the CPU);
	// done keeps Flush exact when they finish out of order.
	committers := 1
	if byRequest(st) {
		committers = lo.tr.Uploads
		r.ahead = newReadAhead(r, lo.tr)
	}
	r.commits = make(chan queuedPack, 1)
	for range committers {
		r.committer.Add(1)
		go func() {
			defer r.committer.Done()
			for q := range r.commits {
				r.done(q, r.commit(q.pack))
			}
		}()
	}
	return r, nil
}

// hasherOf returns the store's keyed hasher: its key is in config.json
// for an unencrypted store, in the keyring for an encrypted one.
func hasherOf(cfg *Config, kr *keys.Keyring) *cas.Hasher {
	return cas.NewHasher(hashKeyOf(cfg, kr))
}

func hashKeyOf(cfg *Config, kr *keys.Keyring) [32]byte {
	var key [32]byte
	copy(key[:], cfg.HashKey)
	if kr != nil {
		key, _ = kr.HashKey()
	}
	return key
}

// HashKey is the store's content hash key, which an SMP hands its clients
// so they compute the same IDs (for an encrypted store it is not in
// config.json).
func (r *Repo) HashKey() []byte {
	k := hashKeyOf(r.Config, r.Keyring)
	return k[:]
}

// Deferred is a store whose lock is held and whose config is read, while
// its index opens in the background (OpenDeferred).
type Deferred struct {
	Dir    string
	Config *Config
	Hasher *cas.Hasher
	// Keyring is the store's unlocked keys (nil when unencrypted), known
	// before the index is open, as Repo.Keyring.
	Keyring *keys.Keyring
	done    chan struct{}
	repo    *Repo
	err     error
}

// ChunkerParams returns the store's chunking parameters, ready to chunk
// (Repo.ChunkerParams), before its index is open.
func (d *Deferred) ChunkerParams() cas.ChunkerParams { return chunkerParamsOf(d.Config, d.Keyring) }

// OpenDeferred takes the store's lock and reads its config, then opens the
// index in the background: a caller with work that needs no index (a
// hard-link capture's walk and links) does it meanwhile, instead of
// waiting for Badger first (about 20 ms, a tenth of such a capture on the
// bench corpus). Repo waits for the open; Close must be called either way.
func OpenDeferred(dir string) (*Deferred, error) { return OpenDeferredWith(dir, OpenOptions{}) }

// OpenDeferredWith is OpenDeferred with the keys of o (o.ReadOnly is
// ignored: a deferred open is for writing).
func OpenDeferredWith(dir string, o OpenOptions) (*Deferred, error) {
	lo, err := openLocked(dir, o)
	if err != nil {
		return nil, err
	}
	d := &Deferred{Dir: dir, Config: lo.cfg, Hasher: hasherOf(lo.cfg, lo.kr), Keyring: lo.kr, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		d.repo, d.err = finishOpen(dir, lo, false)
	}()
	return d, nil
}

// Repo waits for the index and returns the open store, or why it could
// not be opened.
func (d *Deferred) Repo() (*Repo, error) {
	<-d.done
	return d.repo, d.err
}

// LinkDir is Repo.LinkDir, known before the index is open.
func (d *Deferred) LinkDir() string { return filepath.Join(d.Dir, "links") }

// Close waits for the open to finish and closes the store.
func (d *Deferred) Close() error {
	<-d.done
	if d.repo == nil {
		return nil // finishOpen released the lock
	}
	return d.repo.Close()
}

// done records that pack q was committed, or failed with err: its blobs
// then leave pending, so that a later upload or capture stores them anew.
func (r *Repo) done(q queuedPack, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		for _, e := range q.pack.Entries() {
			delete(r.pending, e.Key())
		}
		if r.firstFailure == nil {
			r.firstFailure = err
		}
		if len(r.failures) == maxFailures {
			r.failDropped = r.failures[0].seq
			r.failures = slices.Delete(r.failures, 0, 1)
		}
		r.failures = append(r.failures, packFailure{q.seq, err})
	}
	r.doneSet[q.seq] = true
	for r.doneSet[r.doneUpTo+1] {
		delete(r.doneSet, r.doneUpTo+1)
		r.doneUpTo++
	}
	r.doneCond.Broadcast()
}

// lockStore takes the store's process lock.
func lockStore(dir string) (*os.File, error) {
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store lock: %w", err)
	}
	if err := sysfile.Lock(lock, false); err != nil {
		lock.Close()
		if errors.Is(err, sysfile.ErrWouldBlock) {
			return nil, fmt.Errorf("%s: %w; wait for it to finish", dir, ErrLocked)
		}
		return nil, fmt.Errorf("lock store: %w", err)
	}
	return lock, nil
}

// removeStaleTemp deletes packs that a killed process left half-written;
// holding the store's lock proves no one is still writing them (every
// writer holds it from open to close). What cannot be removed now is
// tried again at the next open.
func removeStaleTemp(st storage.Storage) {
	if sw, ok := st.(storage.Sweeper); ok {
		_ = sw.RemoveTemporary(context.Background())
	}
}

// Close releases the store. Open packs are aborted, never committed: data
// reaches the store only through Flush or CommitRecord, so an interrupted
// operation leaves nothing half-written behind.
func (r *Repo) Close() error {
	close(r.commits)
	r.committer.Wait()
	if r.ahead != nil {
		r.ahead.close()
	}
	r.abortOpen()
	// Committed packs are listed even when no flush followed (an
	// interrupted command): best effort, a reader finds them by their
	// trailers otherwise.
	_ = r.writeSegments()
	err := r.ix.Close()
	r.packs.Close()
	r.st.Close()
	r.lock.Close()
	return err
}

func (r *Repo) abortOpen() {
	for _, s := range r.writers {
		s.mu.Lock()
		if s.pack != nil {
			s.pack.Abort()
			s.pack = nil
		}
		s.mu.Unlock()
	}
}

// ChunkerParams returns the store's chunking parameters, ready to chunk:
// with the keyed gear table derived from the hash key when the store keys
// it (the hash key is the keyring's for an encrypted store).
func (r *Repo) ChunkerParams() cas.ChunkerParams { return chunkerParamsOf(r.Config, r.Keyring) }

// chunkerParamsOf returns the chunking parameters of the store cfg
// describes, whose keys (nil when unencrypted) are kr.
func chunkerParamsOf(cfg *Config, kr *keys.Keyring) cas.ChunkerParams {
	return cfg.Chunker.WithGearKey(hashKeyOf(cfg, kr))
}

// Reserve reports whether blob id of type t must be stored: false when it
// is indexed or another goroutine already reserved it. A blob of another
// type with the same ID does not count. A true answer obliges the caller
// to AddBlob it (or fail the whole operation).
func (r *Repo) Reserve(t cas.BlobType, id cas.ID) (bool, error) {
	k := cas.BlobKey{Type: t, ID: id}
	r.mu.Lock()
	if _, ok := r.pending[k]; ok {
		r.mu.Unlock()
		return false, nil
	}
	r.mu.Unlock()
	has, err := r.has(t, id)
	if err != nil || has {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.pending[k]; ok {
		return false, nil
	}
	r.pending[k] = struct{}{}
	return true, nil
}

func slotFor(t cas.BlobType) cas.BlobType {
	if t == cas.BlobData {
		return cas.BlobData
	}
	return cas.BlobTree
}

// AddBlob appends an already compressed blob to the open pack of its class,
// committing the pack when it reaches the store's pack size. It returns the
// bytes written.
func (r *Repo) AddBlob(t cas.BlobType, id cas.ID, c cas.Compression, stored []byte, rawLen int) error {
	if r.readOnly {
		return fmt.Errorf("add blob %s: the store was opened read-only: %w", id.Short(), index.ErrReadOnly)
	}
	slot := r.writers[slotFor(t)]
	slot.mu.Lock()
	if slot.pack == nil {
		p, err := r.packs.Create()
		if err != nil {
			slot.mu.Unlock()
			r.unreserve(cas.BlobKey{Type: t, ID: id})
			return err
		}
		slot.pack = p
	}
	if err := slot.pack.Add(t, id, c, stored, rawLen); err != nil {
		// The pack's file is broken (a short write): drop it with the
		// blobs already in it, which fails the flushes that wait for
		// them, and start the next blob in a new pack.
		q := r.takePack(slot)
		slot.mu.Unlock()
		q.pack.Abort()
		r.done(q, err)
		r.unreserve(cas.BlobKey{Type: t, ID: id})
		return err
	}
	var full queuedPack
	if int64(slot.pack.Size()) >= r.Config.PackSize {
		full = r.takePack(slot)
	}
	slot.mu.Unlock()
	if full.pack != nil {
		r.commits <- full
	}
	return nil
}

// unreserve forgets a reservation whose blob could not be added.
func (r *Repo) unreserve(k cas.BlobKey) {
	r.mu.Lock()
	delete(r.pending, k)
	r.mu.Unlock()
}

// takePack numbers the slot's open pack for the committer and empties the
// slot. The caller holds slot.mu and must send the result to r.commits.
func (r *Repo) takePack(slot *packSlot) queuedPack {
	r.mu.Lock()
	r.queued++
	q := queuedPack{seq: r.queued, pack: slot.pack}
	r.mu.Unlock()
	slot.pack = nil
	return q
}

// commit makes a pack durable, indexes it, then forgets its pending IDs.
// A filesystem without room to finish the pack and index it fails the
// commit before the pack is renamed into place (see index.RoomForPack).
func (r *Repo) commit(p *cas.PendingPack) error {
	if err := r.ix.RoomForPack(p.Count(), p.Unwritten()); err != nil {
		p.Abort()
		return fmt.Errorf("commit pack: %w", err)
	}
	id, entries, size, err := r.storePack(p)
	if err != nil {
		return err
	}
	if err := r.ix.AddPack(id, size, entries); err != nil {
		return err
	}
	r.touch(id)
	r.mu.Lock()
	for _, e := range entries {
		delete(r.pending, e.Key())
	}
	r.mu.Unlock()
	if r.shared && r.listSegment(cas.SegmentPack{ID: id, Size: size, Entries: entries}) >= segmentEveryPacks {
		_ = r.writeSegments() // else listed by the next flush
	}
	return nil
}

// Flush commits every open pack and waits until every pack queued before
// it returns is durable and indexed. Safe for concurrent use: a caller
// never returns before a pack holding one of its blobs is committed, even
// when another caller took that pack from its slot. It reports the first
// pack that failed since the Repo was opened: right for a command that
// adds blobs and flushes once, wrong for a long-lived writer (a server),
// which uses FlushSince.
func (r *Repo) Flush() error { return r.FlushSince(0) }

// Mark returns the current point in the sequence of packs, for FlushSince.
func (r *Repo) Mark() Mark {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Mark(r.queued)
}

// FlushSince is Flush for a caller that added its blobs after mark: it
// reports only packs queued after mark that failed, any of which may have
// held its blobs, so one full disk does not fail every later request of a
// server once space is freed.
func (r *Repo) FlushSince(mark Mark) error {
	for _, t := range []cas.BlobType{cas.BlobData, cas.BlobTree} {
		slot := r.writers[t]
		slot.mu.Lock()
		var q queuedPack
		if p := slot.pack; p != nil && p.Count() > 0 {
			q = r.takePack(slot)
		}
		slot.mu.Unlock()
		if q.pack != nil {
			r.commits <- q
		}
	}
	r.mu.Lock()
	target := r.queued
	for r.doneUpTo < target {
		r.doneCond.Wait()
	}
	err := r.failedSince(uint64(mark), target)
	r.mu.Unlock()
	// The packs are listed in a segment before the caller may commit a
	// record that references them (segments.go).
	if serr := r.writeSegments(); err == nil {
		err = serr
	}
	return err
}

// failedSince returns the error of the first pack numbered in (from, to]
// that failed. Caller holds r.mu.
func (r *Repo) failedSince(from, to uint64) error {
	if from == 0 && r.firstFailure != nil {
		return r.firstFailure
	}
	if from < r.failDropped {
		return r.firstFailure // forgotten which: one of them failed
	}
	for _, f := range r.failures {
		if f.seq > from && f.seq <= to {
			return f.err
		}
	}
	return nil
}

// PutBlob hashes, compresses and stores plain unless already present.
// It returns the blob's ID and whether it was new.
func (r *Repo) PutBlob(t cas.BlobType, plain []byte) (cas.ID, bool, error) {
	id, isNew, _, err := r.putBlob(t, plain, nil)
	return id, isNew, err
}

// putBlob is PutBlob compressing into scratch, which it returns grown.
func (r *Repo) putBlob(t cas.BlobType, plain, scratch []byte) (cas.ID, bool, []byte, error) {
	id := r.Hasher.SumBlob(t, plain)
	isNew, err := r.Reserve(t, id)
	if err != nil || !isNew {
		return id, false, scratch, err
	}
	stored, c := cas.Compress(scratch[:0], plain)
	if c != cas.CompressionNone {
		scratch = stored
	}
	return id, true, scratch, r.AddBlob(t, id, c, stored, len(plain))
}

// Lookup returns where blob id of type t is stored.
func (r *Repo) Lookup(t cas.BlobType, id cas.ID) (index.Location, error) { return r.ix.Get(t, id) }

// ReadBlob reads, decompresses and verifies blob id of type t.
func (r *Repo) ReadBlob(t cas.BlobType, id cas.ID, buf []byte) ([]byte, error) {
	loc, err := r.ix.Get(t, id)
	if err != nil {
		return nil, err
	}
	return r.ReadAt(t, loc, buf)
}

// ReadAt reads the blob at loc.
func (r *Repo) ReadAt(t cas.BlobType, loc index.Location, buf []byte) ([]byte, error) {
	if loc.Type != t {
		return nil, fmt.Errorf("blob %s is a %s, want %s: %w", loc.ID.Short(), loc.Type, t, cas.ErrCorrupt)
	}
	return r.packs.ReadBlob(loc.Pack, loc.PackEntry, r.Hasher, buf)
}

// PutTree stores a directory tree.
func (r *Repo) PutTree(t *manifest.Tree) (cas.ID, error) {
	buf := treeBufs.Get().(*treeBuf)
	defer buf.put()
	var err error
	if buf.plain, err = t.AppendEncode(buf.plain[:0]); err != nil {
		return cas.ID{}, err
	}
	var id cas.ID
	id, _, buf.stored, err = r.putBlob(cas.BlobTree, buf.plain, buf.stored)
	return id, err
}

// treeBuf holds one tree's encoding and its compressed form. They are
// reused because a fresh pair per directory was a third of a hard-link
// capture's page faults; AddBlob copies the bytes into the pack.
type treeBuf struct{ plain, stored []byte }

var treeBufs = sync.Pool{New: func() any { return new(treeBuf) }}

// put returns b to the pool unless one huge directory grew it: the pool
// must not pin memory that the next thousand trees will never use.
func (b *treeBuf) put() {
	const keepAtMost = 1 << 20
	if cap(b.plain) <= keepAtMost && cap(b.stored) <= keepAtMost {
		treeBufs.Put(b)
	}
}

// LoadTree reads and decodes tree id.
func (r *Repo) LoadTree(id cas.ID) (*manifest.Tree, error) {
	// The encoded tree is read into a pooled buffer: DecodeTree copies what
	// it keeps, and a fresh buffer per directory was a tenth of a
	// hard-link restore's page faults.
	buf := treeBufs.Get().(*treeBuf)
	defer buf.put()
	b, err := r.ReadBlob(cas.BlobTree, id, buf.plain[:0])
	if err != nil {
		return nil, fmt.Errorf("load tree %s: %w", id.Short(), err)
	}
	if cap(b) > cap(buf.plain) { // b may be capped at its own length
		buf.plain = b[:0]
	}
	t, err := manifest.DecodeTree(b)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	return t, nil
}

// ReadStored reads the blob at loc as stored (compressed or raw), neither
// decompressed nor verified: a server passes it on to a client, which
// verifies what it receives. Reading many in pack order (loc.Pack, then
// loc.Offset) keeps the reads sequential. The result may alias buf.
func (r *Repo) ReadStored(loc index.Location, buf []byte) ([]byte, error) {
	return r.packs.ReadStored(loc.Pack, loc.PackEntry, buf)
}

// Shared reports whether the store's objects are in a bucket other smp
// processes, on other machines, may write to (and run gc on) while this
// one holds its lock.
func (r *Repo) Shared() bool { return r.shared }

// Has reports whether blob id of type t is indexed. On a shared store a
// blob in a pack gc condemned, or any blob while the index is stale, is
// not (see LookupHeld): a capture reusing it would store it again.
func (r *Repo) Has(t cas.BlobType, id cas.ID) (bool, error) { return r.has(t, id) }

func (r *Repo) has(t cas.BlobType, id cas.ID) (bool, error) {
	if r.sh == nil {
		return r.ix.Has(t, id)
	}
	_, err := r.LookupHeld(t, id)
	if errors.Is(err, cas.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Sum returns the store-keyed ID of b.
func (r *Repo) Sum(b []byte) cas.ID { return r.Hasher.Sum(b) }

// ReadChunk reads and verifies file data chunk id into buf.
func (r *Repo) ReadChunk(id cas.ID, buf []byte) ([]byte, error) {
	if r.ahead != nil {
		if b, ok := r.ahead.chunk(id, buf); ok {
			return b, nil
		}
	}
	return r.ReadBlob(cas.BlobData, id, buf)
}

// LinkDir is the directory holding hard-linked and cloned files of
// hard-link records (links/<link set>/<bucket>/<n>).
func (r *Repo) LinkDir() string { return filepath.Join(r.Dir, "links") }

// RemoveLinks deletes a record's link set: only the store's own names are
// unlinked, so the users' files (other names of the same inodes) stay.
func (r *Repo) RemoveLinks(set string) error {
	if err := manifest.ValidName(set); err != nil {
		return fmt.Errorf("remove links: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(r.LinkDir(), set)); err != nil {
		return fmt.Errorf("remove links of set %s: %w", set, err)
	}
	os.Remove(r.LinkDir()) // only succeeds when no other set remains
	return nil
}
