package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"smp/cas"
)

// TestBlobReaderAllocatesWhatArrives: a frame header claiming a large
// stored length followed by a few bytes costs the reader those bytes, not
// the claimed length.
func TestBlobReaderAllocatesWhatArrives(t *testing.T) {
	hdr := make([]byte, BlobHeaderLen)
	hdr[0], hdr[1] = byte(cas.BlobTree), byte(cas.CompressionZstd)
	binary.LittleEndian.PutUint32(hdr[34:], 60<<20)
	binary.LittleEndian.PutUint32(hdr[38:], 60<<20)
	body := append(hdr, bytes.Repeat([]byte{1}, 1000)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	br := NewBlobReader(bytes.NewReader(body), MaxBatchBlobs, MaxBatchBytes)
	_, err := br.Next()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("Next on a cut frame = %v, want ErrMalformed", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("a frame claiming 60 MiB with 1000 bytes sent allocated %d KiB", got>>10)
	}

	// Whole frames of every size still read back intact, in one buffer.
	var all []byte
	var want [][]byte
	for _, n := range []int{0, 1, 64 << 10, 64<<10 + 1, 300_000, 1 << 20} {
		p := bytes.Repeat([]byte{byte(n)}, n)
		want = append(want, p)
		all = AppendBlob(all, Blob{Type: cas.BlobData, Compression: cas.CompressionNone, RawLen: n, Stored: p})
	}
	br = NewBlobReader(bytes.NewReader(all), MaxBatchBlobs, MaxBatchBytes)
	for i, w := range want {
		b, err := br.Next()
		if err != nil || !bytes.Equal(b.Stored, w) {
			t.Fatalf("frame %d: %d bytes, %v; want %d", i, len(b.Stored), err, len(w))
		}
	}
}

// TestBlobReaderReady: Ready says whether the next frame has arrived
// whole, without reading anything.
func TestBlobReaderReady(t *testing.T) {
	frame := AppendBlob(nil, Blob{Type: cas.BlobData, Compression: cas.CompressionNone, RawLen: 1000, Stored: bytes.Repeat([]byte{7}, 1000)})
	pr, pw := io.Pipe()
	br := NewBlobReader(pr, MaxBatchBlobs, MaxBatchBytes)
	if br.Ready() {
		t.Fatal("Ready before any byte")
	}
	go pw.Write(frame[:500])
	for br.r.Buffered() < 500 {
		br.r.Peek(500) // let the reader buffer what was written, as Next would
	}
	if br.Ready() {
		t.Fatal("Ready with half a frame")
	}
	go func() { pw.Write(frame[500:]); pw.Write(frame); pw.Close() }()
	if _, err := br.Next(); err != nil {
		t.Fatal(err)
	}
	for br.r.Buffered() < len(frame) {
		if _, err := br.r.Peek(len(frame)); err != nil {
			t.Fatal(err)
		}
	}
	if !br.Ready() {
		t.Fatal("not Ready with a whole frame buffered")
	}
	if b, err := br.Next(); err != nil || len(b.Stored) != 1000 {
		t.Fatalf("second frame: %d bytes, %v", len(b.Stored), err)
	}
}
