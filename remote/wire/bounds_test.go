package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
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
