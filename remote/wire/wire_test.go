package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/iotest"

	"smp/cas"
	"smp/remote/wire"
)

// Sizes from docs/PROTOCOL.md, spelled out here so a change to the code
// that breaks the spec fails these tests.
const (
	haveEntryLen  = 69 // u8 type | 32 id | u32 length | 32 proof
	fetchEntryLen = 33 // u8 type | 32 id
	proofWhole    = 4096
	proofWindow   = 64
	proofSamples  = 16
)

func testID(i int) cas.ID {
	var id cas.ID
	for j := range id {
		id[j] = byte(i*31 + j*7 + 1)
	}
	return id
}

func testProof(i int) [wire.ProofLen]byte {
	var p [wire.ProofLen]byte
	for j := range p {
		p[j] = byte(i*13 + j*3 + 5)
	}
	return p
}

func haveEntries(n int) []wire.HaveEntry {
	out := make([]wire.HaveEntry, n)
	for i := range out {
		t := cas.BlobData
		if i%3 == 2 {
			t = cas.BlobTree
		}
		out[i] = wire.HaveEntry{Type: t, ID: testID(i), Len: uint32(i * 1000), Proof: testProof(i)}
	}
	out[0].Len = cas.MaxBlobSize // the largest length allowed
	return out
}

func fetchEntries(n int) []wire.FetchEntry {
	out := make([]wire.FetchEntry, n)
	for i := range out {
		t := cas.BlobData
		if i%2 == 1 {
			t = cas.BlobTree
		}
		out[i] = wire.FetchEntry{Type: t, ID: testID(i)}
	}
	return out
}

func TestHaveRoundTrip(t *testing.T) {
	for _, n := range []int{1, 2, 7, 8, 9, 100, wire.MaxHaveEntries} {
		in := haveEntries(n)
		b := wire.EncodeHave(in)
		if len(b) != 4+n*haveEntryLen {
			t.Fatalf("n=%d: encoded %d bytes, want %d", n, len(b), 4+n*haveEntryLen)
		}
		if got := binary.LittleEndian.Uint32(b); got != uint32(n) {
			t.Fatalf("n=%d: count field %d", n, got)
		}
		out, err := wire.DecodeHave(b)
		if err != nil {
			t.Fatalf("n=%d: DecodeHave: %v", n, err)
		}
		if len(out) != n {
			t.Fatalf("n=%d: decoded %d entries", n, len(out))
		}
		for i := range in {
			if out[i] != in[i] {
				t.Fatalf("n=%d: entry %d = %+v, want %+v", n, i, out[i], in[i])
			}
		}
		if !bytes.Equal(wire.EncodeHave(out), b) {
			t.Fatalf("n=%d: re-encoding differs", n)
		}
	}
}

func TestFetchRoundTrip(t *testing.T) {
	for _, n := range []int{1, 3, 64, wire.MaxFetchEntries} {
		in := fetchEntries(n)
		b := wire.EncodeFetch(in)
		if len(b) != 4+n*fetchEntryLen {
			t.Fatalf("n=%d: encoded %d bytes, want %d", n, len(b), 4+n*fetchEntryLen)
		}
		out, err := wire.DecodeFetch(b)
		if err != nil {
			t.Fatalf("n=%d: DecodeFetch: %v", n, err)
		}
		if len(out) != n {
			t.Fatalf("n=%d: decoded %d entries", n, len(out))
		}
		for i := range in {
			if out[i] != in[i] {
				t.Fatalf("n=%d: entry %d = %+v, want %+v", n, i, out[i], in[i])
			}
		}
	}
}

// withCount returns b with its count field replaced.
func withCount(b []byte, n uint32) []byte {
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint32(b, n)
	return b
}

// withByte returns b with b[i] = v.
func withByte(b []byte, i int, v byte) []byte {
	b = bytes.Clone(b)
	b[i] = v
	return b
}

func TestDecodeHaveRejects(t *testing.T) {
	good := wire.EncodeHave(haveEntries(3))
	overLen := bytes.Clone(good)
	// Entry 1's length field: 4 (count) + 69 (entry 0) + 1 (type) + 32 (id).
	binary.LittleEndian.PutUint32(overLen[4+haveEntryLen+33:], cas.MaxBlobSize+1)
	maxLen := bytes.Clone(good)
	binary.LittleEndian.PutUint32(maxLen[4+haveEntryLen+33:], 0xffffffff)
	tooMany := make([]byte, 4+(wire.MaxHaveEntries+1)*haveEntryLen)
	binary.LittleEndian.PutUint32(tooMany, wire.MaxHaveEntries+1)
	for i := range wire.MaxHaveEntries + 1 {
		tooMany[4+i*haveEntryLen] = byte(cas.BlobData)
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"nil body", nil},
		{"empty body", []byte{}},
		{"short count", []byte{1, 0, 0}},
		{"count 0", withCount(good[:4], 0)},
		{"count 0 with entries", withCount(good, 0)},
		{"count over max", tooMany},
		{"count 0xffffffff", withCount(good[:4], 0xffffffff)},
		{"count says more", withCount(good, 4)},
		{"count says fewer", withCount(good, 2)},
		{"missing last byte", good[:len(good)-1]},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"type 0", withByte(good, 4, 0)},
		{"type 3 (record)", withByte(good, 4+haveEntryLen, 3)},
		{"type 4 (tombstone)", withByte(good, 4, 4)},
		{"type 255", withByte(good, 4+2*haveEntryLen, 255)},
		{"length over MaxBlobSize", overLen},
		{"length 0xffffffff", maxLen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := wire.DecodeHave(tc.body)
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("DecodeHave = %d entries, %v; want ErrMalformed", len(out), err)
			}
			if out != nil {
				t.Errorf("entries returned with the error: %v", out)
			}
		})
	}
}

func TestDecodeFetchRejects(t *testing.T) {
	good := wire.EncodeFetch(fetchEntries(3))
	tooMany := make([]byte, 4+(wire.MaxFetchEntries+1)*fetchEntryLen)
	binary.LittleEndian.PutUint32(tooMany, wire.MaxFetchEntries+1)
	for i := range wire.MaxFetchEntries + 1 {
		tooMany[4+i*fetchEntryLen] = byte(cas.BlobData)
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"nil body", nil},
		{"empty body", []byte{}},
		{"short count", []byte{1, 0}},
		{"count 0", withCount(good[:4], 0)},
		{"count 0 with entries", withCount(good, 0)},
		{"count over max", tooMany},
		{"count says more", withCount(good, 4)},
		{"count says fewer", withCount(good, 2)},
		{"missing last byte", good[:len(good)-1]},
		{"trailing byte", append(bytes.Clone(good), 1)},
		{"type 0", withByte(good, 4, 0)},
		{"type 3 (record)", withByte(good, 4+fetchEntryLen, 3)},
		{"type 255", withByte(good, 4+2*fetchEntryLen, 255)},
		{"have-query body", wire.EncodeHave(haveEntries(2))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := wire.DecodeFetch(tc.body)
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("DecodeFetch = %d entries, %v; want ErrMalformed", len(out), err)
			}
		})
	}
}

func TestHaveBitmap(t *testing.T) {
	for _, n := range []int{1, 7, 8, 9, 17, 4096} {
		bm := wire.NewHaveBitmap(n)
		if len(bm) != (n+7)/8 {
			t.Fatalf("n=%d: %d bytes", n, len(bm))
		}
		for i := 0; i < n; i += 3 {
			bm.Set(i)
		}
		for i := range n {
			if got, want := bm.Has(i), i%3 == 0; got != want {
				t.Fatalf("n=%d: Has(%d) = %v", n, i, got)
			}
		}
		if bm.Has(len(bm) * 8) {
			t.Fatalf("n=%d: Has past the end", n)
		}
	}
	// LSB first, as the spec says.
	bm := wire.NewHaveBitmap(10)
	bm.Set(0)
	bm.Set(9)
	if !bytes.Equal(bm, []byte{0x01, 0x02}) {
		t.Fatalf("bitmap bytes %x, want 0102", []byte(bm))
	}
}

// testBlobs returns frames of both types and compressions, including an
// empty one.
func testBlobs(t *testing.T) []wire.Blob {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 5000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := bytes.Repeat([]byte("compressible text, said again and again. "), 200)
	stored, c := cas.Compress(nil, text)
	if c != cas.CompressionZstd {
		t.Fatalf("text did not compress")
	}
	return []wire.Blob{
		{Type: cas.BlobData, Compression: cas.CompressionNone, ID: testID(1), RawLen: len(random), Stored: random},
		{Type: cas.BlobData, Compression: cas.CompressionZstd, ID: testID(2), RawLen: len(text), Stored: stored},
		{Type: cas.BlobTree, Compression: cas.CompressionNone, ID: testID(3), RawLen: 0, Stored: []byte{}},
		{Type: cas.BlobTree, Compression: cas.CompressionNone, ID: testID(4), RawLen: 3, Stored: []byte("abc")},
	}
}

func encodeBlobs(blobs []wire.Blob) []byte {
	var b []byte
	for _, bl := range blobs {
		b = wire.AppendBlob(b, bl)
	}
	return b
}

// readAll reads every frame, cloning each Stored slice.
func readAll(r io.Reader, maxCount int, maxBytes int64) ([]wire.Blob, error) {
	br := wire.NewBlobReader(r, maxCount, maxBytes)
	var out []wire.Blob
	for {
		b, err := br.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		b.Stored = bytes.Clone(b.Stored)
		out = append(out, b)
	}
}

func sameBlob(a, b wire.Blob) bool {
	return a.Type == b.Type && a.Compression == b.Compression && a.ID == b.ID && a.RawLen == b.RawLen && bytes.Equal(a.Stored, b.Stored)
}

func TestBlobRoundTrip(t *testing.T) {
	blobs := testBlobs(t)
	appended := encodeBlobs(blobs)
	var written bytes.Buffer
	for _, b := range blobs {
		if err := wire.WriteBlob(&written, b); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(appended, written.Bytes()) {
		t.Fatal("WriteBlob and AppendBlob encode differently")
	}
	total := 0
	for _, b := range blobs {
		total += wire.BlobHeaderLen + len(b.Stored)
	}
	if len(appended) != total {
		t.Fatalf("encoded %d bytes, want %d", len(appended), total)
	}
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(appended),
		"one byte": iotest.OneByteReader(bytes.NewReader(appended)),
		"half":     iotest.HalfReader(bytes.NewReader(appended)),
	} {
		// Exactly at both limits is allowed.
		got, err := readAll(r, len(blobs), int64(total))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != len(blobs) {
			t.Fatalf("%s: read %d blobs, want %d", name, len(got), len(blobs))
		}
		for i := range blobs {
			if !sameBlob(got[i], blobs[i]) {
				t.Fatalf("%s: blob %d = %+v, want %+v", name, i, got[i], blobs[i])
			}
		}
	}
	// An empty body is no blobs.
	if got, err := readAll(bytes.NewReader(nil), 1, 0); err != nil || len(got) != 0 {
		t.Fatalf("empty body: %d blobs, %v", len(got), err)
	}
}

func TestBlobReaderRejects(t *testing.T) {
	blobs := testBlobs(t)
	good := encodeBlobs(blobs)
	first := wire.BlobHeaderLen + len(blobs[0].Stored) // end of frame 0
	total := int64(len(good))
	frame := func(b wire.Blob) []byte { return wire.AppendBlob(nil, b) }
	header := func(typ, comp byte, raw, stored uint32) []byte {
		h := []byte{typ, comp}
		id := testID(9)
		h = append(h, id[:]...)
		h = binary.LittleEndian.AppendUint32(h, raw)
		return binary.LittleEndian.AppendUint32(h, stored)
	}
	for _, tc := range []struct {
		name     string
		body     []byte
		maxCount int
		maxBytes int64
		okBefore int // whole frames returned before the error
	}{
		{"truncated first header", good[:10], 10, total, 0},
		{"one header byte", good[:1], 10, total, 0},
		{"truncated second header", good[:first+wire.BlobHeaderLen-1], 10, total, 1},
		{"header without payload", good[:wire.BlobHeaderLen], 10, total, 0},
		{"truncated payload", good[:first-1], 10, total, 0},
		{"truncated last payload", good[:len(good)-1], 10, total, 3},
		{"too many blobs", good, 2, total, 2},
		{"zero blobs allowed", good, 0, total, 0},
		{"over maxBytes", good, 10, total - 1, 3},
		{"over maxBytes in first", good, 10, int64(first - 1), 0},
		{"type 0", withByte(good, 0, 0), 10, total, 0},
		{"type 3", withByte(good, first, 3), 10, total, 1},
		{"type 255", withByte(good, 0, 255), 10, total, 0},
		{"compression 2", withByte(good, 1, 2), 10, total, 0},
		{"compression 255", withByte(good, first+1, 255), 10, total, 1},
		{"raw with stored != raw", frame(wire.Blob{Type: cas.BlobData, Compression: cas.CompressionNone, ID: testID(5), RawLen: 4, Stored: []byte("abc")}), 10, total, 0},
		{"raw with raw != stored", header(1, 0, 2, 3), 10, total, 0},
		{"raw length over MaxBlobSize", header(1, 1, cas.MaxBlobSize+1, 10), 10, total, 0},
		{"stored length over MaxBlobSize", header(1, 1, 10, cas.MaxBlobSize+1), 10, 1 << 40, 0},
		{"both lengths over MaxBlobSize", header(1, 0, 0xffffffff, 0xffffffff), 10, 1 << 40, 0},
		// A huge claimed length within the limits must fail on the
		// truncated payload, not wait or allocate past maxBytes.
		{"huge claim, short body", header(1, 1, 100, 1<<20), 10, 64 << 20, 0},
		{"huge claim over maxBytes", header(1, 1, 100, cas.MaxBlobSize), 10, 1 << 20, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(bytes.NewReader(tc.body), tc.maxCount, tc.maxBytes)
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("read %d blobs then %v; want ErrMalformed", len(got), err)
			}
			if len(got) != tc.okBefore {
				t.Fatalf("read %d whole blobs before the error, want %d", len(got), tc.okBefore)
			}
			for i := range got {
				if !sameBlob(got[i], blobs[i]) {
					t.Fatalf("blob %d before the error differs", i)
				}
			}
		})
	}
}

func TestBlobReaderPassesReadErrors(t *testing.T) {
	boom := errors.New("connection reset")
	good := encodeBlobs(testBlobs(t))
	for _, cut := range []int{0, 5, wire.BlobHeaderLen + 100} {
		r := io.MultiReader(bytes.NewReader(good[:cut]), iotest.ErrReader(boom))
		_, err := readAll(r, 10, int64(len(good)))
		if !errors.Is(err, boom) {
			t.Fatalf("cut at %d: %v, want the reader's error", cut, err)
		}
		if errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("cut at %d: a read error reported as malformed: %v", cut, err)
		}
	}
}

// failWriter fails after n bytes.
type failWriter struct{ n int }

func (w *failWriter) Write(b []byte) (int, error) {
	if len(b) > w.n {
		k := w.n
		w.n = 0
		return k, io.ErrShortWrite
	}
	w.n -= len(b)
	return len(b), nil
}

func TestWriteBlobErrors(t *testing.T) {
	b := testBlobs(t)[0]
	for _, n := range []int{0, wire.BlobHeaderLen - 1, wire.BlobHeaderLen + 1} {
		if err := wire.WriteBlob(&failWriter{n: n}, b); err == nil {
			t.Fatalf("WriteBlob into a writer failing after %d bytes succeeded", n)
		}
	}
}

func proofOf(nonce []byte, t cas.BlobType, id cas.ID, plain []byte) [wire.ProofLen]byte {
	return wire.Proof(nonce, t, id, plain)
}

func TestProofSmall(t *testing.T) {
	nonce := bytes.Repeat([]byte{7}, 32)
	other := bytes.Repeat([]byte{8}, 32)
	id := testID(1)
	for _, n := range []int{0, 1, 100, proofWhole} {
		plain := make([]byte, n)
		for i := range plain {
			plain[i] = byte(i * 7)
		}
		p := proofOf(nonce, cas.BlobData, id, plain)
		if p != proofOf(nonce, cas.BlobData, id, bytes.Clone(plain)) {
			t.Fatalf("len %d: proof not deterministic", n)
		}
		if p == proofOf(other, cas.BlobData, id, plain) {
			t.Fatalf("len %d: proof does not depend on the nonce", n)
		}
		if p == proofOf(nonce, cas.BlobData, testID(2), plain) {
			t.Fatalf("len %d: proof does not depend on the ID", n)
		}
		if p == proofOf(nonce, cas.BlobTree, id, plain) {
			t.Fatalf("len %d: proof does not depend on the type", n)
		}
		if p == proofOf(nonce, cas.BlobData, id, append(bytes.Clone(plain), 0)) {
			t.Fatalf("len %d: proof does not depend on the length", n)
		}
		// Every byte of a small blob is covered.
		for i := range plain {
			changed := bytes.Clone(plain)
			changed[i] ^= 1
			if p == proofOf(nonce, cas.BlobData, id, changed) {
				t.Fatalf("len %d: changing byte %d leaves the proof", n, i)
			}
		}
	}
}

func TestProofBig(t *testing.T) {
	nonce := bytes.Repeat([]byte{7}, 32)
	other := bytes.Repeat([]byte{9}, 32)
	plain := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range plain {
		plain[i] = byte(rng.Uint32())
	}
	id := testID(1)
	p := proofOf(nonce, cas.BlobData, id, plain)
	if p != proofOf(nonce, cas.BlobData, id, bytes.Clone(plain)) {
		t.Fatal("proof not deterministic")
	}
	if p == proofOf(other, cas.BlobData, id, plain) {
		t.Fatal("proof does not depend on the nonce")
	}
	if p == proofOf(nonce, cas.BlobData, testID(2), plain) {
		t.Fatal("proof does not depend on the ID")
	}
	if p == proofOf(nonce, cas.BlobData, id, plain[:len(plain)-1]) {
		t.Fatal("proof does not depend on the length")
	}

	// Every window of 64 bytes holds exactly one multiple of 64, so
	// flipping the bytes at those offsets finds every sampled window: at
	// least one and at most 16 offsets change the proof.
	hits := sampledOffsets(plain, nonce, id)
	if len(hits) == 0 || len(hits) > proofSamples {
		t.Fatalf("%d of the offsets 0, 64, ... change the proof, want 1..%d", len(hits), proofSamples)
	}
	// The windows depend on the nonce and the ID: another session or blob
	// samples elsewhere (equal sets for 16 random windows in 16384 slots
	// would be a broken derivation, not chance).
	if slices.Equal(hits, sampledOffsets(plain, other, id)) {
		t.Fatal("the sampled windows do not depend on the nonce")
	}
	if slices.Equal(hits, sampledOffsets(plain, nonce, testID(2))) {
		t.Fatal("the sampled windows do not depend on the ID")
	}
	// The last byte is sampled only by a window ending there; just check
	// that proofs of blobs just above the whole-blob size work.
	for _, n := range []int{proofWhole + 1, proofWhole + proofWindow, 5000} {
		q := proofOf(nonce, cas.BlobData, id, plain[:n])
		if q != proofOf(nonce, cas.BlobData, id, plain[:n]) || q == proofOf(nonce, cas.BlobData, id, plain[:n-1]) {
			t.Fatalf("len %d: proof not deterministic or ignores the length", n)
		}
	}
}

// sampledOffsets returns the offsets 0, 64, 128, ... whose change changes
// the proof of plain.
func sampledOffsets(plain, nonce []byte, id cas.ID) []int {
	base := proofOf(nonce, cas.BlobData, id, plain)
	var hits []int
	for off := 0; off < len(plain); off += proofWindow {
		plain[off] ^= 0x80
		if proofOf(nonce, cas.BlobData, id, plain) != base {
			hits = append(hits, off)
		}
		plain[off] ^= 0x80
	}
	return hits
}

// TestProverMatchesProof: one Prover reused for many proofs, from several
// goroutines and mixing whole-blob and sampled proofs, gives exactly the
// proofs of fresh states.
func TestProverMatchesProof(t *testing.T) {
	nonce := bytes.Repeat([]byte{5}, 32)
	p := wire.NewProver(nonce)
	plain := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range plain {
		plain[i] = byte(rng.Uint32())
	}
	sizes := []int{0, 10, proofWhole, proofWhole + 1, 5000, 1 << 20}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 20 {
				n := sizes[(g+round)%len(sizes)]
				id := testID(round)
				if p.Proof(cas.BlobData, id, plain[:n]) != wire.Proof(nonce, cas.BlobData, id, plain[:n]) {
					errs <- fmt.Sprintf("goroutine %d round %d len %d: reused Prover differs", g, round, n)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
