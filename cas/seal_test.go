package cas

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"

	"smp/keys"
)

// testSealer returns the sealer of store storeID with master key 1 made of
// seed (and key 2, when rotated is set, current), with DefaultCipher.
func testSealer(t testing.TB, storeID string, seed byte, rotated bool) *Sealer {
	t.Helper()
	return testSealerWith(t, storeID, seed, rotated, DefaultCipher)
}

// ciphers is every Cipher, for tests that run with each.
var ciphers = []Cipher{CipherXChaCha20Poly1305, CipherXAES256GCM}

// testSealerWith is testSealer with cipher c.
func testSealerWith(t testing.TB, storeID string, seed byte, rotated bool, c Cipher) *Sealer {
	t.Helper()
	var k1, k2 [32]byte
	for i := range k1 {
		k1[i], k2[i] = seed+byte(i), seed^0x5a+byte(i)
	}
	masters, cur := map[keys.KeyID][32]byte{1: k1}, keys.KeyID(1)
	if rotated {
		masters[2], cur = k2, 2
	}
	kr, err := keys.NewKeyring(cur, masters)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSealer(storeID, kr, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// buildSealedPack writes blobs into a sealed pack and returns it.
func buildSealedPack(t testing.TB, s *Sealer, blobs []testBlob) ([]byte, ID, []PackEntry) {
	t.Helper()
	h := testHasher()
	var buf bytes.Buffer
	w, err := NewSealedPackWriter(&buf, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		stored, c := Compress(nil, b.plain)
		if err := w.Add(b.typ, h.SumBlob(b.typ, b.plain), c, stored, len(b.plain)); err != nil {
			t.Fatal(err)
		}
	}
	id, entries, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), id, entries
}

// TestSealedPackRoundTrip: a sealed pack reads back every blob through its
// sealed trailer, and holds none of the blobs' plaintext, IDs or the
// compressible text's bytes in clear.
func TestSealedPackRoundTrip(t *testing.T) {
	for _, c := range ciphers {
		t.Run(c.String(), func(t *testing.T) { testSealedPackRoundTrip(t, c) })
	}
}

func testSealedPackRoundTrip(t *testing.T, c Cipher) {
	s := testSealerWith(t, "store-a", 1, false, c)
	blobs := mixedBlobs()
	pack, id, written := buildSealedPack(t, s, blobs)
	want := map[Cipher]uint16{CipherXChaCha20Poly1305: PackVersionSealed, CipherXAES256GCM: PackVersionSealedXAES}[c]
	if v, _ := packVersion(pack); v != want {
		t.Fatalf("sealed pack has version %d, want %d", v, want)
	}
	entries, got, err := ReadTrailerWith(bytes.NewReader(pack), int64(len(pack)), s)
	if err != nil {
		t.Fatal(err)
	}
	if got != id || len(entries) != len(written) {
		t.Fatalf("trailer: id %s (want %s), %d entries (want %d)", got.Short(), id.Short(), len(entries), len(written))
	}
	h := testHasher()
	for i, e := range entries {
		if e != written[i] {
			t.Fatalf("entry %d = %+v, written %+v", i, e, written[i])
		}
		plain, err := ReadBlobWith(bytes.NewReader(pack), e, h, s, nil)
		if err != nil {
			t.Fatalf("blob %d: %v", i, err)
		}
		if !bytes.Equal(plain, blobs[i].plain) {
			t.Fatalf("blob %d differs", i)
		}
		if bytes.Contains(pack, e.ID[:8]) {
			t.Errorf("blob %d's ID is in the pack in clear", i)
		}
		if len(blobs[i].plain) >= 64 && bytes.Contains(pack, blobs[i].plain[:64]) {
			t.Errorf("blob %d's plaintext is in the pack in clear", i)
		}
	}
	if bytes.Contains(pack, []byte("quick brown fox")) {
		t.Error("text in clear in a sealed pack")
	}
	// The store's reader takes no unsealed pack, and an unencrypted
	// store's reader no sealed one.
	if _, _, err := ReadTrailer(bytes.NewReader(pack), int64(len(pack))); !errors.Is(err, ErrCorrupt) {
		t.Errorf("sealed pack read without a sealer: %v", err)
	}
	plainPack, _, _ := buildPack(t, blobs)
	if _, _, err := ReadTrailerWith(bytes.NewReader(plainPack), int64(len(plainPack)), s); !errors.Is(err, ErrCorrupt) {
		t.Errorf("unsealed pack read by an encrypted store: %v", err)
	}
	// Nor a pack sealed with the other cipher, though under the same key.
	other := testSealerWith(t, "store-a", 1, false, otherCipher(c))
	_, _, err = ReadTrailerWith(bytes.NewReader(pack), int64(len(pack)), other)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "sealed with "+c.String()) {
		t.Errorf("a %s pack read by a %s store: %v", c, other.Cipher(), err)
	}
}

func otherCipher(c Cipher) Cipher {
	if c == CipherXAES256GCM {
		return CipherXChaCha20Poly1305
	}
	return CipherXAES256GCM
}

// TestCipherNames: every cipher's name parses back to it and marshals as
// config.json spells it; an unknown name or value is refused.
func TestCipherNames(t *testing.T) {
	for _, c := range ciphers {
		b, err := c.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var got Cipher
		if err := got.UnmarshalText(b); err != nil || got != c {
			t.Errorf("%s: parsed back as %v, %v", c, got, err)
		}
		if cipherOfPack(c.packVersion()) != c {
			t.Errorf("%s: pack version %d maps back to %s", c, c.packVersion(), cipherOfPack(c.packVersion()))
		}
	}
	if _, err := ParseCipher("aes-256-gcm"); err == nil {
		t.Error("parsed an unknown cipher name")
	}
	if _, err := Cipher(9).MarshalText(); err == nil {
		t.Error("marshalled an unknown cipher")
	}
	if _, err := NewSealer("s", mustKeyring(t), Cipher(0)); err == nil {
		t.Error("a sealer without a cipher")
	}
}

func mustKeyring(t *testing.T) *keys.Keyring {
	kr, err := keys.NewKeyring(1, map[keys.KeyID][32]byte{1: {1}})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// TestSealedBlobFlippedByte: flipping any one byte of a sealed blob (key
// ID, nonce, ciphertext or tag) fails it.
func TestSealedBlobFlippedByte(t *testing.T) {
	for _, c := range ciphers {
		t.Run(c.String(), func(t *testing.T) { testSealedBlobFlippedByte(t, c) })
	}
}

func testSealedBlobFlippedByte(t *testing.T, c Cipher) {
	s := testSealerWith(t, "store-a", 1, false, c)
	pack, _, entries := buildSealedPack(t, s, []testBlob{{typ: BlobData, plain: textBytes(3000)}, {typ: BlobData, plain: randomBytes(3, 200)}})
	h := testHasher()
	for _, e := range entries {
		for off := e.Offset; off < e.Offset+uint64(e.StoredLen); off++ {
			bad := bytes.Clone(pack)
			bad[off] ^= 0x01
			if _, err := ReadBlobWith(bytes.NewReader(bad), e, h, s, nil); err == nil {
				t.Fatalf("blob %s read with byte %d flipped", e.ID.Short(), off-e.Offset)
			}
		}
	}
	// And the trailer: any flipped byte of it fails the pack.
	n, _ := SealedTrailerLen(pack[len(pack)-PackFooterSize:], int64(len(pack)))
	for off := len(pack) - int(n); off < len(pack); off++ {
		bad := bytes.Clone(pack)
		bad[off] ^= 0x80
		if _, _, err := ReadTrailerWith(bytes.NewReader(bad), int64(len(bad)), s); err == nil {
			t.Fatalf("trailer read with byte %d of %d flipped", off-(len(pack)-int(n)), n)
		}
	}
}

// TestSealedBlobBinding: a sealed blob opens only as the blob it was sealed
// as: another ID, type, compression, length or store, or a keyring without
// its key, fails it. A rotated keyring still opens blobs of the old key.
func TestSealedBlobBinding(t *testing.T) {
	for _, c := range ciphers {
		t.Run(c.String(), func(t *testing.T) { testSealedBlobBinding(t, c) })
	}
}

func testSealedBlobBinding(t *testing.T, ci Cipher) {
	other := CipherXChaCha20Poly1305
	if ci == other {
		other = CipherXAES256GCM
	}
	s := testSealerWith(t, "store-a", 1, false, ci)
	plain := textBytes(2000)
	stored, c := Compress(nil, plain)
	e := PackEntry{Type: BlobData, Compression: c, ID: testHasher().SumBlob(BlobData, plain), RawLen: uint32(len(plain))}
	sealed := s.SealBlob(nil, e, stored)
	e.StoredLen = uint32(len(sealed))
	if got, err := s.OpenBlob(nil, e, sealed); err != nil || !bytes.Equal(got, stored) {
		t.Fatalf("open: %v", err)
	}
	moved := []struct {
		name string
		s    *Sealer
		e    PackEntry
	}{
		{"another ID", s, func() PackEntry { m := e; m.ID[0] ^= 1; return m }()},
		{"another type", s, func() PackEntry { m := e; m.Type = BlobTree; return m }()},
		{"another compression", s, func() PackEntry { m := e; m.Compression = CompressionNone; return m }()},
		{"another length", s, func() PackEntry { m := e; m.RawLen++; return m }()},
		{"another store, same key", testSealerWith(t, "store-b", 1, false, ci), e},
		{"another key", testSealerWith(t, "store-a", 2, false, ci), e},
		{"another cipher, same key", testSealerWith(t, "store-a", 1, false, other), e},
	}
	for _, m := range moved {
		if _, err := m.s.OpenBlob(nil, m.e, sealed); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: opened (%v)", m.name, err)
		}
	}
	rot := testSealerWith(t, "store-a", 1, true, ci)
	if got, err := rot.OpenBlob(nil, e, sealed); err != nil || !bytes.Equal(got, stored) {
		t.Errorf("a rotated keyring does not open the old key's blob: %v", err)
	}
	again := rot.SealBlob(nil, e, stored)
	if _, err := s.OpenBlob(nil, e, again); !errors.Is(err, ErrNoKey) {
		t.Errorf("a blob sealed with key 2 opened by a keyring without it: %v", err)
	}
}

// FuzzOpenSealedBlob: whatever the bytes and entry, opening a sealed blob
// never panics and accepts nothing but what was sealed as that entry.
func FuzzOpenSealedBlob(f *testing.F) {
	var sealers []*Sealer
	plain := textBytes(500)
	stored, c := Compress(nil, plain)
	e := PackEntry{Type: BlobData, Compression: c, ID: testHasher().SumBlob(BlobData, plain), RawLen: uint32(len(plain))}
	for _, ci := range ciphers {
		s := testSealerWith(f, "store-a", 1, false, ci)
		sealers = append(sealers, s)
		sealed := s.SealBlob(nil, e, stored)
		f.Add(sealed, uint8(BlobData), uint8(c), uint32(len(plain)))
		f.Add(sealed[:SealOverhead], uint8(BlobTree), uint8(0), uint32(0))
	}
	f.Add([]byte{}, uint8(0), uint8(9), uint32(1<<31))
	f.Fuzz(func(t *testing.T, b []byte, typ, comp uint8, rawLen uint32) {
		fe := PackEntry{Type: BlobType(typ), Compression: Compression(comp), ID: e.ID, RawLen: rawLen, StoredLen: uint32(len(b))}
		for _, s := range sealers {
			got, err := s.OpenBlob(nil, fe, b)
			if err != nil {
				continue
			}
			if fe.Type != e.Type || fe.Compression != e.Compression || fe.RawLen != e.RawLen || !bytes.Equal(got, stored) {
				t.Fatalf("%s opened a forged blob as %+v", s.Cipher(), fe)
			}
			if _, err := ReadBlobWith(bytes.NewReader(b), PackEntry{Type: fe.Type, Compression: fe.Compression, ID: fe.ID, StoredLen: fe.StoredLen, RawLen: fe.RawLen}, testHasher(), s, nil); err != nil {
				t.Fatalf("%s opened but not read: %v", s.Cipher(), err)
			}
		}
	})
}

// FuzzDecodeSealedTrailer: a sealed pack's trailer decoder never panics,
// allocates within the trailer's bounds, and accepts only entries that
// pass DecodeTrailer's checks (adjusted for the seal).
func FuzzDecodeSealedTrailer(f *testing.F) {
	var sealers []*Sealer
	for _, c := range ciphers {
		s := testSealerWith(f, "store-a", 1, false, c)
		sealers = append(sealers, s)
		pack, _, _ := buildSealedPack(f, s, mixedBlobs())
		f.Add(pack)
		f.Add(pack[:PackHeaderSize+PackFooterSize])
	}
	f.Fuzz(func(t *testing.T, pack []byte) {
		opened := 0
		for _, s := range sealers {
			entries, _, err := ReadTrailerWith(bytes.NewReader(pack), int64(len(pack)), s)
			if err != nil {
				continue
			}
			if opened++; opened > 1 {
				t.Fatal("a pack's trailer opened with both ciphers")
			}
			if v, _ := packVersion(pack); v != s.Cipher().packVersion() {
				t.Fatalf("%s opened a pack of version %d", s.Cipher(), v)
			}
			next := uint64(PackHeaderSize)
			for i, e := range entries {
				if !e.Type.valid() || e.StoredLen < SealOverhead || e.Offset < next || e.Offset+uint64(e.StoredLen) > uint64(len(pack)) {
					t.Fatalf("accepted entry %d: %+v", i, e)
				}
				if e.Compression == CompressionNone && e.StoredLen-SealOverhead != e.RawLen {
					t.Fatalf("accepted raw entry %d with lengths %d/%d", i, e.StoredLen, e.RawLen)
				}
				next = e.Offset + uint64(e.StoredLen)
			}
		}
	})
}

// BenchmarkSealBlob and BenchmarkOpenBlob measure sealing's cost per byte
// of a 1 MiB stored blob: the floor of an encrypted capture's and
// restore's extra CPU.
func BenchmarkSealBlob(b *testing.B) {
	for _, c := range ciphers {
		b.Run(c.String(), func(b *testing.B) {
			s := testSealerWith(b, "store-a", 1, false, c)
			stored := randomBytes(1, 1<<20)
			e := PackEntry{Type: BlobData, RawLen: uint32(len(stored))}
			var out []byte
			b.SetBytes(int64(len(stored)))
			for b.Loop() {
				out = s.SealBlob(out[:0], e, stored)
			}
		})
	}
}

func BenchmarkOpenBlob(b *testing.B) {
	for _, c := range ciphers {
		b.Run(c.String(), func(b *testing.B) {
			s := testSealerWith(b, "store-a", 1, false, c)
			stored := randomBytes(1, 1<<20)
			e := PackEntry{Type: BlobData, RawLen: uint32(len(stored))}
			sealed := s.SealBlob(nil, e, stored)
			e.StoredLen = uint32(len(sealed))
			var out []byte
			b.SetBytes(int64(len(stored)))
			for b.Loop() {
				var err error
				if out, err = s.OpenBlob(out[:0], e, sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzSealedTrailerEntries: entries that authenticate (sealed here with
// the store's key, as a writer with the key could forge them) are still
// checked before use: known type and compression, a seal's worth of bytes,
// lengths within bounds, ranges inside the data area and in order.
func FuzzSealedTrailerEntries(f *testing.F) {
	s := testSealer(f, "store-a", 1, false)
	_, _, entries := buildSealedPack(f, s, mixedBlobs())
	var body []byte
	for _, e := range entries {
		body = e.appendBinary(body)
	}
	f.Add(body, int64(1<<20))
	f.Add(body[:PackEntrySize], int64(PackHeaderSize+200))
	f.Fuzz(func(t *testing.T, body []byte, dataSize int64) {
		if len(body) > 64*PackEntrySize || dataSize < 0 || dataSize > 1<<30 {
			return
		}
		trailer := s.SealTrailer(nil, body)
		sum := crc32.Checksum(trailer, castagnoli)
		trailer = binary.LittleEndian.AppendUint32(trailer, uint32(len(trailer)))
		trailer = binary.LittleEndian.AppendUint32(trailer, sum)
		trailer = append(trailer, trailerMagic...)
		packSize := PackHeaderSize + dataSize + int64(len(trailer))
		got, err := DecodeSealedTrailer(s, trailer, packSize)
		if err != nil {
			return
		}
		if len(body)%PackEntrySize != 0 || len(got) != len(body)/PackEntrySize {
			t.Fatalf("accepted %d entries from %d bytes", len(got), len(body))
		}
		next := uint64(PackHeaderSize)
		for i, e := range got {
			if !e.Type.valid() || e.StoredLen < SealOverhead || e.Offset < next || e.Offset+uint64(e.StoredLen) > uint64(PackHeaderSize+dataSize) {
				t.Fatalf("accepted entry %d: %+v", i, e)
			}
			if e.Compression == CompressionNone && e.StoredLen-SealOverhead != e.RawLen {
				t.Fatalf("accepted raw entry %d with lengths %d/%d", i, e.StoredLen, e.RawLen)
			}
			next = e.Offset + uint64(e.StoredLen)
		}
	})
}

// TestSealScratchCap: a seal scratch fits the blob it is made for, in
// size classes (a power of two of stored bytes plus the seal) up to a
// 4 MiB chunk's, so that one scratch serves the smaller blobs after it;
// beyond that it is the blob's size.
func TestSealScratchCap(t *testing.T) {
	for _, tc := range []struct{ need, want int }{
		{1, 64<<10 + SealOverhead},
		{64<<10 + SealOverhead, 64<<10 + SealOverhead},
		{64<<10 + SealOverhead + 1, 128<<10 + SealOverhead},
		{1<<20 + SealOverhead, 1<<20 + SealOverhead},
		{1<<20 + SealOverhead + 1, 2<<20 + SealOverhead},
		{4<<20 + SealOverhead, 4<<20 + SealOverhead},
		{4<<20 + SealOverhead + 1, 4<<20 + SealOverhead + 1},
		{MaxBlobSize + SealOverhead, MaxBlobSize + SealOverhead},
	} {
		if got := sealScratchCap(tc.need); got != tc.want {
			t.Errorf("sealScratchCap(%d) = %d, want %d", tc.need, got, tc.want)
		}
	}
	for need := 1; need <= sealScratchMax; need += 4093 {
		c := sealScratchCap(need)
		if c < need || c > 2*need+64<<10+SealOverhead {
			t.Fatalf("sealScratchCap(%d) = %d: not between need and twice it", need, c)
		}
	}
}

// TestSealedPackVariedSizes: blobs of growing and shrinking sizes (as a
// chunker cuts them) seal through the shared scratch and read back, each
// from its own bytes: a scratch reused for a smaller blob after a larger
// one leaves nothing of the larger one in the pack.
func TestSealedPackVariedSizes(t *testing.T) {
	s := testSealer(t, "store-varied", 9, false)
	var blobs []testBlob
	for i, n := range []int{100, 300 << 10, 70 << 10, 1 << 20, 5, 900 << 10, 4 << 20, 64<<10 - 1} {
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(i*131 + j*7 + j>>9)
		}
		blobs = append(blobs, testBlob{typ: BlobData, plain: p})
	}
	pack, _, entries := buildSealedPack(t, s, blobs)
	h := testHasher()
	for i, e := range entries {
		got, err := ReadBlobWith(bytes.NewReader(pack), e, h, s, nil)
		if err != nil {
			t.Fatalf("blob %d: %v", i, err)
		}
		if !bytes.Equal(got, blobs[i].plain) {
			t.Fatalf("blob %d reads back different bytes", i)
		}
	}
}
