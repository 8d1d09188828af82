package cas

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"testing"
)

// segmentPacks returns two real packs (one sealed by s when non-nil) as a
// segment lists them.
func segmentPacks(t testing.TB, s *Sealer) []SegmentPack {
	t.Helper()
	var out []SegmentPack
	for _, blobs := range [][]testBlob{mixedBlobs(), {{typ: BlobData, plain: textBytes(700)}}} {
		var pack []byte
		var id ID
		var entries []PackEntry
		if s != nil {
			pack, id, entries = buildSealedPack(t, s, blobs)
		} else {
			pack, id, entries = buildPack(t, blobs)
		}
		out = append(out, SegmentPack{ID: id, Size: int64(len(pack)), Entries: entries})
	}
	return out
}

// TestSegmentRoundTrip: a segment decodes to exactly the packs and entries
// it was written with, in clear and sealed; a sealed one holds none of
// the IDs in clear, opens only with its own store's keys, and is refused
// by an unencrypted store (and a clear one by an encrypted store).
func TestSegmentRoundTrip(t *testing.T) {
	s := testSealer(t, "store-a", 1, false)
	for _, sealer := range []*Sealer{nil, s} {
		packs := segmentPacks(t, sealer)
		b := EncodeSegment(packs, sealer)
		got, err := DecodeSegment(b, sealer)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, packs) {
			t.Fatalf("sealed=%v: decoded %+v, want %+v", sealer != nil, got, packs)
		}
		if SegmentIDOf(b) == SegmentIDOf(EncodeSegment(packs[:1], sealer)) {
			t.Fatal("two segments share an ID")
		}
		if sealer == nil {
			if _, err := DecodeSegment(b, s); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("clear segment in an encrypted store: %v", err)
			}
			continue
		}
		for _, p := range packs {
			if bytes.Contains(b, p.ID[:8]) || bytes.Contains(b, p.Entries[0].ID[:8]) {
				t.Fatal("a sealed segment holds an ID in clear")
			}
		}
		if _, err := DecodeSegment(b, nil); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("sealed segment in a clear store: %v", err)
		}
		if _, err := DecodeSegment(b, testSealer(t, "store-b", 1, false)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("another store's segment: %v", err)
		}
	}
	if got, err := DecodeSegment(EncodeSegment(nil, nil), nil); err != nil || len(got) != 0 {
		t.Fatalf("empty segment: %v %v", got, err)
	}
}

// reCRCSegment fixes the footer of a segment whose bytes a test changed.
func reCRCSegment(b []byte) []byte {
	n := len(b) - segmentFooterSize
	binary.LittleEndian.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
	return b
}

// TestSegmentRejects: damaged and lying segments are refused with
// ErrCorrupt, whatever their counts claim.
func TestSegmentRejects(t *testing.T) {
	packs := segmentPacks(t, nil)
	good := EncodeSegment(packs, nil)
	body := SegmentHeaderSize + 4 // the first pack's ID
	cases := map[string]func([]byte) []byte{
		"short":     func(b []byte) []byte { return b[:10] },
		"magic":     func(b []byte) []byte { b[0] ^= 1; return reCRCSegment(b) },
		"version":   func(b []byte) []byte { b[8] = 9; return reCRCSegment(b) },
		"crc":       func(b []byte) []byte { b[body] ^= 1; return b },
		"truncated": func(b []byte) []byte { return reCRCSegment(b[:len(b)-60]) },
		"trailing":  func(b []byte) []byte { return reCRCSegment(append(b[:len(b)-4:len(b)-4], 0, 0, 0, 0, 0)) },
		"pack count": func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[SegmentHeaderSize:], 1<<30)
			return reCRCSegment(b)
		},
		"entry count": func(b []byte) []byte { binary.LittleEndian.PutUint32(b[body+IDSize+8:], 1<<19); return reCRCSegment(b) },
		"tiny size":   func(b []byte) []byte { binary.LittleEndian.PutUint64(b[body+IDSize:], 100); return reCRCSegment(b) },
		"huge size":   func(b []byte) []byte { binary.LittleEndian.PutUint64(b[body+IDSize:], 1<<62); return reCRCSegment(b) },
		"blob type":   func(b []byte) []byte { b[body+segmentPackSize] = 9; return reCRCSegment(b) },
		"blob offset": func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[body+segmentPackSize+36:], 1<<40)
			return reCRCSegment(b)
		},
	}
	for name, mod := range cases {
		b := mod(bytes.Clone(good))
		if _, err := DecodeSegment(b, nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: accepted (%v)", name, err)
		}
	}
	big := make([]byte, MaxSegmentSize+1)
	copy(big, good[:SegmentHeaderSize])
	if _, err := DecodeSegment(big, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("oversized segment accepted: %v", err)
	}
}

// TestSplitSegments: packs are grouped in order, each group within the
// body and pack-count bounds, and none is lost.
func TestSplitSegments(t *testing.T) {
	entries := make([]PackEntry, 20000) // about 1 MiB of entries
	var packs []SegmentPack
	for i := range 30 {
		packs = append(packs, SegmentPack{ID: ID{byte(i)}, Entries: entries})
	}
	groups := SplitSegments(packs)
	var n int
	for _, g := range groups {
		size := 4
		for _, p := range g {
			if p.ID != packs[n].ID {
				t.Fatalf("pack %d out of order", n)
			}
			size += segmentPackLen(p)
			n++
		}
		if size > MaxSegmentBody || len(g) > MaxSegmentPacks || len(g) == 0 {
			t.Fatalf("a group of %d packs, %d bytes", len(g), size)
		}
	}
	if n != len(packs) || len(groups) < 4 {
		t.Fatalf("%d packs in %d groups", n, len(groups))
	}
	if SplitSegments(nil) != nil {
		t.Fatal("packs from nothing")
	}
}

// FuzzDecodeSegment: no input makes DecodeSegment panic or allocate beyond
// its bytes, and whatever it accepts holds only entries a trailer could
// (checkEntries) and re-encodes to the same bytes.
func FuzzDecodeSegment(f *testing.F) {
	packs := segmentPacks(f, nil)
	f.Add(EncodeSegment(packs, nil))
	f.Add(EncodeSegment(packs[:1], nil))
	f.Add(EncodeSegment(nil, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		// The header's key ID: read from the first bytes alone, never
		// past them, and an unreadable header is ErrCorrupt.
		if sealed, _, err := SegmentKeyID(b[:min(len(b), SegmentHeadSize)]); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("SegmentKeyID error without ErrCorrupt: %v", err)
		} else if err == nil && sealed != (binary.LittleEndian.Uint16(b[8:10]) == SegmentVersionSealed) {
			t.Fatal("SegmentKeyID misreads the version")
		}
		got, err := DecodeSegment(b, nil)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error without ErrCorrupt: %v", err)
			}
			return
		}
		for _, p := range got {
			checkEntries(t, p.Entries, len(p.Entries)*PackEntrySize+PackFooterSize, p.Size)
		}
		if again := EncodeSegment(got, nil); !bytes.Equal(again, b) {
			t.Fatal("an accepted segment does not re-encode to its bytes")
		}
	})
}
