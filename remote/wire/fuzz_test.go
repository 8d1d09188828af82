package wire_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"smp/cas"
	"smp/remote/wire"
)

// Anything DecodeHave accepts is within the limits and re-encodes to the
// same bytes: there is one encoding of every query.
func FuzzDecodeHave(f *testing.F) {
	f.Add(wire.EncodeHave(haveEntries(1)))
	f.Add(wire.EncodeHave(haveEntries(9)))
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(withByte(wire.EncodeHave(haveEntries(2)), 4, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := wire.DecodeHave(b)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			if entries != nil {
				t.Fatal("entries returned with an error")
			}
			return
		}
		if len(entries) < 1 || len(entries) > wire.MaxHaveEntries {
			t.Fatalf("accepted %d entries", len(entries))
		}
		for i, e := range entries {
			if e.Type != cas.BlobData && e.Type != cas.BlobTree {
				t.Fatalf("entry %d: accepted type %d", i, e.Type)
			}
			if e.Len > cas.MaxBlobSize {
				t.Fatalf("entry %d: accepted length %d", i, e.Len)
			}
		}
		if !bytes.Equal(wire.EncodeHave(entries), b) {
			t.Fatal("accepted query re-encodes differently")
		}
	})
}

func FuzzDecodeFetch(f *testing.F) {
	f.Add(wire.EncodeFetch(fetchEntries(1)))
	f.Add(wire.EncodeFetch(fetchEntries(5)))
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 1})
	f.Add(withByte(wire.EncodeFetch(fetchEntries(2)), 4, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := wire.DecodeFetch(b)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if len(entries) < 1 || len(entries) > wire.MaxFetchEntries {
			t.Fatalf("accepted %d entries", len(entries))
		}
		for i, e := range entries {
			if e.Type != cas.BlobData && e.Type != cas.BlobTree {
				t.Fatalf("entry %d: accepted type %d", i, e.Type)
			}
		}
		if !bytes.Equal(wire.EncodeFetch(entries), b) {
			t.Fatal("accepted request re-encodes differently")
		}
	})
}

// Every frame BlobReader returns is valid and within the limits, the frames
// re-encode to a prefix of the body (all of it when the reader reached
// EOF), and every other outcome is an ErrMalformed.
func FuzzBlobReader(f *testing.F) {
	var frames []byte
	for _, b := range []wire.Blob{
		{Type: cas.BlobData, Compression: cas.CompressionNone, ID: testID(1), RawLen: 3, Stored: []byte("abc")},
		{Type: cas.BlobTree, Compression: cas.CompressionZstd, ID: testID(2), RawLen: 100, Stored: []byte("not really zstd")},
		{Type: cas.BlobData, Compression: cas.CompressionNone, ID: testID(3)},
	} {
		frames = wire.AppendBlob(frames, b)
	}
	f.Add(frames, uint8(8), uint16(1000))
	f.Add(frames, uint8(2), uint16(1000))
	f.Add(frames, uint8(8), uint16(60))
	f.Add(frames[:50], uint8(8), uint16(1000))
	f.Add([]byte{}, uint8(0), uint16(0))
	f.Add(withByte(frames, 1, 7), uint8(8), uint16(1000))
	huge := bytes.Clone(frames[:wire.BlobHeaderLen])
	binary.LittleEndian.PutUint32(huge[38:], 0xffffffff)
	f.Add(huge, uint8(8), uint16(0xffff))
	f.Fuzz(func(t *testing.T, body []byte, maxCount uint8, maxBytes uint16) {
		br := wire.NewBlobReader(bytes.NewReader(body), int(maxCount), int64(maxBytes))
		var again []byte
		n := 0
		for {
			b, err := br.Next()
			if err == io.EOF {
				if !bytes.Equal(again, body) {
					t.Fatalf("EOF after %d of %d bytes", len(again), len(body))
				}
				return
			}
			if err != nil {
				if !errors.Is(err, wire.ErrMalformed) {
					t.Fatalf("error does not wrap ErrMalformed: %v", err)
				}
				return
			}
			n++
			if n > int(maxCount) {
				t.Fatalf("returned %d blobs, limit %d", n, maxCount)
			}
			if b.Type != cas.BlobData && b.Type != cas.BlobTree {
				t.Fatalf("accepted type %d", b.Type)
			}
			if b.Compression != cas.CompressionNone && b.Compression != cas.CompressionZstd {
				t.Fatalf("accepted compression %d", b.Compression)
			}
			if b.RawLen < 0 || b.RawLen > cas.MaxBlobSize || len(b.Stored) > cas.MaxBlobSize {
				t.Fatalf("accepted lengths raw %d stored %d", b.RawLen, len(b.Stored))
			}
			if b.Compression == cas.CompressionNone && b.RawLen != len(b.Stored) {
				t.Fatalf("accepted raw blob with raw %d stored %d", b.RawLen, len(b.Stored))
			}
			again = wire.AppendBlob(again, b)
			if len(again) > int(maxBytes) {
				t.Fatalf("returned %d bytes, limit %d", len(again), maxBytes)
			}
			if !bytes.HasPrefix(body, again) {
				t.Fatal("frames re-encode to something that is not the body")
			}
		}
	})
}

// A StartCapture body, decoded as the server does (strict JSON) and
// checked: accepted totals are within the bounds, whatever the client
// claims, and a refusal wraps ErrMalformed.
func FuzzStartCaptureTotals(f *testing.F) {
	f.Add([]byte(`{"computer":"PC01","expected":{"files":10,"bytes":10485760}}`))
	f.Add([]byte(`{"computer":"PC01","expected":{"files":18446744073709551615,"bytes":1}}`))
	f.Add([]byte(`{"computer":"PC01","expected":{"files":-1}}`))
	f.Add([]byte(`{"computer":"PC01","expected":null}`))
	f.Add([]byte(`{"computer":"PC01","expected":{"bytes":1e30}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req wire.StartCapture
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if dec.Decode(&req) != nil || req.Expected == nil {
			return
		}
		if err := req.Expected.Check(); err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("refusal does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if req.Expected.Files > wire.MaxExpectedFiles || req.Expected.Bytes > wire.MaxExpectedBytes {
			t.Fatalf("accepted totals %+v past the bounds", *req.Expected)
		}
	})
}
