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
	waiting := map[cas.ID][]*fetchReq{}
	var entries []wire.FetchEntry
	for _, q := range batch {
		if _, dup := waiting[q.e.ID]; !dup {
			entries = append(entries, q.e)
		}
		waiting[q.e.ID] = append(waiting[q.e.ID], q)
	}
	answer := func(id cas.ID, data []byte, err error) {
		qs := waiting[id]
		delete(waiting, id)
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
	for id := range waiting {
		if err == nil {
			err = fmt.Errorf("SMP did not send blob %s: %w", id.Short(), wire.ErrMalformed)
		}
		answer(id, nil, err)
	}
}

func (r *Reader) fetchBatch(entries []wire.FetchEntry, waiting map[cas.ID][]*fetchReq, answer func(cas.ID, []byte, error)) error {
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
		qs, ok := waiting[b.ID]
		if !ok || qs[0].e.Type != b.Type {
			return fmt.Errorf("SMP sent blob %s that was not asked for: %w", b.ID.Short(), wire.ErrMalformed)
		}
		plain, err := cas.Decompress(qs[0].buf[:0], b.Stored, b.Compression, b.RawLen)
		if err == nil {
			err = r.c.hasher.Verify(b.Type, b.ID, plain)
		}
		if err != nil {
			answer(b.ID, nil, fmt.Errorf("blob %s from SMP: %w", b.ID.Short(), err))
			continue
		}
		answer(b.ID, plain, nil)
	}
	return nil
}
