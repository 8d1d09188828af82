package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"smp/cas"
	"smp/cas/manifest"
	"smp/remote/wire"
)

// fetchBatchMax bounds the blobs of one fetch request, and so the bytes
// one stream holds: the answer is decoded blob by blob into the caller's
// buffers.
const fetchBatchMax = 64

// Reader reads one record's blobs from an SMP. It implements
// restore.Store. Concurrent ReadChunk calls are gathered into batch
// requests sent over Streams parallel connections.
type Reader struct {
	c      *Client
	record cas.ID
	reqs   chan *fetchReq
	start  chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	pf     *prefetcher
}

type fetchReq struct {
	e     wire.FetchEntry
	buf   []byte
	reply chan fetchAns
	done  func(fetchAns) // instead of reply, for prefetches
}

type fetchAns struct {
	data []byte
	err  error
}

// Reader returns a reader for record id. Close it when done.
func (c *Client) Reader(record cas.ID) *Reader {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Reader{c: c, record: record, reqs: make(chan *fetchReq, fetchBatchMax*c.opts.Streams), ctx: ctx, cancel: cancel}
	r.pf = newPrefetcher(r)
	for range c.opts.Streams {
		go r.fetcher()
	}
	return r
}

// Close stops the reader's streams.
func (r *Reader) Close() { r.cancel() }

// LoadTree implements restore.Store.
func (r *Reader) LoadTree(id cas.ID) (*manifest.Tree, error) {
	b, err := r.read(cas.BlobTree, id, nil)
	if err != nil {
		return nil, fmt.Errorf("load tree %s: %w", id.Short(), err)
	}
	t, err := manifest.DecodeTree(b)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	return t, nil
}

// ReadChunk implements restore.Store: the chunk, verified against its ID.
func (r *Reader) ReadChunk(id cas.ID, buf []byte) ([]byte, error) {
	if data := r.pf.take(id); data != nil {
		return data, nil
	}
	return r.read(cas.BlobData, id, buf)
}

func (r *Reader) read(t cas.BlobType, id cas.ID, buf []byte) ([]byte, error) {
	req := &fetchReq{e: wire.FetchEntry{Type: t, ID: id}, buf: buf, reply: make(chan fetchAns, 1)}
	select {
	case r.reqs <- req:
	case <-r.ctx.Done():
		return nil, r.ctx.Err()
	}
	// After Close no fetcher may be left to take req from the queue.
	select {
	case a := <-req.reply:
		return a.data, a.err
	case <-r.ctx.Done():
		return nil, r.ctx.Err()
	}
}

// fetcher sends whatever requests are waiting as one batch.
func (r *Reader) fetcher() {
	for {
		var first *fetchReq
		select {
		case first = <-r.reqs:
		case <-r.ctx.Done():
			return
		}
		batch := []*fetchReq{first}
	drain:
		for len(batch) < fetchBatchMax {
			select {
			case q := <-r.reqs:
				batch = append(batch, q)
			default:
				break drain
			}
		}
		r.fetch(batch)
	}
}

func (r *Reader) fetch(batch []*fetchReq) {
	// Requests are matched by type and ID: a data chunk may have a tree's
	// ID, and the two are different blobs.
	waiting := map[cas.BlobKey][]*fetchReq{}
	var entries []wire.FetchEntry
	for _, q := range batch {
		k := cas.BlobKey{Type: q.e.Type, ID: q.e.ID}
		if _, dup := waiting[k]; !dup {
			entries = append(entries, q.e)
		}
		waiting[k] = append(waiting[k], q)
	}
	answer := func(k cas.BlobKey, data []byte, err error) {
		qs := waiting[k]
		delete(waiting, k)
		for i, q := range qs {
			d := data
			if i > 0 && data != nil {
				d = bytes.Clone(data)
			}
			if q.done != nil {
				q.done(fetchAns{data: d, err: err})
			} else {
				q.reply <- fetchAns{data: d, err: err}
			}
		}
	}
	err := r.fetchBatch(entries, waiting, answer)
	for k := range waiting {
		if err == nil {
			err = fmt.Errorf("SMP did not send %s: %w", k, wire.ErrMalformed)
		}
		answer(k, nil, err)
	}
}

func (r *Reader) fetchBatch(entries []wire.FetchEntry, waiting map[cas.BlobKey][]*fetchReq, answer func(cas.BlobKey, []byte, error)) error {
	resp, err := r.c.do(r.ctx, http.MethodPost, "/records/"+r.record.String()+"/fetch", "application/octet-stream", bytes.NewReader(wire.EncodeFetch(entries)))
	if err != nil {
		return fmt.Errorf("fetch from SMP: %w", err)
	}
	defer resp.Body.Close()
	br := wire.NewBlobReader(resp.Body, len(entries), int64(len(entries))*(cas.MaxBlobSize+wire.BlobHeaderLen))
	for len(waiting) > 0 {
		b, err := br.Next()
		if err == io.EOF {
			return fmt.Errorf("SMP answer ended early: %w", wire.ErrMalformed)
		}
		if err != nil {
			return fmt.Errorf("fetch from SMP: %w", err)
		}
		k := cas.BlobKey{Type: b.Type, ID: b.ID}
		qs, ok := waiting[k]
		if !ok {
			return fmt.Errorf("SMP sent %s that was not asked for: %w", k, wire.ErrMalformed)
		}
		plain, err := cas.Decompress(qs[0].buf[:0], b.Stored, b.Compression, b.RawLen)
		if err == nil {
			err = r.c.hasher.Verify(b.Type, b.ID, plain)
		}
		if err != nil {
			answer(k, nil, fmt.Errorf("%s from SMP: %w", k, err))
			continue
		}
		answer(k, plain, nil)
	}
	return nil
}
