package capture

import (
	"context"
	"testing"
)

// TestLendingRefill checks the buffers a file's chunker refills: its own
// once no compressor holds its chunks; a free one while they do; the one
// left goes back at the next refill, once its chunks are stored; and the
// file never holds more than two, nor takes one no file gave back.
func TestLendingRefill(t *testing.T) {
	ctx := context.Background()
	const size = 64
	bufs := newChunkBufs(2)
	first, err := bufs.get(ctx, size)
	if err != nil {
		t.Fatal(err)
	}
	l := &lending{bufs: bufs, cur: first}

	// Nothing held: the same buffer, no other taken.
	if b, err := l.refill(ctx, first.b); err != nil || &b[0] != &first.b[0] || l.prev != nil {
		t.Fatalf("idle buffer: refill moved to another (err %v)", err)
	}

	// A compressor holds a chunk of first: the chunker moves to the free one.
	first.hold()
	b, err := l.refill(ctx, first.b)
	if err != nil {
		t.Fatal(err)
	}
	second := l.cur
	if second == first || &b[0] != &second.b[0] || l.prev != first {
		t.Fatal("busy buffer: refill did not move to the free one")
	}
	if len(bufs.free) != 0 {
		t.Fatalf("%d buffers free, want 0", len(bufs.free))
	}

	// Both held: the chunker drops first (back once its chunk is stored)
	// and, no buffer being free, waits for second's chunk.
	second.hold()
	done := make(chan []byte)
	go func() {
		b, err := l.refill(ctx, second.b)
		if err != nil {
			t.Error(err)
		}
		done <- b
	}()
	second.release()
	b = <-done
	if l.cur != second || l.prev != nil || &b[0] != &second.b[0] {
		t.Fatal("refill with no free buffer did not keep its own")
	}
	if len(bufs.free) != 0 {
		t.Fatal("first went back while a compressor held its chunk")
	}
	first.release() // the compressor stores first's chunk: first goes back
	if len(bufs.free) != 1 {
		t.Fatalf("%d buffers free after first's chunks were stored, want 1", len(bufs.free))
	}

	l.release()
	if len(bufs.free) != 2 {
		t.Fatalf("%d buffers free after the file, want 2", len(bufs.free))
	}
}
