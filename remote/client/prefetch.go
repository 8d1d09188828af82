package client

import (
	"sync"

	"smp/cas"
	"smp/cas/manifest"
	"smp/remote/wire"
)

// prefetchBudget bounds the plaintext bytes a Reader holds fetched ahead
// (or has in flight) for chunks not yet read.
const prefetchBudget = 64 << 20

// staleAfter is how far (in chunks announced) reading may move past a
// fetched chunk before it counts as skipped (the file already existed, or
// a worker failed) and is dropped to make room.
const staleAfter = 1024

// prefetcher fetches announced chunks ahead of ReadChunk, many per
// request: restore of many small files costs batches of round trips, not
// one per file.
type prefetcher struct {
	r       *Reader
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []manifest.Chunk
	entries map[cas.ID]*prefetched
	used    int64  // bytes of entries in flight or waiting to be read
	seq     uint64 // chunks dispatched so far
	read    uint64 // highest seq read so far
	started bool
	closed  bool
}

type prefetched struct {
	ready chan struct{}
	data  []byte
	err   error
	refs  int // reads still expected
	size  int64
	seq   uint64
}

func newPrefetcher(r *Reader) *prefetcher {
	p := &prefetcher{r: r, entries: map[cas.ID]*prefetched{}}
	p.cond = sync.NewCond(&p.mu)
	go func() {
		<-r.ctx.Done()
		p.mu.Lock()
		p.closed = true
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	return p
}

// Prefetch implements restore's Prefetcher: chunks are the ones the
// restore is about to read, in order.
func (r *Reader) Prefetch(chunks []manifest.Chunk) {
	p := r.pf
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.queue = append(p.queue, chunks...)
	if !p.started {
		p.started = true
		go p.dispatch()
	}
	p.cond.Broadcast()
}

// dispatch hands queued chunks to the fetchers while the budget allows;
// the fetchers merge them into batch requests.
func (p *prefetcher) dispatch() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		for !p.closed && (len(p.queue) == 0 || p.used+int64(p.queue[0].Size) > prefetchBudget && !p.evictStale()) {
			p.cond.Wait()
		}
		if p.closed {
			return
		}
		ch := p.queue[0]
		p.queue = p.queue[1:]
		if e := p.entries[ch.ID]; e != nil {
			e.refs++ // the same chunk in another file: read twice, fetched once
			continue
		}
		p.seq++
		e := &prefetched{ready: make(chan struct{}), refs: 1, size: int64(ch.Size), seq: p.seq}
		p.entries[ch.ID] = e
		p.used += e.size
		req := &fetchReq{e: wire.FetchEntry{Type: cas.BlobData, ID: ch.ID}, done: func(a fetchAns) {
			e.data, e.err = a.data, a.err
			close(e.ready)
		}}
		p.mu.Unlock()
		select {
		case p.r.reqs <- req:
		case <-p.r.ctx.Done():
		}
		p.mu.Lock()
	}
}

// evictStale drops fetched chunks that reading has long passed, and
// reports whether it freed anything. Caller holds p.mu.
func (p *prefetcher) evictStale() bool {
	freed := false
	for id, e := range p.entries {
		select {
		case <-e.ready:
		default:
			continue
		}
		if e.seq+staleAfter < p.read {
			delete(p.entries, id)
			p.used -= e.size
			freed = true
		}
	}
	return freed
}

// take returns the prefetched copy of id, waiting for it if it is in
// flight, or nil when it was never announced (or failed: the caller
// fetches it itself).
func (p *prefetcher) take(id cas.ID) []byte {
	p.mu.Lock()
	e := p.entries[id]
	if e == nil {
		p.mu.Unlock()
		return nil
	}
	e.refs--
	last := e.refs == 0
	p.read = max(p.read, e.seq)
	p.mu.Unlock()
	select {
	case <-e.ready:
	case <-p.r.ctx.Done():
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if last && p.entries[id] == e {
		delete(p.entries, id)
		p.used -= e.size
		p.cond.Broadcast()
	}
	if e.err != nil {
		return nil
	}
	if !last {
		return append([]byte(nil), e.data...)
	}
	return e.data
}
