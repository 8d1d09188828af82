package capture

import (
	"context"
	"sync/atomic"
)

// A file worker's chunker needs a buffer of the chunker's full size
// (Max+Max/4, 5 MiB by default) only for a file that may hold a chunk of
// Max bytes, and there are twice as many workers as cores. So:
//
//   - A file shorter than the store's minimum chunk (most files of a
//     profile) is chunked in its worker's small buffer of that size, and
//     its one chunk is copied for the compressor: a small copy, and the
//     buffer is free for the worker's next file at once.
//   - A larger file borrows one of Options.ChunkBuffers buffers of full
//     size, shared by all workers; a worker waits for one when all are
//     lent (the files that need them keep the cores busy chunking and
//     compressing). Its new chunks go to the compressors without a copy:
//     the chunker overwrites returned chunks only when it refills, and
//     waits then until the compressors are done with them
//     (Chunker.OnRefill). The buffer goes back once the worker is done
//     with the file and the compressors with its chunks.
//
// So a capture's chunker memory is at most Options.ChunkBuffers full
// buffers and one small buffer per worker, whatever the files, plus the
// copies of small chunks in the compressors' queue. A file that grows past
// the size it had when opened moves, for that read, to a full buffer of
// its own, and is read again (its size changed).

// chunkBuf is a buffer of full size lent to a file worker for one file.
type chunkBuf struct {
	b []byte // made on first use: a capture of unchanged files needs none
	// refs counts the worker's own reference while it reads the file and
	// one per chunk of b queued for, or being stored by, a compressor.
	refs atomic.Int32
	// idle has a token when refs dropped to 1 (the worker's alone).
	idle chan struct{}
	home chan *chunkBuf // where it goes back
}

// chunkBufs lends the full-size chunker buffers: n of them, made on first
// use.
type chunkBufs struct {
	free chan *chunkBuf
}

func newChunkBufs(n int) *chunkBufs {
	bufs := &chunkBufs{free: make(chan *chunkBuf, n)}
	for range n {
		bufs.free <- &chunkBuf{idle: make(chan struct{}, 1), home: bufs.free}
	}
	return bufs
}

// get lends a buffer of size bytes, waiting for one to come back when all
// are lent.
func (bufs *chunkBufs) get(ctx context.Context, size int) (*chunkBuf, error) {
	select {
	case b := <-bufs.free:
		if b.b == nil {
			b.b = make([]byte, size)
		}
		b.refs.Store(1)
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// hold adds a reference for a chunk of b on its way to a compressor.
func (b *chunkBuf) hold() { b.refs.Add(1) }

// release drops a reference; the last one gives b back. Never blocks:
// free has room for every buffer.
func (b *chunkBuf) release() {
	switch b.refs.Add(-1) {
	case 0:
		b.home <- b
	case 1:
		select {
		case b.idle <- struct{}{}:
		default:
		}
	}
}

// waitChunks waits until no compressor holds a chunk of b: the worker may
// then overwrite them. A token in idle may be stale (left from an earlier
// file or refill): the count decides.
func (b *chunkBuf) waitChunks(ctx context.Context) error {
	for b.refs.Load() > 1 {
		select {
		case <-b.idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
