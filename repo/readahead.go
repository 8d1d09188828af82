package repo

import (
	"cmp"
	"slices"
	"sync"

	"smp/cas"
	"smp/cas/manifest"
	"smp/index"
	"smp/storage"
)

// Transfers bound the requests in flight and the memory of a store whose
// objects are reached by request (a storage that is not a storage.Opener:
// S3). A local directory reads and writes through its files and ignores
// them.
type Transfers struct {
	// Uploads is how many full packs are uploaded at once (0: 3). A pack
	// is held in memory until its upload is done, so a capture holds up
	// to Uploads + 3 packs (the store's pack size each): those uploading,
	// one queued and the two being filled.
	Uploads int
	// ReadAhead bounds the bytes a restore has read, or is reading,
	// ahead of what it writes (0: 64 MiB).
	ReadAhead int64
	// Reads is how many ranged reads a restore has in flight (0: 8).
	Reads int
}

const (
	defaultUploads   = 3
	defaultReadAhead = 64 << 20
	defaultReads     = 8
	// maxSpan bounds one ranged read of neighbouring blobs of a pack;
	// maxGap the bytes of other blobs it may read and drop between two
	// it needs.
	maxSpan = 8 << 20
	maxGap  = 256 << 10
	// staleAfter is how far (in blobs announced) reading may move past a
	// fetched blob before it counts as skipped (the file existed, a
	// worker failed) and is dropped to make room.
	staleAfter = 4096
)

func (t Transfers) withDefaults() Transfers {
	if t.Uploads <= 0 {
		t.Uploads = defaultUploads
	}
	if t.ReadAhead <= 0 {
		t.ReadAhead = defaultReadAhead
	}
	if t.Reads <= 0 {
		t.Reads = defaultReads
	}
	return t
}

// byRequest reports whether st's objects are reached by a request per
// read (no open handle to read from, as a local file is): there,
// neighbouring reads are merged and run in parallel.
func byRequest(st storage.Storage) bool {
	_, ok := st.(storage.Opener)
	return !ok
}

// readAhead reads announced data blobs ahead of ReadChunk: consecutive
// blobs of one pack are read by one ranged request, up to Transfers.Reads
// requests at a time and Transfers.ReadAhead bytes held. What it fails to
// read is read again by ReadChunk, which reports the error.
type readAhead struct {
	r       *Repo
	budget  int64
	reads   int
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []manifest.Chunk
	queued  map[cas.ID]int            // chunks in queue
	locs    map[cas.ID]index.Location // of queued chunks looked up
	entries map[cas.ID]*aheadBlob
	used    int64  // bytes of spans in flight or holding unread blobs
	flight  int    // requests in flight
	seq     uint64 // blobs dispatched so far
	read    uint64 // highest seq read so far
	started bool
	closed  bool
	starved bool // dispatch waits for the budget
	wg      sync.WaitGroup
}

// span is one ranged read: the blobs it holds keep its bytes counted in
// readAhead.used until the last of them is read or dropped.
type span struct {
	pack  cas.ID
	start int64
	data  []byte
	err   error
	ready chan struct{}
	size  int64 // counted in readAhead.used
	live  int
}

type aheadBlob struct {
	loc  index.Location
	sp   *span
	refs int // reads still expected
	seq  uint64
}

func newReadAhead(r *Repo, t Transfers) *readAhead {
	a := &readAhead{r: r, budget: t.ReadAhead, reads: t.Reads, entries: map[cas.ID]*aheadBlob{}, queued: map[cas.ID]int{}, locs: map[cas.ID]index.Location{}}
	a.cond = sync.NewCond(&a.mu)
	return a
}

// ReadAhead announces chunks that ReadChunk will be asked for soon, in
// this order (what a restore.Prefetcher's Prefetch is told). On a store
// read by request (S3) they are read ahead; on a local directory, which
// reads through open files, it does nothing, and ReadsAhead is false so a
// restore need not announce anything.
func (r *Repo) ReadAhead(chunks []manifest.Chunk) {
	a := r.ahead
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.queue = append(a.queue, chunks...)
	for _, ch := range chunks {
		a.queued[ch.ID]++
	}
	if !a.started {
		a.started = true
		a.wg.Add(1)
		go a.dispatch()
	}
	a.cond.Broadcast()
}

// ReadsAhead reports whether ReadAhead reads ahead (the store is read by
// request).
func (r *Repo) ReadsAhead() bool { return r.ahead != nil }

// close stops dispatching and waits for the reads in flight.
func (a *readAhead) close() {
	a.mu.Lock()
	a.closed = true
	a.cond.Broadcast()
	a.mu.Unlock()
	a.wg.Wait()
}

// dispatch starts ranged reads of the queued blobs while the budget and
// the request bound allow.
func (a *readAhead) dispatch() {
	defer a.wg.Done()
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		for !a.closed && (len(a.queue) == 0 || a.flight >= a.reads || a.used >= a.budget && !a.evictStale()) {
			if starved := len(a.queue) > 0 && a.used >= a.budget; starved != a.starved {
				a.starved = starved
				a.cond.Broadcast() // readers waiting for a queued chunk read it themselves
			}
			a.cond.Wait()
		}
		a.starved = false
		if a.closed {
			return
		}
		sp, size := a.nextSpan()
		a.cond.Broadcast() // readers waiting for the chunks of sp
		if sp == nil {
			continue
		}
		a.used += size
		a.flight++
		a.wg.Add(1)
		go a.fetch(sp, size)
	}
}

// nextSpan takes from the queue the blobs of one ranged read: the head,
// and the blobs of the head's pack among the next `window` queued that
// lie next to it (gaps up to maxGap, at most maxSpan bytes), in whatever
// order they were announced (a capture's workers fill packs in the order
// they finish files, not the order of the tree). It returns nil when the
// head needs no read (announced already, or not in the index: ReadChunk
// says why). Caller holds a.mu.
func (a *readAhead) nextSpan() (*span, int64) {
	for len(a.queue) > 0 && a.entries[a.queue[0].ID] != nil {
		a.entries[a.queue[0].ID].refs++ // the same chunk in another file: read twice, fetched once
		a.remove(map[int]bool{0: true})
	}
	if len(a.queue) == 0 {
		return nil, 0
	}
	head, ok := a.locate(a.queue[0].ID)
	if !ok {
		a.remove(map[int]bool{0: true})
		return nil, 0
	}
	type cand struct {
		i   int
		loc index.Location
	}
	cands := []cand{{0, head}}
	for i := 1; i < min(len(a.queue), window); i++ {
		id := a.queue[i].ID
		if a.entries[id] != nil {
			continue // taken when it reaches the head
		}
		if loc, ok := a.locate(id); ok && loc.Pack == head.Pack {
			cands = append(cands, cand{i, loc})
		}
	}
	slices.SortStableFunc(cands, func(x, y cand) int { return cmp.Compare(x.loc.Offset, y.loc.Offset) })
	h := slices.IndexFunc(cands, func(c cand) bool { return c.i == 0 })
	lo, hi := h, h+1 // cands[lo:hi] are read
	start, end := int64(head.Offset), int64(head.Offset)+int64(head.StoredLen)
	fits := func(s, e int64) bool { return e-s <= maxSpan && e-s+a.used <= a.budget }
	for grew := true; grew; {
		grew = false
		if hi < len(cands) {
			c := cands[hi].loc
			off, e := int64(c.Offset), int64(c.Offset)+int64(c.StoredLen)
			if off >= end && off-end <= maxGap && fits(start, e) {
				hi, end, grew = hi+1, e, true
			} else if off < end {
				hi, grew = hi+1, true // the same blob again: taken when it reaches the head
				cands[hi-1].i = -1
			}
		}
		if lo > 0 {
			c := cands[lo-1].loc
			off, e := int64(c.Offset), int64(c.Offset)+int64(c.StoredLen)
			if e <= start && start-e <= maxGap && fits(off, end) {
				lo, start, grew = lo-1, off, true
			}
		}
	}
	sp := &span{pack: head.Pack, start: start, size: end - start, ready: make(chan struct{})}
	taken := map[int]bool{}
	for _, c := range cands[lo:hi] {
		if c.i < 0 {
			continue
		}
		a.seq++
		a.entries[a.queue[c.i].ID] = &aheadBlob{loc: c.loc, sp: sp, refs: 1, seq: a.seq}
		sp.live++
		taken[c.i] = true
	}
	a.remove(taken)
	return sp, sp.size
}

// window is how many queued chunks nextSpan looks through for neighbours
// of the head.
const window = 1024

// locate returns the location of data blob id, looked up once while it
// is queued.
func (a *readAhead) locate(id cas.ID) (index.Location, bool) {
	if loc, ok := a.locs[id]; ok {
		return loc, true
	}
	loc, err := a.r.ix.Get(cas.BlobData, id)
	if err != nil {
		return index.Location{}, false
	}
	a.locs[id] = loc
	return loc, true
}

// remove takes the queued chunks at the indexes of taken (all within
// the first window) out of the queue, moving only that part of it.
// Caller holds a.mu.
func (a *readAhead) remove(taken map[int]bool) {
	w := min(len(a.queue), window)
	k := w // a.queue[k:w] are the kept ones, in order
	for i := w - 1; i >= 0; i-- {
		ch := a.queue[i]
		if !taken[i] {
			k--
			a.queue[k] = ch
			continue
		}
		if a.queued[ch.ID]--; a.queued[ch.ID] <= 0 {
			delete(a.queued, ch.ID)
			delete(a.locs, ch.ID)
		}
	}
	clear(a.queue[:k])
	a.queue = a.queue[k:]
}

func (a *readAhead) fetch(sp *span, n int64) {
	defer a.wg.Done()
	sp.data, sp.err = a.r.packs.ReadRange(sp.pack, sp.start, n, make([]byte, 0, n))
	close(sp.ready)
	a.mu.Lock()
	a.flight--
	a.cond.Broadcast()
	a.mu.Unlock()
}

// evictStale drops read blobs that reading has long passed, and reports
// whether it freed anything. Caller holds a.mu.
func (a *readAhead) evictStale() bool {
	freed := false
	for id, b := range a.entries {
		select {
		case <-b.sp.ready:
		default:
			continue
		}
		if b.seq+staleAfter < a.read {
			delete(a.entries, id)
			freed = a.drop(b) || freed
		}
	}
	return freed
}

// drop counts a blob of sp as done, and sp's bytes as free with its last.
// Caller holds a.mu.
func (a *readAhead) drop(b *aheadBlob) bool {
	b.sp.live--
	if b.sp.live > 0 {
		return false
	}
	a.used -= b.sp.size
	a.cond.Broadcast()
	return true
}

// chunk returns data blob id decoded into buf when it was announced and
// its read succeeded; ok false sends the caller to the storage itself.
func (a *readAhead) chunk(id cas.ID, buf []byte) (data []byte, ok bool) {
	a.mu.Lock()
	b := a.entries[id]
	// A chunk still queued is waited for while the read-ahead can reach
	// it; when it waits for its budget, the chunk is read here.
	for b == nil && a.queued[id] > 0 && !a.closed && !a.starved {
		a.cond.Wait()
		b = a.entries[id]
	}
	if b == nil {
		a.mu.Unlock()
		return nil, false
	}
	b.refs--
	last := b.refs == 0
	if last {
		delete(a.entries, id)
	}
	a.read = max(a.read, b.seq)
	a.mu.Unlock()
	<-b.sp.ready
	var err error
	if b.sp.err == nil {
		data, err = a.r.packs.BlobFrom(b.loc.Pack, b.loc.PackEntry, b.sp.data, b.sp.start, a.r.Hasher, buf)
	}
	if last {
		a.mu.Lock()
		a.drop(b)
		a.mu.Unlock()
	}
	return data, b.sp.err == nil && err == nil
}
