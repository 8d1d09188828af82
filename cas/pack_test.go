package cas

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// packTestKey is the hasher key of every pack built by these tests.
var packTestKey = [32]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}

func testHasher() *Hasher { return NewHasher(packTestKey) }

// randomBytes returns n pseudo-random (incompressible) bytes for seed.
func randomBytes(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// textBytes returns n bytes of highly compressible text.
func textBytes(n int) []byte {
	const line = "the quick brown fox jumps over the lazy dog 0123456789\n"
	return []byte(strings.Repeat(line, n/len(line)+1)[:n])
}

func mustID(t testing.TB, s string) ID {
	t.Helper()
	id, err := ParseID(s)
	if err != nil {
		t.Fatalf("ParseID(%q): %v", s, err)
	}
	return id
}

func TestIDHexRoundTrip(t *testing.T) {
	var seq ID
	for i := range seq {
		seq[i] = byte(i)
	}
	var ff ID
	for i := range ff {
		ff[i] = 0xff
	}
	tests := []struct {
		name    string
		id      ID
		want    string
		wantHex string // Short()
		zero    bool
	}{
		{"zero", ID{}, strings.Repeat("0", 64), "000000000000", true},
		{"sequential", seq, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "000102030405", false},
		{"all ones", ff, strings.Repeat("f", 64), "ffffffffffff", false},
		{"one high byte", ID{31: 0x80}, strings.Repeat("0", 62) + "80", "000000000000", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.id.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if got := tt.id.Short(); got != tt.wantHex {
				t.Errorf("Short() = %q, want %q", got, tt.wantHex)
			}
			if got := tt.id.IsZero(); got != tt.zero {
				t.Errorf("IsZero() = %v, want %v", got, tt.zero)
			}
			got, err := ParseID(tt.want)
			if err != nil || got != tt.id {
				t.Errorf("ParseID(%q) = %v, %v; want %v", tt.want, got, err, tt.id)
			}
			txt, err := tt.id.MarshalText()
			if err != nil || string(txt) != tt.want {
				t.Errorf("MarshalText() = %q, %v; want %q", txt, err, tt.want)
			}
			var back ID
			if err := back.UnmarshalText(txt); err != nil || back != tt.id {
				t.Errorf("UnmarshalText(%q) = %v, %v; want %v", txt, back, err, tt.id)
			}
		})
	}
}

func TestParseIDAcceptsUppercase(t *testing.T) {
	lower := "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	if got, want := mustID(t, strings.ToUpper(lower)), mustID(t, lower); got != want {
		t.Errorf("ParseID(upper) = %v, want %v", got, want)
	}
}

func TestParseIDRejects(t *testing.T) {
	valid := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"one digit short", valid[:63]},
		{"one digit long", valid + "a"},
		{"two digits long", valid + "ab"},
		{"half length", valid[:32]},
		{"non-hex letter", "zz" + valid[2:]},
		{"non-hex at end", valid[:63] + "g"},
		{"0x prefix", "0x" + valid[2:]},
		{"space", " " + valid[1:]},
		{"unicode", "é" + valid[2:]},
		{"NUL", "\x00" + valid[1:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ParseID(tt.in)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("ParseID(%q) error = %v, want ErrCorrupt", tt.in, err)
			}
			if id != (ID{}) && err == nil {
				t.Errorf("ParseID(%q) = %v, want zero ID", tt.in, id)
			}
			var u ID
			if err := u.UnmarshalText([]byte(tt.in)); !errors.Is(err, ErrCorrupt) {
				t.Errorf("UnmarshalText(%q) error = %v, want ErrCorrupt", tt.in, err)
			}
			if u != (ID{}) {
				t.Errorf("UnmarshalText(%q) changed the ID to %v", tt.in, u)
			}
		})
	}
}

// TestHasherKnownAnswer pins the ID function to BLAKE3 keyed mode using the
// official BLAKE3 test vectors (key "whats the Elvish word for friend",
// input bytes i%251), so a change of hash is caught, not just a change of key.
func TestHasherKnownAnswer(t *testing.T) {
	var key [32]byte
	copy(key[:], "whats the Elvish word for friend")
	h := NewHasher(key)
	input := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i % 251)
		}
		return b
	}
	tests := []struct {
		n    int
		want string
	}{
		{0, "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26"},
		{1, "6d7878dfff2f485635d39013278ae14f1454b8c0a3a2d34bc1ab38228a80c95b"},
		{1023, "c951ecdf03288d0fcc96ee3413563d8a6d3589547f2c2fb36d9786470f1b9d6e"},
	}
	for _, tt := range tests {
		if got := h.Sum(input(tt.n)).String(); got != tt.want {
			t.Errorf("Sum(%d bytes) = %s, want %s", tt.n, got, tt.want)
		}
	}
}

func TestHasherKeyed(t *testing.T) {
	keyA := packTestKey
	keyB := packTestKey
	keyB[31] ^= 1
	hA, hA2, hB := NewHasher(keyA), NewHasher(keyA), NewHasher(keyB)
	inputs := [][]byte{nil, []byte("a"), textBytes(100), randomBytes(1, 70000)}
	seen := map[ID]int{}
	for i, in := range inputs {
		a, a2, b := hA.Sum(in), hA2.Sum(in), hB.Sum(in)
		if a != a2 {
			t.Errorf("input %d: same key gives %v and %v", i, a.Short(), a2.Short())
		}
		if a == b {
			t.Errorf("input %d: keys differing in one bit give the same ID %v", i, a.Short())
		}
		if j, dup := seen[a]; dup {
			t.Errorf("inputs %d and %d share ID %v", j, i, a.Short())
		}
		seen[a] = i
		if err := hA.Verify(BlobData, a, in); err != nil {
			t.Errorf("input %d: Verify(own ID) = %v", i, err)
		}
		if err := hB.Verify(BlobData, a, in); !errors.Is(err, ErrCorrupt) {
			t.Errorf("input %d: Verify with another key = %v, want ErrCorrupt", i, err)
		}
	}
}

func TestHasherVerifyDetectsFlippedByte(t *testing.T) {
	h := testHasher()
	data := textBytes(4096)
	id := h.Sum(data)
	for _, pos := range []int{0, 1, 2047, 4095} {
		for _, bit := range []byte{0x01, 0x80} {
			bad := slices.Clone(data)
			bad[pos] ^= bit
			if err := h.Verify(BlobData, id, bad); !errors.Is(err, ErrCorrupt) {
				t.Errorf("flip %#x at %d: Verify = %v, want ErrCorrupt", bit, pos, err)
			}
		}
	}
	if err := h.Verify(BlobData, id, data[:len(data)-1]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated: Verify = %v, want ErrCorrupt", err)
	}
	if err := h.Verify(BlobData, id, append(slices.Clone(data), 0)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("extended: Verify = %v, want ErrCorrupt", err)
	}
}

func TestHasherConcurrent(t *testing.T) {
	h := testHasher()
	data := textBytes(10000)
	want := h.Sum(data)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if got := h.Sum(data); got != want {
					t.Errorf("concurrent Sum = %v, want %v", got.Short(), want.Short())
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestPackIDIsUnkeyedBLAKE3OfTrailer(t *testing.T) {
	// BLAKE3-256 of the empty input (official test vector).
	want := "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
	if got := PackIDOf(nil).String(); got != want {
		t.Errorf("PackIDOf(empty) = %s, want %s", got, want)
	}
}

func TestTypeStrings(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{BlobData.String(), "data"},
		{BlobTree.String(), "tree"},
		{BlobRecord.String(), "record"},
		{BlobTombstone.String(), "tombstone"},
		{BlobType(0).String(), "blobtype(0)"},
		{BlobType(9).String(), "blobtype(9)"},
		{CompressionNone.String(), "none"},
		{CompressionZstd.String(), "zstd"},
		{Compression(7).String(), "compression(7)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}

// testBlob is a blob to put in a test pack.
type testBlob struct {
	typ   BlobType
	plain []byte
	force *Compression // nil: let Compress choose
}

func mixedBlobs() []testBlob {
	none := CompressionNone
	return []testBlob{
		{typ: BlobData, plain: textBytes(10000)},                 // zstd
		{typ: BlobData, plain: randomBytes(7, 5000)},             // raw (incompressible)
		{typ: BlobTree, plain: []byte(`{"v":1,"entries":null}`)}, // tiny: raw
		{typ: BlobData, plain: nil},                              // empty
		{typ: BlobRecord, plain: textBytes(300)},                 // zstd
		{typ: BlobTombstone, plain: randomBytes(8, 32)},          // raw
		{typ: BlobData, plain: textBytes(2000), force: &none},
	}
}

// buildPack writes blobs to a pack in memory and returns its bytes, ID and
// entries.
func buildPack(t testing.TB, blobs []testBlob) ([]byte, ID, []PackEntry) {
	t.Helper()
	h := testHasher()
	var buf bytes.Buffer
	w, err := NewPackWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != PackHeaderSize || w.Count() != 0 {
		t.Fatalf("new writer: Size %d Count %d, want %d 0", w.Size(), w.Count(), PackHeaderSize)
	}
	for i, b := range blobs {
		stored, c := Compress(nil, b.plain)
		if b.force != nil {
			stored, c = b.plain, *b.force
		}
		before := w.Size()
		if err := w.Add(b.typ, h.SumBlob(b.typ, b.plain), c, stored, len(b.plain)); err != nil {
			t.Fatalf("Add blob %d: %v", i, err)
		}
		if got, want := w.Size(), before+uint64(len(stored)); got != want {
			t.Fatalf("after blob %d: Size %d, want %d", i, got, want)
		}
		if w.Count() != i+1 {
			t.Fatalf("after blob %d: Count %d", i, w.Count())
		}
	}
	id, entries, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Size(); got != uint64(buf.Len()) {
		t.Fatalf("Size after Finish = %d, pack is %d bytes", got, buf.Len())
	}
	return buf.Bytes(), id, entries
}

func TestPackRoundTrip(t *testing.T) {
	h := testHasher()
	blobs := mixedBlobs()
	pack, id, entries := buildPack(t, blobs)

	if !bytes.Equal(pack[:PackHeaderSize], PackHeader()) {
		t.Errorf("pack header = %x, want %x", pack[:PackHeaderSize], PackHeader())
	}
	if got, want := len(pack)-PackHeaderSize, len(entries)*PackEntrySize+PackFooterSize; got < want {
		t.Fatalf("pack of %d bytes cannot hold %d entries", len(pack), len(entries))
	}
	if !bytes.Equal(pack[len(pack)-8:], []byte("SMPTRAIL")) {
		t.Errorf("pack does not end with SMPTRAIL: %q", pack[len(pack)-8:])
	}

	got, gotID, err := ReadTrailer(bytes.NewReader(pack), int64(len(pack)))
	if err != nil {
		t.Fatalf("ReadTrailer: %v", err)
	}
	if gotID != id {
		t.Errorf("ReadTrailer ID = %v, Finish said %v", gotID.Short(), id.Short())
	}
	if !slices.Equal(got, entries) {
		t.Errorf("ReadTrailer entries = %+v\nwant %+v", got, entries)
	}
	if len(got) != len(blobs) {
		t.Fatalf("got %d entries, want %d", len(got), len(blobs))
	}

	wantComp := []Compression{CompressionZstd, CompressionNone, CompressionNone, CompressionNone, CompressionZstd, CompressionNone, CompressionNone}
	next := uint64(PackHeaderSize)
	for i, e := range got {
		b := blobs[i]
		if e.Type != b.typ {
			t.Errorf("entry %d: type %v, want %v", i, e.Type, b.typ)
		}
		if e.Compression != wantComp[i] {
			t.Errorf("entry %d: compression %v, want %v", i, e.Compression, wantComp[i])
		}
		if e.ID != h.SumBlob(b.typ, b.plain) {
			t.Errorf("entry %d: ID %v, want hash of plaintext", i, e.ID.Short())
		}
		if e.Offset != next {
			t.Errorf("entry %d: offset %d, want %d (blobs back to back)", i, e.Offset, next)
		}
		next = e.Offset + uint64(e.StoredLen)
		if int(e.RawLen) != len(b.plain) {
			t.Errorf("entry %d: raw len %d, want %d", i, e.RawLen, len(b.plain))
		}
		if e.Compression == CompressionZstd && e.StoredLen >= e.RawLen {
			t.Errorf("entry %d: zstd stored %d >= raw %d", i, e.StoredLen, e.RawLen)
		}
		for _, buf := range [][]byte{nil, make([]byte, 0, 16), make([]byte, 0, 1<<16)} {
			plain, err := ReadBlob(bytes.NewReader(pack), e, h, buf)
			if err != nil {
				t.Errorf("ReadBlob entry %d: %v", i, err)
				continue
			}
			if !bytes.Equal(plain, b.plain) {
				t.Errorf("ReadBlob entry %d: got %d bytes, want %d (content differs)", i, len(plain), len(b.plain))
			}
		}
	}
	if want := uint64(len(pack) - len(got)*PackEntrySize - PackFooterSize); next != want {
		t.Errorf("blobs end at %d, trailer starts at %d", next, want)
	}

	// The pack ID is a pure function of the trailer.
	trailer := pack[len(pack)-len(got)*PackEntrySize-PackFooterSize:]
	if !bytes.Equal(trailer, EncodeTrailer(entries)) {
		t.Errorf("trailer on disk differs from EncodeTrailer(entries)")
	}
	if PackIDOf(trailer) != id {
		t.Errorf("PackIDOf(trailer) != Finish ID")
	}
	// The same blobs give the same pack, byte for byte.
	pack2, id2, _ := buildPack(t, blobs)
	if id2 != id || !bytes.Equal(pack2, pack) {
		t.Errorf("building the same pack twice gave different bytes or IDs")
	}
}

func TestEmptyPack(t *testing.T) {
	pack, id, entries := buildPack(t, nil)
	if len(pack) != PackHeaderSize+PackFooterSize || len(entries) != 0 {
		t.Fatalf("empty pack: %d bytes, %d entries", len(pack), len(entries))
	}
	got, gotID, err := ReadTrailer(bytes.NewReader(pack), int64(len(pack)))
	if err != nil || len(got) != 0 || gotID != id {
		t.Errorf("ReadTrailer(empty pack) = %v, %v, %v; want no entries, %v, nil", got, gotID.Short(), err, id.Short())
	}
}

func TestPackWriterRejectsOversizedBlob(t *testing.T) {
	w, err := NewPackWriter(&bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(BlobData, ID{}, CompressionZstd, []byte("x"), MaxBlobSize+1); err == nil {
		t.Errorf("Add with raw length over MaxBlobSize succeeded")
	}
	if w.Count() != 0 || w.Size() != PackHeaderSize {
		t.Errorf("rejected Add changed the writer: Count %d Size %d", w.Count(), w.Size())
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

func TestPackWriterPropagatesWriteErrors(t *testing.T) {
	if _, err := NewPackWriter(&failWriter{0}); err == nil {
		t.Errorf("NewPackWriter on failing writer succeeded")
	}
	w, err := NewPackWriter(&failWriter{1})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(BlobData, ID{}, CompressionNone, []byte("abc"), 3); err == nil {
		t.Errorf("Add on failing writer succeeded")
	}
	w, _ = NewPackWriter(&failWriter{2})
	if err := w.Add(BlobData, ID{}, CompressionNone, []byte("abc"), 3); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Finish(); err == nil {
		t.Errorf("Finish on failing writer succeeded")
	}
}

// trailerOf returns the trailer part of pack given its entry count.
func trailerOf(pack []byte, n int) []byte {
	return slices.Clone(pack[len(pack)-n*PackEntrySize-PackFooterSize:])
}

// reCRC rewrites the CRC of a trailer after its entries were edited.
func reCRC(tr []byte) []byte {
	body := tr[:len(tr)-PackFooterSize]
	binary.LittleEndian.PutUint32(tr[len(body)+4:], crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
	return tr
}

func TestDecodeTrailerAcceptsValid(t *testing.T) {
	pack, _, entries := buildPack(t, mixedBlobs())
	tr := trailerOf(pack, len(entries))
	got, err := DecodeTrailer(tr, int64(len(pack)))
	if err != nil || !slices.Equal(got, entries) {
		t.Fatalf("DecodeTrailer(valid) = %v, %v", got, err)
	}
	// Extra bytes between the last blob and the trailer are allowed (the
	// data area only bounds blobs), and so are gaps.
	if _, err := DecodeTrailer(tr, int64(len(pack))+100); err != nil {
		t.Errorf("DecodeTrailer with a larger pack size: %v", err)
	}
}

func TestDecodeTrailerRejects(t *testing.T) {
	pack, _, entries := buildPack(t, mixedBlobs())
	n := len(entries)
	size := int64(len(pack))
	dataEnd := uint64(size) - uint64(n*PackEntrySize+PackFooterSize)

	// edit returns a valid trailer with entry i changed by fn and the CRC
	// recomputed, so only the entry check can reject it.
	edit := func(i int, fn func(e []byte)) []byte {
		tr := trailerOf(pack, n)
		fn(tr[i*PackEntrySize : (i+1)*PackEntrySize])
		return reCRC(tr)
	}
	setOffset := func(v uint64) func([]byte) { return func(e []byte) { binary.LittleEndian.PutUint64(e[36:44], v) } }
	setStored := func(v uint32) func([]byte) { return func(e []byte) { binary.LittleEndian.PutUint32(e[44:48], v) } }
	setRaw := func(v uint32) func([]byte) { return func(e []byte) { binary.LittleEndian.PutUint32(e[48:52], v) } }
	both := func(a, b func([]byte)) func([]byte) { return func(e []byte) { a(e); b(e) } }

	last := n - 1
	lastE := entries[last]
	tests := []struct {
		name     string
		trailer  []byte
		packSize int64
	}{
		{"empty", nil, size},
		{"shorter than footer", trailerOf(pack, n)[:PackFooterSize-1], size},
		{"bad magic", func() []byte { tr := trailerOf(pack, n); tr[len(tr)-1] ^= 1; return tr }(), size},
		{"magic only", []byte("SMPTRAIL"), size},
		{"bad CRC field", func() []byte { tr := trailerOf(pack, n); tr[len(tr)-12] ^= 1; return tr }(), size},
		{"entry byte flipped without CRC", func() []byte { tr := trailerOf(pack, n); tr[10] ^= 1; return tr }(), size},
		{"count too large", func() []byte {
			tr := trailerOf(pack, n)
			binary.LittleEndian.PutUint32(tr[len(tr)-16:], MaxPackEntries+1)
			return tr
		}(), size},
		{"count max uint32", func() []byte {
			tr := trailerOf(pack, n)
			binary.LittleEndian.PutUint32(tr[len(tr)-16:], ^uint32(0))
			return tr
		}(), size},
		{"count larger than trailer", func() []byte {
			tr := trailerOf(pack, n)
			binary.LittleEndian.PutUint32(tr[len(tr)-16:], uint32(n+1))
			return tr
		}(), size},
		{"count smaller than trailer", func() []byte {
			tr := trailerOf(pack, n)
			binary.LittleEndian.PutUint32(tr[len(tr)-16:], uint32(n-1))
			return tr
		}(), size},
		{"trailer larger than pack", trailerOf(pack, n), int64(n*PackEntrySize + PackFooterSize + PackHeaderSize - 1)},
		{"negative pack size", trailerOf(pack, n), -1},
		{"partial entry", func() []byte { tr := trailerOf(pack, n); return tr[1:] }(), size},
		{"unknown type 0", edit(0, func(e []byte) { e[0] = 0 }), size},
		{"unknown type 5", edit(0, func(e []byte) { e[0] = 5 }), size},
		{"unknown type 255", edit(2, func(e []byte) { e[0] = 255 }), size},
		{"unknown compression 2", edit(0, func(e []byte) { e[1] = 2 }), size},
		{"unknown compression 255", edit(1, func(e []byte) { e[1] = 255 }), size},
		{"raw stored != raw len", edit(1, setRaw(entries[1].RawLen+1)), size},
		{"raw len 0 stored not", edit(1, setRaw(0)), size},
		{"stored over MaxBlobSize", edit(0, setStored(MaxBlobSize+1)), size},
		{"raw over MaxBlobSize", edit(0, setRaw(MaxBlobSize+1)), size},
		{"raw max uint32", edit(0, setRaw(^uint32(0))), size},
		{"offset inside header", edit(0, setOffset(PackHeaderSize-1)), size},
		{"offset zero", edit(0, setOffset(0)), size},
		{"overlaps previous", edit(1, setOffset(entries[1].Offset-1)), size},
		{"same offset as previous", edit(4, setOffset(entries[0].Offset)), size},
		{"before previous", edit(last, setOffset(PackHeaderSize)), size},
		{"ends past data area", edit(last, both(setStored(lastE.StoredLen+1), setRaw(lastE.RawLen+1))), size},
		{"starts past data area", edit(last, setOffset(dataEnd+1)), size},
		{"starts at data end", edit(last, setOffset(dataEnd)), size},
		{"starts in trailer", edit(last, setOffset(uint64(size)-4)), size},
		{"offset max uint64", edit(last, setOffset(^uint64(0))), size},
		{"offset wraps with length", edit(last, both(setOffset(^uint64(0)-2), setStored(lastE.StoredLen))), size},
		{"valid trailer, pack too small for blobs", trailerOf(pack, n), size - 1},
	}
	// Controls: the data-area cases are valid in a pack big enough, which
	// shows they are rejected for their range and nothing else.
	okAtSize := map[string]int64{
		"ends past data area":                     size + 1,
		"starts past data area":                   size + 1 + int64(lastE.StoredLen),
		"starts at data end":                      size + int64(lastE.StoredLen),
		"valid trailer, pack too small for blobs": size,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeTrailer(tt.trailer, tt.packSize)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("DecodeTrailer error = %v, want ErrCorrupt", err)
			}
			if got != nil {
				t.Errorf("DecodeTrailer returned %d entries with an error", len(got))
			}
			if okSize, ok := okAtSize[tt.name]; ok {
				if _, err := DecodeTrailer(tt.trailer, okSize); err != nil {
					t.Errorf("control: DecodeTrailer at pack size %d = %v, want success", okSize, err)
				}
			}
		})
	}
}

func TestTrailerLen(t *testing.T) {
	footer := func(count uint32, magic string) []byte {
		b := binary.LittleEndian.AppendUint32(nil, count)
		b = append(b, 0, 0, 0, 0)
		return append(b, magic...)
	}
	tests := []struct {
		name    string
		footer  []byte
		size    int64
		want    int64
		wantErr bool
	}{
		{"empty pack", footer(0, "SMPTRAIL"), 32, 16, false},
		{"one entry exact", footer(1, "SMPTRAIL"), 16 + 52 + 16, 68, false},
		{"one entry too small", footer(1, "SMPTRAIL"), 16 + 52 + 15, 0, true},
		{"max entries", footer(MaxPackEntries, "SMPTRAIL"), 1 << 40, MaxPackEntries*PackEntrySize + PackFooterSize, false},
		{"over max entries", footer(MaxPackEntries+1, "SMPTRAIL"), 1 << 40, 0, true},
		{"bad magic", footer(0, "SMPTRAI_"), 32, 0, true},
		{"short footer", footer(0, "SMPTRAIL")[1:], 32, 0, true},
		{"long footer", append(footer(0, "SMPTRAIL"), 0), 32, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TrailerLen(tt.footer, tt.size)
			if tt.wantErr {
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("TrailerLen = %d, %v; want ErrCorrupt", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("TrailerLen = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestReadTrailerRejects(t *testing.T) {
	pack, _, _ := buildPack(t, mixedBlobs())
	mod := func(fn func(p []byte) []byte) []byte { return fn(slices.Clone(pack)) }
	tests := []struct {
		name string
		pack []byte
	}{
		{"empty", nil},
		{"header only", pack[:PackHeaderSize]},
		{"31 bytes", pack[:PackHeaderSize+PackFooterSize-1]},
		{"bad pack magic", mod(func(p []byte) []byte { p[0] = 'X'; return p })},
		{"magic without NUL", mod(func(p []byte) []byte { p[7] = ' '; return p })},
		{"version 0", mod(func(p []byte) []byte { p[8] = 0; return p })},
		{"version 2", mod(func(p []byte) []byte { p[8] = 2; return p })},
		{"truncated by one byte", pack[:len(pack)-1]},
		{"truncated to half", pack[:len(pack)/2]},
		{"trailing garbage", append(slices.Clone(pack), 0)},
		{"data prefix cut", append(PackHeader(), pack[PackHeaderSize+10:]...)},
		{"trailer crc flipped", mod(func(p []byte) []byte { p[len(p)-12] ^= 0x40; return p })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, id, err := ReadTrailer(bytes.NewReader(tt.pack), int64(len(tt.pack)))
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("ReadTrailer = %d entries, %v; want ErrCorrupt", len(entries), err)
			}
			if entries != nil || !id.IsZero() {
				t.Errorf("ReadTrailer returned entries or an ID with an error")
			}
		})
	}
}

func TestCheckPackHeader(t *testing.T) {
	h := PackHeader()
	if len(h) != PackHeaderSize || string(h[:8]) != "SMPPACK\x00" || binary.LittleEndian.Uint16(h[8:]) != PackVersion {
		t.Fatalf("PackHeader() = %q", h)
	}
	if err := CheckPackHeader(h); err != nil {
		t.Errorf("CheckPackHeader(PackHeader()) = %v", err)
	}
	for _, bad := range [][]byte{nil, h[:15], []byte("SMPPACK\x01\x01\x00\x00\x00\x00\x00\x00\x00")} {
		if err := CheckPackHeader(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("CheckPackHeader(%q) = %v, want ErrCorrupt", bad, err)
		}
	}
}

func TestReadBlobDetectsFlippedByte(t *testing.T) {
	h := testHasher()
	pack, _, entries := buildPack(t, mixedBlobs())
	for i, e := range entries {
		if e.StoredLen == 0 {
			continue
		}
		for _, pos := range []uint64{0, uint64(e.StoredLen) / 2, uint64(e.StoredLen) - 1} {
			bad := slices.Clone(pack)
			bad[e.Offset+pos] ^= 0x01
			_, err := ReadBlob(bytes.NewReader(bad), e, h, nil)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("entry %d (%v, %v) byte %d flipped: ReadBlob = %v, want ErrCorrupt", i, e.Type, e.Compression, pos, err)
			}
			// Neighbours are unaffected.
			for j, o := range entries {
				if j == i {
					continue
				}
				if _, err := ReadBlob(bytes.NewReader(bad), o, h, nil); err != nil {
					t.Errorf("entry %d flipped: ReadBlob of entry %d = %v", i, j, err)
				}
			}
		}
	}
}

func TestReadBlobRejectsBadEntries(t *testing.T) {
	h := testHasher()
	pack, _, entries := buildPack(t, mixedBlobs())
	zstdE, rawE := entries[0], entries[1]
	if zstdE.Compression != CompressionZstd || rawE.Compression != CompressionNone {
		t.Fatalf("unexpected compressions %v %v", zstdE.Compression, rawE.Compression)
	}
	tests := []struct {
		name string
		e    PackEntry
	}{
		{"wrong ID", func() PackEntry { e := rawE; e.ID[0] ^= 1; return e }()},
		{"raw len mismatch raw", func() PackEntry { e := rawE; e.RawLen--; return e }()},
		{"raw len mismatch zstd", func() PackEntry { e := zstdE; e.RawLen++; return e }()},
		{"zstd read as raw", func() PackEntry { e := zstdE; e.Compression = CompressionNone; e.RawLen = e.StoredLen; return e }()},
		{"raw read as zstd", func() PackEntry { e := rawE; e.Compression = CompressionZstd; return e }()},
		{"unknown compression", func() PackEntry { e := zstdE; e.Compression = 9; return e }()},
		{"stored over limit", func() PackEntry { e := rawE; e.StoredLen = MaxBlobSize + 1; return e }()},
		{"raw over limit", func() PackEntry { e := zstdE; e.RawLen = MaxBlobSize + 1; return e }()},
		{"past end of pack", func() PackEntry { e := rawE; e.Offset = uint64(len(pack)) - 10; return e }()},
		{"shifted by one", func() PackEntry { e := rawE; e.Offset++; return e }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadBlob(bytes.NewReader(pack), tt.e, h, nil)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("ReadBlob = %d bytes, %v; want ErrCorrupt", len(got), err)
			}
		})
	}
}

// writePack commits blobs through a PackDir and returns the pack ID, entries
// and size.
func writePack(t testing.TB, d *PackDir, blobs []testBlob) (ID, []PackEntry, int64) {
	t.Helper()
	h := testHasher()
	p, err := d.Create()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		stored, c := Compress(nil, b.plain)
		if err := p.Add(b.typ, h.SumBlob(b.typ, b.plain), c, stored, len(b.plain)); err != nil {
			t.Fatal(err)
		}
	}
	id, entries, size, err := p.Commit()
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return id, entries, size
}

func listDir(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func walkAll(t testing.TB, d *PackDir) map[ID]int64 {
	t.Helper()
	got := map[ID]int64{}
	if err := d.Walk(func(id ID, size int64) error {
		if _, dup := got[id]; dup {
			t.Errorf("Walk listed %v twice", id.Short())
		}
		got[id] = size
		return nil
	}); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return got
}

func TestPackDirCommit(t *testing.T) {
	h := testHasher()
	root := filepath.Join(t.TempDir(), "packs")
	d, err := NewPackDir(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if st, err := os.Stat(filepath.Join(root, "tmp")); err != nil || !st.IsDir() {
		t.Fatalf("NewPackDir did not create tmp/: %v", err)
	}
	if got := walkAll(t, d); len(got) != 0 {
		t.Errorf("Walk of a new PackDir = %v", got)
	}

	blobs := mixedBlobs()
	id, entries, size := writePack(t, d, blobs)

	s := id.String()
	if want := filepath.Join(root, s[:2], s+".pack"); d.Path(id) != want {
		t.Errorf("Path = %q, want %q", d.Path(id), want)
	}
	st, err := os.Stat(d.Path(id))
	if err != nil {
		t.Fatalf("committed pack not at Path(id): %v", err)
	}
	if st.Size() != size {
		t.Errorf("pack file is %d bytes, Commit said %d", st.Size(), size)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("pack file mode %v, want 0600", st.Mode().Perm())
	}
	if left := listDir(t, filepath.Join(root, "tmp")); len(left) != 0 {
		t.Errorf("packs/tmp holds %v after Commit", left)
	}
	if gotSize, err := d.Stat(id); err != nil || gotSize != size {
		t.Errorf("Stat = %d, %v; want %d", gotSize, err, size)
	}

	got, err := d.ReadTrailer(id)
	if err != nil || !slices.Equal(got, entries) {
		t.Errorf("ReadTrailer = %v, %v; want %v", got, err, entries)
	}
	// The file's own trailer hashes to its name.
	f, err := os.Open(d.Path(id))
	if err != nil {
		t.Fatal(err)
	}
	_, fileID, err := ReadTrailer(f, size)
	f.Close()
	if err != nil || fileID != id {
		t.Errorf("pack file trailer ID = %v, %v; want %v", fileID.Short(), err, id.Short())
	}

	if w := walkAll(t, d); len(w) != 1 || w[id] != size {
		t.Errorf("Walk = %v, want {%v: %d}", w, id.Short(), size)
	}
	for i, e := range entries {
		plain, err := d.ReadBlob(id, e, h, nil)
		if err != nil || !bytes.Equal(plain, blobs[i].plain) {
			t.Errorf("PackDir.ReadBlob entry %d = %d bytes, %v", i, len(plain), err)
		}
	}

	// A second pack lands beside the first; Walk lists both.
	id2, _, size2 := writePack(t, d, []testBlob{{typ: BlobData, plain: textBytes(777)}})
	if id2 == id {
		t.Fatalf("different packs share ID %v", id.Short())
	}
	if w := walkAll(t, d); len(w) != 2 || w[id] != size || w[id2] != size2 {
		t.Errorf("Walk = %v, want both packs", w)
	}
}

func TestPackDirWalkIgnoresStrayFiles(t *testing.T) {
	root := t.TempDir()
	d, err := NewPackDir(root)
	if err != nil {
		t.Fatal(err)
	}
	id, _, size := writePack(t, d, []testBlob{{typ: BlobData, plain: textBytes(500)}})
	stray := []string{
		"ab/notanid.pack",
		"ab/" + strings.Repeat("a", 63) + ".pack",
		"ab/" + strings.Repeat("a", 64) + ".pack.old",
		"ab/readme.txt",
		"tmp/" + strings.Repeat("b", 64) + ".pack", // tmp is never walked
		"tmp/deadbeef.tmp",
	}
	for _, p := range stray {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if w := walkAll(t, d); len(w) != 1 || w[id] != size {
		t.Errorf("Walk = %v, want only %v", w, id.Short())
	}
	stop := errors.New("stop")
	if err := d.Walk(func(ID, int64) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Walk did not return fn's error: %v", err)
	}
}

func TestPackDirAbort(t *testing.T) {
	root := t.TempDir()
	d, err := NewPackDir(root)
	if err != nil {
		t.Fatal(err)
	}
	h := testHasher()
	p, err := d.Create()
	if err != nil {
		t.Fatal(err)
	}
	if left := listDir(t, filepath.Join(root, "tmp")); len(left) != 1 || !strings.HasSuffix(left[0], ".tmp") {
		t.Errorf("packs/tmp during write = %v, want one .tmp file", left)
	}
	plain := textBytes(3000)
	stored, c := Compress(nil, plain)
	if err := p.Add(BlobData, h.Sum(plain), c, stored, len(plain)); err != nil {
		t.Fatal(err)
	}
	p.Abort()
	if left := listDir(t, filepath.Join(root, "tmp")); len(left) != 0 {
		t.Errorf("packs/tmp after Abort = %v", left)
	}
	if got := listDir(t, root); !slices.Equal(got, []string{"tmp"}) {
		t.Errorf("pack dir after Abort = %v, want only tmp", got)
	}
	if w := walkAll(t, d); len(w) != 0 {
		t.Errorf("Walk after Abort = %v", w)
	}
}

func TestPackDirTruncatedPack(t *testing.T) {
	h := testHasher()
	root := t.TempDir()
	d, err := NewPackDir(root)
	if err != nil {
		t.Fatal(err)
	}
	blobs := mixedBlobs()
	id, entries, size := writePack(t, d, blobs)
	lastData := entries[len(entries)-1]
	dataEnd := int64(lastData.Offset) + int64(lastData.StoredLen)

	tests := []struct {
		name   string
		cut    int64
		badIdx []int // entries whose read must fail
	}{
		{"one byte of footer", size - 1, nil},
		{"whole trailer", dataEnd, nil},
		{"into last blob", dataEnd - 1, []int{len(entries) - 1}},
		{"to header", PackHeaderSize, []int{0, 1, 2, 3, 4, 5, 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d2, err := NewPackDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d2.Close()
			b, err := os.ReadFile(d.Path(id))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(d2.Path(id)), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(d2.Path(id), b[:tt.cut], 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := d2.ReadTrailer(id); !errors.Is(err, ErrCorrupt) {
				t.Errorf("ReadTrailer of truncated pack = %v, want ErrCorrupt", err)
			}
			for _, i := range tt.badIdx {
				if _, err := d2.ReadBlob(id, entries[i], h, nil); !errors.Is(err, ErrCorrupt) {
					t.Errorf("ReadBlob entry %d of truncated pack = %v, want ErrCorrupt", i, err)
				}
			}
			if len(tt.badIdx) == 0 {
				// Blobs before the cut still read.
				for i, e := range entries {
					if got, err := d2.ReadBlob(id, e, h, nil); err != nil || !bytes.Equal(got, blobs[i].plain) {
						t.Errorf("ReadBlob entry %d before the cut = %v", i, err)
					}
				}
			}
		})
	}
}

// TestPackDirTruncatedWhileOpen truncates a pack whose descriptor PackDir
// has cached: the stale size must not let a read run past the new end.
func TestPackDirTruncatedWhileOpen(t *testing.T) {
	h := testHasher()
	d, err := NewPackDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	blobs := mixedBlobs()
	id, entries, _ := writePack(t, d, blobs)
	if _, err := d.ReadBlob(id, entries[0], h, nil); err != nil { // caches the fd
		t.Fatal(err)
	}
	last := entries[len(entries)-1]
	if err := os.Truncate(d.Path(id), int64(last.Offset)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadBlob(id, last, h, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ReadBlob past the new end = %v, want ErrCorrupt", err)
	}
}

func TestPackDirMissingPack(t *testing.T) {
	h := testHasher()
	d, err := NewPackDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	missing := h.Sum([]byte("no such pack"))
	e := PackEntry{Type: BlobData, ID: h.Sum([]byte("x")), Offset: PackHeaderSize, StoredLen: 1, RawLen: 1}
	if _, err := d.ReadBlob(missing, e, h, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadBlob of missing pack = %v, want ErrNotFound", err)
	}
	if _, err := d.Stat(missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat of missing pack = %v, want ErrNotFound", err)
	}
	if _, err := d.ReadTrailer(missing); err == nil || !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadTrailer of missing pack = %v, want a not-exist error", err)
	}
}

// TestPackDirReadTrailerMissingIsErrNotFound: cas.ErrNotFound is documented
// as "returned when a blob, pack or record does not exist", and ReadBlob and
// Stat map a missing pack to it, but ReadTrailer returns the raw
// *fs.PathError.
func TestPackDirReadTrailerMissingIsErrNotFound(t *testing.T) {
	d, err := NewPackDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadTrailer(ID{1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadTrailer of missing pack = %v, want ErrNotFound", err)
	}
}

func TestPackDirRenamedPackFailsIDCheck(t *testing.T) {
	d, err := NewPackDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id, _, _ := writePack(t, d, []testBlob{{typ: BlobData, plain: textBytes(100)}})
	other := ID{0xaa}
	if err := os.MkdirAll(filepath.Dir(d.Path(other)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(d.Path(id), d.Path(other)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadTrailer(other); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ReadTrailer of a pack under the wrong name = %v, want ErrCorrupt", err)
	}
}

// TestPackDirDescriptorCache reads from more packs than the descriptor limit
// and checks the cache stays bounded and reads stay correct.
func TestPackDirDescriptorCache(t *testing.T) {
	h := testHasher()
	d, err := NewPackDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.limit = 3
	type packed struct {
		id    ID
		e     PackEntry
		plain []byte
	}
	var packs []packed
	for i := range 10 {
		plain := randomBytes(uint64(100+i), 200+i)
		id, entries, _ := writePack(t, d, []testBlob{{typ: BlobData, plain: plain}})
		packs = append(packs, packed{id, entries[0], plain})
	}
	for round := range 3 {
		for i, p := range packs {
			got, err := d.ReadBlob(p.id, p.e, h, nil)
			if err != nil || !bytes.Equal(got, p.plain) {
				t.Fatalf("round %d pack %d: ReadBlob = %v", round, i, err)
			}
			d.mu.Lock()
			n, l := len(d.open), d.lru.Len()
			d.mu.Unlock()
			if n > d.limit || n != l {
				t.Fatalf("round %d pack %d: %d cached descriptors (list %d), limit %d", round, i, n, l, d.limit)
			}
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				p := packs[(g+i)%len(packs)]
				got, err := d.ReadBlob(p.id, p.e, h, nil)
				if err != nil || !bytes.Equal(got, p.plain) {
					t.Errorf("concurrent ReadBlob: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, el := range d.open {
		if op := el.Value.(*openPack); op.refs != 0 {
			t.Errorf("pack %v has %d references after all reads", op.id.Short(), op.refs)
		}
	}
}

func TestPackEntryBinaryLayout(t *testing.T) {
	e := PackEntry{Type: BlobTree, Compression: CompressionZstd, ID: ID{0: 0xaa, 31: 0xbb}, Offset: 0x0102030405060708, StoredLen: 0x11223344, RawLen: 0x55667788}
	got := hex.EncodeToString(EncodeTrailer([]PackEntry{e})[:PackEntrySize])
	want := "0201" + "0000" + "aa" + strings.Repeat("00", 30) + "bb" + "0807060504030201" + "44332211" + "88776655"
	if got != want {
		t.Errorf("entry encoding\n got %s\nwant %s", got, want)
	}
}
