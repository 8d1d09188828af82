package cas

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/zeebo/blake3"

	"smp/keys"
)

// Index segments (docs/FORMAT.md, "Index segments"). A segment is an
// immutable object listing, for packs one writer committed, what their
// trailers say: the pack ID, its size and its entries. It only ever
// repeats the trailers, so a reader that takes a pack's entries from a
// segment instead of reading the pack's trailer builds the same index;
// a lost or damaged segment costs only the trailer reads it would have
// saved.
//
//	header (16): "SMPSEGMT" | version u16 LE | 6 zero bytes
//	body:        pack count u32 | per pack: pack ID (32) | pack size u64 |
//	             entry count u32 | entries (52 bytes each, the trailer's encoding)
//	             (version 2: the body sealed as a trailer body is, under the
//	             associated data "smp segment v1\0" + store ID + key ID)
//	footer (4):  CRC-32C of header and body as stored
//
// A segment is named by the unkeyed BLAKE3 of its bytes (SegmentIDOf).
const (
	SegmentVersion       = 1 // the body in clear: an unencrypted store
	SegmentVersionSealed = 2 // the body sealed: an encrypted store
	segmentMagic         = "SMPSEGMT"
	SegmentHeaderSize    = 16
	segmentFooterSize    = 4
	segmentPackSize      = IDSize + 8 + 4
	// MaxSegmentSize bounds a segment object: a reader refuses a larger
	// one before reading it, and a writer splits its list to stay far
	// below (MaxSegmentBody).
	MaxSegmentSize = 64 << 20
	// MaxSegmentBody is the most body a writer puts in one segment.
	MaxSegmentBody = 8 << 20
	// MaxSegmentPacks bounds the packs one segment lists.
	MaxSegmentPacks = 1 << 16
)

// SegmentPack is one pack a segment lists.
type SegmentPack struct {
	ID      ID
	Size    int64
	Entries []PackEntry
}

// segmentPackLen is the bytes p takes in a segment's body.
func segmentPackLen(p SegmentPack) int { return segmentPackSize + len(p.Entries)*PackEntrySize }

// SplitSegments groups packs, in order, into lists each of which fits one
// segment (at most MaxSegmentPacks packs and about MaxSegmentBody bytes;
// a single pack larger than that, at most MaxPackEntries entries, gets a
// segment of its own, still under MaxSegmentSize).
func SplitSegments(packs []SegmentPack) [][]SegmentPack {
	var out [][]SegmentPack
	start, n := 0, 4
	for i, p := range packs {
		l := segmentPackLen(p)
		if i > start && (n+l > MaxSegmentBody || i-start >= MaxSegmentPacks) {
			out = append(out, packs[start:i])
			start, n = i, 4
		}
		n += l
	}
	if start < len(packs) {
		out = append(out, packs[start:])
	}
	return out
}

func (s *Sealer) segmentAD(kid keys.KeyID) []byte {
	ad := append([]byte("smp segment v1\x00"), s.store...)
	return binary.LittleEndian.AppendUint32(ad, uint32(kid))
}

// EncodeSegment returns the segment listing packs: sealed by s (version
// 2), or in clear when s is nil (version 1).
func EncodeSegment(packs []SegmentPack, s *Sealer) []byte {
	body := make([]byte, 0, 4+len(packs)*segmentPackSize)
	body = binary.LittleEndian.AppendUint32(body, uint32(len(packs)))
	for _, p := range packs {
		body = append(body, p.ID[:]...)
		body = binary.LittleEndian.AppendUint64(body, uint64(p.Size))
		body = binary.LittleEndian.AppendUint32(body, uint32(len(p.Entries)))
		for _, e := range p.Entries {
			body = e.appendBinary(body)
		}
	}
	v := uint16(SegmentVersion)
	if s != nil {
		v = SegmentVersionSealed
	}
	b := make([]byte, 0, SegmentHeaderSize+len(body)+SealOverhead+segmentFooterSize)
	b = append(b, segmentMagic...)
	b = binary.LittleEndian.AppendUint16(b, v)
	b = append(b, 0, 0, 0, 0, 0, 0)
	if s != nil {
		b = s.seal(b, body, s.segmentAD)
	} else {
		b = append(b, body...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// SegmentIDOf returns the ID, and so the name, of a segment.
func SegmentIDOf(b []byte) ID {
	var id ID
	sum := blake3.Sum256(b)
	copy(id[:], sum[:])
	return id
}

// DecodeSegment checks and decodes a segment. A sealed segment is opened
// with s; an encrypted store (s non-nil) takes no segment in clear, and an
// unencrypted one no sealed segment. Every count is checked against the
// bytes that are there before anything is allocated for it, and every
// pack's entries as a trailer's are: known type and compression, lengths
// within MaxBlobSize, ranges in order inside the pack's data area (which
// the listed size and entry count fix).
func DecodeSegment(b []byte, s *Sealer) ([]SegmentPack, error) {
	if len(b) > MaxSegmentSize {
		return nil, fmt.Errorf("segment of %d bytes is over the %d byte limit: %w", len(b), MaxSegmentSize, ErrCorrupt)
	}
	if len(b) < SegmentHeaderSize+segmentFooterSize || string(b[:8]) != segmentMagic {
		return nil, fmt.Errorf("not an smp index segment (bad magic or too short): %w", ErrCorrupt)
	}
	v := binary.LittleEndian.Uint16(b[8:10])
	if v != SegmentVersion && v != SegmentVersionSealed {
		return nil, fmt.Errorf("index segment format version %d is not supported (this smp reads versions %d and %d): %w", v, SegmentVersion, SegmentVersionSealed, ErrCorrupt)
	}
	stored := b[:len(b)-segmentFooterSize]
	if crc32.Checksum(stored, castagnoli) != binary.LittleEndian.Uint32(b[len(stored):]) {
		return nil, fmt.Errorf("index segment checksum mismatch: %w", ErrCorrupt)
	}
	body := stored[SegmentHeaderSize:]
	var overhead uint32
	switch {
	case v == SegmentVersionSealed && s == nil:
		return nil, fmt.Errorf("index segment is encrypted but the store is not: %w", ErrCorrupt)
	case v == SegmentVersion && s != nil:
		return nil, fmt.Errorf("index segment is not encrypted but the store is: %w", ErrCorrupt)
	case s != nil:
		plain, err := s.open(nil, body, s.segmentAD)
		if err != nil {
			return nil, fmt.Errorf("index segment %w", err)
		}
		body, overhead = plain, SealOverhead
	}
	return decodeSegmentBody(body, overhead)
}

// decodeSegmentBody decodes the packs of a segment's (opened) body; each
// blob of a listed pack carries overhead bytes of sealing.
func decodeSegmentBody(body []byte, overhead uint32) ([]SegmentPack, error) {
	if len(body) < 4 {
		return nil, fmt.Errorf("index segment body too short: %w", ErrCorrupt)
	}
	count := binary.LittleEndian.Uint32(body)
	body = body[4:]
	if count > MaxSegmentPacks || uint64(count)*segmentPackSize > uint64(len(body)) {
		return nil, fmt.Errorf("index segment claims %d packs in %d bytes: %w", count, len(body), ErrCorrupt)
	}
	packs := make([]SegmentPack, 0, count)
	for i := range count {
		if len(body) < segmentPackSize {
			return nil, fmt.Errorf("index segment pack %d: truncated: %w", i, ErrCorrupt)
		}
		var p SegmentPack
		copy(p.ID[:], body)
		size := binary.LittleEndian.Uint64(body[IDSize:])
		n := binary.LittleEndian.Uint32(body[IDSize+8:])
		body = body[segmentPackSize:]
		if n > MaxPackEntries || uint64(n)*PackEntrySize > uint64(len(body)) {
			return nil, fmt.Errorf("index segment pack %d claims %d entries in %d bytes: %w", i, n, len(body), ErrCorrupt)
		}
		// The trailer this entry list repeats: its length follows from
		// the entry count, and the data area ends where it starts.
		trailer := uint64(n)*PackEntrySize + PackFooterSize
		if overhead > 0 {
			trailer += SealOverhead
		}
		if size > 1<<40 || size < trailer+PackHeaderSize {
			return nil, fmt.Errorf("index segment pack %d: size %d cannot hold %d entries: %w", i, size, n, ErrCorrupt)
		}
		entries, err := decodeEntries(body[:n*PackEntrySize], size-trailer, overhead)
		if err != nil {
			return nil, fmt.Errorf("index segment pack %s: %w", p.ID.Short(), err)
		}
		body = body[n*PackEntrySize:]
		p.Size, p.Entries = int64(size), entries
		packs = append(packs, p)
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("index segment has %d bytes after its last pack: %w", len(body), ErrCorrupt)
	}
	return packs, nil
}

// SegmentHeadSize is how many leading bytes of a segment SegmentKeyID
// reads.
const SegmentHeadSize = SegmentHeaderSize + 4

// SegmentKeyID returns, from the first SegmentHeadSize bytes of a
// segment, whether its body is sealed and under which master key (as its
// header says; DecodeSegment authenticates it).
func SegmentKeyID(head []byte) (sealed bool, kid keys.KeyID, err error) {
	if len(head) < SegmentHeadSize || string(head[:8]) != segmentMagic {
		return false, 0, fmt.Errorf("not an smp index segment (bad magic or too short): %w", ErrCorrupt)
	}
	switch binary.LittleEndian.Uint16(head[8:10]) {
	case SegmentVersion:
		return false, 0, nil
	case SegmentVersionSealed:
		return true, keys.KeyID(binary.LittleEndian.Uint32(head[SegmentHeaderSize:])), nil
	}
	return false, 0, fmt.Errorf("index segment format version %d is not supported: %w", binary.LittleEndian.Uint16(head[8:10]), ErrCorrupt)
}
