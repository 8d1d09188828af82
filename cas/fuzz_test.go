package cas

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// fuzzSeedPack is a small valid pack of mixed blob types and compressions,
// written with packTestKey so FuzzReadPack can read its blobs back.
func fuzzSeedPack(t testing.TB) ([]byte, []PackEntry) {
	pack, _, entries := buildPack(t, []testBlob{
		{typ: BlobData, plain: textBytes(400)},                   // zstd
		{typ: BlobTree, plain: []byte(`{"v":1,"entries":null}`)}, // raw, tiny
		{typ: BlobData, plain: randomBytes(11, 100)},             // raw
		{typ: BlobData, plain: nil},                              // empty
		{typ: BlobRecord, plain: textBytes(120)},                 // zstd
	})
	return pack, entries
}

// checkEntries asserts what DecodeTrailer documents for every accepted
// entry: known type and compression, lengths within MaxBlobSize, raw blobs
// with equal lengths, and ranges inside the data area, in order, without
// overlap.
func checkEntries(t *testing.T, entries []PackEntry, trailerLen int, packSize int64) {
	t.Helper()
	if want := (trailerLen - PackFooterSize) / PackEntrySize; len(entries) != want {
		t.Fatalf("accepted %d entries from a trailer of %d bytes (%d entries)", len(entries), trailerLen, want)
	}
	if len(entries) > MaxPackEntries {
		t.Fatalf("accepted %d entries, over MaxPackEntries", len(entries))
	}
	if packSize < int64(trailerLen)+PackHeaderSize {
		t.Fatalf("accepted a trailer of %d bytes in a pack of %d", trailerLen, packSize)
	}
	dataEnd := uint64(packSize) - uint64(trailerLen)
	next := uint64(PackHeaderSize)
	for i, e := range entries {
		if e.Type < BlobData || e.Type > BlobTombstone {
			t.Errorf("entry %d: accepted type %d", i, e.Type)
		}
		if e.Compression != CompressionNone && e.Compression != CompressionZstd {
			t.Errorf("entry %d: accepted compression %d", i, e.Compression)
		}
		if e.StoredLen > MaxBlobSize || e.RawLen > MaxBlobSize {
			t.Errorf("entry %d: accepted lengths %d/%d over MaxBlobSize", i, e.StoredLen, e.RawLen)
		}
		if e.Compression == CompressionNone && e.StoredLen != e.RawLen {
			t.Errorf("entry %d: accepted raw blob with stored %d != raw %d", i, e.StoredLen, e.RawLen)
		}
		if e.Offset < next {
			t.Errorf("entry %d: offset %d overlaps the previous blob or header (ends at %d)", i, e.Offset, next)
		}
		end := e.Offset + uint64(e.StoredLen)
		if end < e.Offset || end > dataEnd {
			t.Errorf("entry %d: range [%d,%d) outside the data area [%d,%d)", i, e.Offset, end, PackHeaderSize, dataEnd)
		}
		next = end
	}
}

func FuzzDecodeTrailer(f *testing.F) {
	pack, entries := fuzzSeedPack(f)
	tr := trailerOf(pack, len(entries))
	size := int64(len(pack))
	f.Add(tr, size)
	f.Add(tr, size+1000)
	f.Add(tr, int64(len(tr)+PackHeaderSize))
	f.Add(EncodeTrailer(nil), int64(PackHeaderSize+PackFooterSize))
	f.Add(EncodeTrailer(entries[:1]), size)
	// Mutations of the valid trailer, each with the CRC fixed so the fuzzer
	// starts past the checksum.
	for _, mut := range []func(b []byte){
		func(b []byte) { b[0] = 9 },                                           // type
		func(b []byte) { b[1] = 3 },                                           // compression
		func(b []byte) { binary.LittleEndian.PutUint64(b[36:], 0) },           // offset in header
		func(b []byte) { binary.LittleEndian.PutUint64(b[36:], 1<<63) },       // offset huge
		func(b []byte) { binary.LittleEndian.PutUint32(b[44:], MaxBlobSize) }, // stored len
		func(b []byte) { binary.LittleEndian.PutUint32(b[48:], 7) },           // raw len
		func(b []byte) { copy(b[52+36:], b[36:44]) },                          // overlap
	} {
		m := trailerOf(pack, len(entries))
		mut(m)
		f.Add(reCRC(m), size)
	}
	badCount := trailerOf(pack, len(entries))
	binary.LittleEndian.PutUint32(badCount[len(badCount)-16:], MaxPackEntries+1)
	f.Add(badCount, size)
	f.Add([]byte("SMPTRAIL"), int64(0))
	f.Add([]byte{}, int64(-1))

	f.Fuzz(func(t *testing.T, trailer []byte, packSize int64) {
		got, err := DecodeTrailer(trailer, packSize)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeTrailer error %v does not wrap ErrCorrupt", err)
			}
			if got != nil {
				t.Fatalf("DecodeTrailer returned entries with an error")
			}
			return
		}
		checkEntries(t, got, len(trailer), packSize)
		// An accepted trailer re-encodes to itself (entries carry every
		// field but the reserved bytes, which the CRC covers).
		if re := EncodeTrailer(got); !bytes.Equal(re[:len(re)-PackFooterSize], trailer[:len(trailer)-PackFooterSize]) {
			reserved := false
			for i := 0; i+PackEntrySize <= len(trailer)-PackFooterSize; i += PackEntrySize {
				if trailer[i+2] != 0 || trailer[i+3] != 0 {
					reserved = true
				}
			}
			if !reserved {
				t.Fatalf("accepted trailer does not re-encode to itself")
			}
		}
	})
}

func FuzzReadPack(f *testing.F) {
	pack, _ := fuzzSeedPack(f)
	f.Add(pack)
	empty, _, _ := buildPack(f, nil)
	f.Add(empty)
	f.Add(PackHeader())
	f.Add([]byte{})
	// Flip one byte in each region: header, first blob, trailer, footer.
	for _, pos := range []int{3, PackHeaderSize + 5, len(pack) - 40, len(pack) - 12} {
		m := bytes.Clone(pack)
		m[pos] ^= 0x20
		f.Add(m)
	}
	f.Add(pack[:len(pack)-1])

	h := testHasher()
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		entries, id, err := ReadTrailer(r, int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ReadTrailer error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		n := len(entries)*PackEntrySize + PackFooterSize
		checkEntries(t, entries, n, int64(len(data)))
		if PackIDOf(data[len(data)-n:]) != id {
			t.Fatalf("ReadTrailer ID is not the hash of the trailer")
		}
		var buf []byte
		for i, e := range entries {
			if e.Compression == CompressionZstd && e.RawLen > 1<<20 && e.StoredLen < 1<<10 {
				// Decompress allocates raw_len up front, so each such entry
				// costs up to 256 MiB and stalls the fuzzer; that
				// amplification is TestDecompressBoundsAllocation's subject.
				continue
			}
			plain, err := ReadBlob(r, e, h, buf)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("ReadBlob entry %d error %v does not wrap ErrCorrupt", i, err)
				}
				continue
			}
			if len(plain) != int(e.RawLen) {
				t.Fatalf("ReadBlob entry %d returned %d bytes, raw length %d", i, len(plain), e.RawLen)
			}
			if h.SumBlob(e.Type, plain) != e.ID {
				t.Fatalf("ReadBlob entry %d returned bytes that do not hash to its ID", i)
			}
			buf = plain
		}
	})
}
