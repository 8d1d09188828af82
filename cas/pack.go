package cas

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/zeebo/blake3"

	"smp/keys"
)

// BlobType says what a blob holds. Values are part of the on-disk format.
type BlobType uint8

const (
	BlobData      BlobType = 1 // a chunk of file contents
	BlobTree      BlobType = 2 // an encoded directory (cas/manifest.Tree)
	BlobRecord    BlobType = 3 // an encoded state record (cas/manifest.Record)
	BlobTombstone BlobType = 4 // the ID of a removed record
)

func (t BlobType) String() string {
	switch t {
	case BlobData:
		return "data"
	case BlobTree:
		return "tree"
	case BlobRecord:
		return "record"
	case BlobTombstone:
		return "tombstone"
	}
	return fmt.Sprintf("blobtype(%d)", uint8(t))
}

func (t BlobType) valid() bool { return t >= BlobData && t <= BlobTombstone }

// Pack format constants; see docs/FORMAT.md.
const (
	PackVersion = 1 // blobs and trailer in clear
	// PackVersionSealed is the pack of an encrypted store: every blob and
	// the trailer's entries sealed (see seal.go) with XChaCha20-Poly1305.
	PackVersionSealed = 2
	// PackVersionSealedXAES is PackVersionSealed with XAES-256-GCM: the
	// same layout, another AEAD (CipherXAES256GCM).
	PackVersionSealedXAES = 3
	packMagic             = "SMPPACK\x00"
	trailerMagic          = "SMPTRAIL"
	PackHeaderSize        = 16
	PackFooterSize        = 16
	PackEntrySize         = 52
	// MaxBlobSize bounds every blob's plaintext and stored length; lengths
	// read from disk or the network above it are corrupt.
	MaxBlobSize = 256 << 20
	// MaxPackEntries bounds a trailer so a damaged count cannot make a reader
	// allocate without limit.
	MaxPackEntries = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// PackEntry locates one blob inside a pack.
type PackEntry struct {
	Type        BlobType
	Compression Compression
	ID          ID
	Offset      uint64 // from the start of the pack file
	StoredLen   uint32 // bytes in the pack
	RawLen      uint32 // plaintext bytes
}

// Key returns the blob's type and ID.
func (e PackEntry) Key() BlobKey { return BlobKey{Type: e.Type, ID: e.ID} }

func (e PackEntry) appendBinary(b []byte) []byte {
	b = append(b, byte(e.Type), byte(e.Compression), 0, 0)
	b = append(b, e.ID[:]...)
	b = binary.LittleEndian.AppendUint64(b, e.Offset)
	b = binary.LittleEndian.AppendUint32(b, e.StoredLen)
	b = binary.LittleEndian.AppendUint32(b, e.RawLen)
	return b
}

// PackHeader returns the fixed header every unsealed pack starts with.
func PackHeader() []byte { return packHeader(PackVersion) }

func packHeader(version uint16) []byte {
	h := make([]byte, 0, PackHeaderSize)
	h = append(h, packMagic...)
	h = binary.LittleEndian.AppendUint16(h, version)
	h = append(h, 0, 0, 0, 0, 0, 0)
	return h
}

// CheckPackHeader validates a pack's first PackHeaderSize bytes.
func CheckPackHeader(h []byte) error {
	_, err := packVersion(h)
	return err
}

// packVersion validates a pack header and returns its format version.
func packVersion(h []byte) (uint16, error) {
	if len(h) < PackHeaderSize || string(h[:8]) != packMagic {
		return 0, fmt.Errorf("not an smp pack (bad magic): %w", ErrCorrupt)
	}
	v := binary.LittleEndian.Uint16(h[8:10])
	if v < PackVersion || v > PackVersionSealedXAES {
		return 0, fmt.Errorf("pack format version %d is not supported (this smp reads versions %d-%d): %w", v, PackVersion, PackVersionSealedXAES, ErrCorrupt)
	}
	return v, nil
}

// PackVersionOf reads the header of the pack r and returns its format
// version (PackVersion, PackVersionSealed or PackVersionSealedXAES).
func PackVersionOf(r io.ReaderAt) (uint16, error) {
	h := make([]byte, PackHeaderSize)
	if _, err := r.ReadAt(h, 0); err != nil {
		if err == io.EOF {
			return 0, fmt.Errorf("pack too short for its header: %w", ErrCorrupt)
		}
		return 0, fmt.Errorf("read pack header: %w", err)
	}
	return packVersion(h)
}

// EncodeTrailer returns the trailer (entries then footer) for entries.
func EncodeTrailer(entries []PackEntry) []byte {
	b := make([]byte, 0, len(entries)*PackEntrySize+PackFooterSize)
	for _, e := range entries {
		b = e.appendBinary(b)
	}
	sum := crc32.Checksum(b, castagnoli)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(entries)))
	b = binary.LittleEndian.AppendUint32(b, sum)
	b = append(b, trailerMagic...)
	return b
}

// TrailerLen reads the footer (the last PackFooterSize bytes of a pack) and
// returns the whole trailer's length, checked against the pack size.
func TrailerLen(footer []byte, packSize int64) (int64, error) {
	if len(footer) != PackFooterSize || string(footer[8:]) != trailerMagic {
		return 0, fmt.Errorf("pack trailer magic missing (truncated or damaged pack): %w", ErrCorrupt)
	}
	count := binary.LittleEndian.Uint32(footer[0:4])
	if count > MaxPackEntries {
		return 0, fmt.Errorf("pack trailer claims %d entries: %w", count, ErrCorrupt)
	}
	n := int64(count)*PackEntrySize + PackFooterSize
	if n+PackHeaderSize > packSize {
		return 0, fmt.Errorf("pack trailer (%d bytes) larger than pack (%d bytes): %w", n, packSize, ErrCorrupt)
	}
	return n, nil
}

// DecodeTrailer decodes a trailer read from the end of a pack of packSize
// bytes. Every entry is checked: known type and compression, a blob range
// inside the data area, lengths within MaxBlobSize, and no overlaps.
func DecodeTrailer(trailer []byte, packSize int64) ([]PackEntry, error) {
	if len(trailer) < PackFooterSize {
		return nil, fmt.Errorf("pack trailer too short: %w", ErrCorrupt)
	}
	n, err := TrailerLen(trailer[len(trailer)-PackFooterSize:], packSize)
	if err != nil {
		return nil, err
	}
	if int64(len(trailer)) != n {
		return nil, fmt.Errorf("pack trailer is %d bytes, footer says %d: %w", len(trailer), n, ErrCorrupt)
	}
	body := trailer[:len(trailer)-PackFooterSize]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(trailer[len(body)+4:]) {
		return nil, fmt.Errorf("pack trailer checksum mismatch: %w", ErrCorrupt)
	}
	return decodeEntries(body, uint64(packSize-n), 0)
}

// decodeEntries decodes and checks the entries of a trailer whose pack's
// data area ends at dataEnd; each stored blob carries overhead bytes of
// sealing beyond its stored (compressed) form.
func decodeEntries(body []byte, dataEnd uint64, overhead uint32) ([]PackEntry, error) {
	if len(body)%PackEntrySize != 0 || len(body)/PackEntrySize > MaxPackEntries {
		return nil, fmt.Errorf("pack trailer of %d bytes is not a whole number of entries: %w", len(body), ErrCorrupt)
	}
	next := uint64(PackHeaderSize)
	entries := make([]PackEntry, 0, len(body)/PackEntrySize)
	for off := 0; off < len(body); off += PackEntrySize {
		raw := body[off : off+PackEntrySize]
		e := PackEntry{
			Type:        BlobType(raw[0]),
			Compression: Compression(raw[1]),
			Offset:      binary.LittleEndian.Uint64(raw[36:44]),
			StoredLen:   binary.LittleEndian.Uint32(raw[44:48]),
			RawLen:      binary.LittleEndian.Uint32(raw[48:52]),
		}
		copy(e.ID[:], raw[4:36])
		if err := e.check(next, dataEnd, overhead); err != nil {
			return nil, fmt.Errorf("pack trailer entry %d: %w", len(entries), err)
		}
		next = e.Offset + uint64(e.StoredLen)
		entries = append(entries, e)
	}
	return entries, nil
}

func (e PackEntry) check(minOffset, dataEnd uint64, overhead uint32) error {
	switch {
	case !e.Type.valid():
		return fmt.Errorf("unknown blob type %d: %w", e.Type, ErrCorrupt)
	case e.Compression != CompressionNone && e.Compression != CompressionZstd:
		return fmt.Errorf("unknown compression %d: %w", e.Compression, ErrCorrupt)
	case e.StoredLen < overhead:
		return fmt.Errorf("sealed blob of %d bytes is shorter than its seal: %w", e.StoredLen, ErrCorrupt)
	case e.StoredLen-overhead > MaxBlobSize || e.RawLen > MaxBlobSize:
		return fmt.Errorf("blob length over %d: %w", MaxBlobSize, ErrCorrupt)
	case e.Compression == CompressionNone && e.StoredLen-overhead != e.RawLen:
		return fmt.Errorf("raw blob with stored %d != raw %d: %w", e.StoredLen, e.RawLen, ErrCorrupt)
	case e.Offset < minOffset || e.Offset > dataEnd || uint64(e.StoredLen) > dataEnd-e.Offset:
		return fmt.Errorf("blob range [%d,+%d) outside data area or overlapping: %w", e.Offset, e.StoredLen, ErrCorrupt)
	}
	return nil
}

// PackWriter appends blobs to a pack stream. It buffers nothing but the
// trailer entries: blob bytes go straight to w.
type PackWriter struct {
	w       io.Writer
	offset  uint64
	entries []PackEntry
	trailer []byte
	sealer  *Sealer // nil: an unsealed (version 1) pack
}

// sealScratch holds each blob's sealed copy while a PackWriter writes it
// (the writer keeps no slice it was given). It is shared by every pack
// writer, so the copies a process holds follow the blobs being added at
// once, not the packs open or waiting for their commit (each pack kept a
// copy of its largest blob, up to 4 MiB).
var sealScratch = sync.Pool{New: func() any { return new([]byte) }}

// sealScratchCap is the capacity of a new seal scratch for a sealed blob
// of need bytes: its stored part rounded up to a power of two of at least
// 64 KiB, plus the seal, up to sealScratchMax; a larger blob gets need
// exactly. Chunk sizes vary from blob to blob: a scratch of exactly one
// blob's size would be replaced (allocated and zeroed anew) whenever a
// larger blob followed, adding garbage and collections to an encrypted
// capture; with size classes a pooled scratch fits most later blobs, at
// most twice their size.
func sealScratchCap(need int) int {
	if need > sealScratchMax {
		return need
	}
	c := 64 << 10
	for c+SealOverhead < need {
		c <<= 1
	}
	return c + SealOverhead
}

// sealScratchMax is the largest size class of sealScratchCap: a chunk of
// the default chunker's largest size (4 MiB) and its seal.
const sealScratchMax = 4<<20 + SealOverhead

// NewPackWriter writes the pack header to w and returns a writer.
func NewPackWriter(w io.Writer) (*PackWriter, error) { return NewSealedPackWriter(w, nil) }

// NewSealedPackWriter is NewPackWriter for a pack whose blobs and trailer
// s seals (a version 2 or 3 pack, as s's cipher says); a nil s writes an
// unsealed pack.
func NewSealedPackWriter(w io.Writer, s *Sealer) (*PackWriter, error) {
	v := uint16(PackVersion)
	if s != nil {
		v = s.cipher.packVersion()
	}
	if _, err := w.Write(packHeader(v)); err != nil {
		return nil, fmt.Errorf("write pack header: %w", err)
	}
	// Pinned: every blob and the trailer are sealed under one key, the
	// one KeyOf reads from the trailer, even if s adopts a newer keyring
	// meanwhile.
	return &PackWriter{w: w, offset: PackHeaderSize, sealer: s.Pin()}, nil
}

// KeyID reports whether the pack is sealed and under which master key
// (every blob and the trailer are).
func (p *PackWriter) KeyID() (bool, keys.KeyID) {
	if p.sealer == nil {
		return false, 0
	}
	return true, p.sealer.Current()
}

// Add appends an already compressed blob.
func (p *PackWriter) Add(t BlobType, id ID, c Compression, stored []byte, rawLen int) error {
	if len(stored) > MaxBlobSize || rawLen > MaxBlobSize {
		return fmt.Errorf("blob %s of %d bytes is over the %d byte limit", id.Short(), rawLen, MaxBlobSize)
	}
	e := PackEntry{Type: t, Compression: c, ID: id, Offset: p.offset, RawLen: uint32(rawLen)}
	if p.sealer != nil {
		scratch := sealScratch.Get().(*[]byte)
		defer sealScratch.Put(scratch)
		if need := len(stored) + SealOverhead; cap(*scratch) < need {
			*scratch = make([]byte, 0, sealScratchCap(need)) // not grown by append: no garbage of half its size
		}
		*scratch = p.sealer.SealBlob((*scratch)[:0], e, stored)
		stored = *scratch
	}
	if _, err := p.w.Write(stored); err != nil {
		return fmt.Errorf("write blob %s: %w", id.Short(), err)
	}
	e.StoredLen = uint32(len(stored))
	p.entries = append(p.entries, e)
	p.offset += uint64(len(stored))
	return nil
}

// Size is the number of bytes written so far.
func (p *PackWriter) Size() uint64 { return p.offset }

// Count is the number of blobs added so far.
func (p *PackWriter) Count() int { return len(p.entries) }

// Entries returns the blobs added so far; the slice must not be changed.
func (p *PackWriter) Entries() []PackEntry { return p.entries }

// Finish writes the trailer and returns the pack's ID and entries. The pack
// ID is the unkeyed BLAKE3 of the trailer, which names every blob it holds.
func (p *PackWriter) Finish() (ID, []PackEntry, error) {
	if p.sealer != nil {
		p.trailer = EncodeSealedTrailer(p.sealer, p.entries)
	} else {
		p.trailer = EncodeTrailer(p.entries)
	}
	if _, err := p.w.Write(p.trailer); err != nil {
		return ID{}, nil, fmt.Errorf("write pack trailer: %w", err)
	}
	p.offset += uint64(len(p.trailer))
	return PackIDOf(p.trailer), p.entries, nil
}

// PackIDOf returns the ID of a pack with the given trailer.
func PackIDOf(trailer []byte) ID {
	var id ID
	sum := blake3.Sum256(trailer)
	copy(id[:], sum[:])
	return id
}

// ReadTrailer reads and decodes the trailer of an unsealed pack of size bytes.
func ReadTrailer(r io.ReaderAt, size int64) ([]PackEntry, ID, error) {
	return ReadTrailerWith(r, size, nil)
}

// ReadTrailerWith reads and decodes the trailer of a pack of size bytes,
// opening it with s. A sealer reads only packs sealed with its cipher and
// no sealer only unsealed ones: an encrypted store takes no blob it did
// not seal, and an unencrypted store has no key to open one.
func ReadTrailerWith(r io.ReaderAt, size int64, s *Sealer) ([]PackEntry, ID, error) {
	if size < PackHeaderSize+PackFooterSize {
		return nil, ID{}, fmt.Errorf("pack of %d bytes is too short: %w", size, ErrCorrupt)
	}
	header := make([]byte, PackHeaderSize)
	if _, err := r.ReadAt(header, 0); err != nil {
		return nil, ID{}, fmt.Errorf("read pack header: %w", err)
	}
	v, err := packVersion(header)
	if err != nil {
		return nil, ID{}, err
	}
	if err := s.accepts(v); err != nil {
		return nil, ID{}, err
	}
	footer := make([]byte, PackFooterSize)
	if _, err := r.ReadAt(footer, size-PackFooterSize); err != nil {
		return nil, ID{}, fmt.Errorf("read pack footer: %w", err)
	}
	var n int64
	if s != nil {
		n, err = SealedTrailerLen(footer, size)
	} else {
		n, err = TrailerLen(footer, size)
	}
	if err != nil {
		return nil, ID{}, err
	}
	trailer := make([]byte, n)
	if _, err := r.ReadAt(trailer, size-n); err != nil {
		return nil, ID{}, fmt.Errorf("read pack trailer: %w", err)
	}
	var entries []PackEntry
	if s != nil {
		entries, err = DecodeSealedTrailer(s, trailer, size)
	} else {
		entries, err = DecodeTrailer(trailer, size)
	}
	if err != nil {
		return nil, ID{}, err
	}
	return entries, PackIDOf(trailer), nil
}

// ReadBlob reads the blob e from r, decompresses it into buf and verifies
// its ID with h. The returned slice may alias buf (it is grown when short).
func ReadBlob(r io.ReaderAt, e PackEntry, h *Hasher, buf []byte) ([]byte, error) {
	return ReadBlobWith(r, e, h, nil, buf)
}

// ReadBlobWith is ReadBlob for a pack that s sealed (nil: unsealed).
func ReadBlobWith(r io.ReaderAt, e PackEntry, h *Hasher, s *Sealer, buf []byte) ([]byte, error) {
	if s != nil {
		return readSealedBlob(r, e, h, s, buf)
	}
	if e.StoredLen > MaxBlobSize || e.RawLen > MaxBlobSize {
		return nil, fmt.Errorf("blob %s length over limit: %w", e.ID.Short(), ErrCorrupt)
	}
	var plain []byte
	if e.Compression == CompressionNone {
		if e.StoredLen != e.RawLen {
			return nil, fmt.Errorf("blob %s: raw length mismatch: %w", e.ID.Short(), ErrCorrupt)
		}
		if cap(buf) < int(e.RawLen) {
			buf = make([]byte, e.RawLen)
		}
		plain = buf[:e.RawLen]
		if err := readFull(r, plain, e); err != nil {
			return nil, err
		}
	} else {
		scratch := getScratch(int(e.StoredLen))
		defer putScratch(scratch)
		stored := (*scratch)[:e.StoredLen]
		if err := readFull(r, stored, e); err != nil {
			return nil, err
		}
		var err error
		plain, err = Decompress(buf, stored, e.Compression, int(e.RawLen))
		if err != nil {
			return nil, fmt.Errorf("blob %s: %w", e.ID.Short(), err)
		}
	}
	if err := h.Verify(e.Type, e.ID, plain); err != nil {
		return nil, err
	}
	return plain, nil
}

func readFull(r io.ReaderAt, p []byte, e PackEntry) error {
	if _, err := r.ReadAt(p, int64(e.Offset)); err != nil {
		if err == io.EOF {
			err = fmt.Errorf("pack truncated: %w", ErrCorrupt)
		}
		return fmt.Errorf("read blob %s: %w", e.ID.Short(), err)
	}
	return nil
}

// scratchPool holds buffers for compressed bytes on their way to the
// decompressor, so restores do not allocate one per chunk.
var scratchPool sync.Pool

func getScratch(n int) *[]byte {
	if v, ok := scratchPool.Get().(*[]byte); ok && cap(*v) >= n {
		return v
	}
	b := make([]byte, scratchSize(n))
	return &b
}

// scratchSize is the size of a new scratch buffer for n bytes: the next
// power of two from 64 KiB up to 1 MiB, a multiple of 1 MiB beyond. Blobs
// of assorted sizes (a tree of small files) then find the pooled buffer
// big enough instead of each replacing it with one of its own size.
func scratchSize(n int) int {
	const small, large = 64 << 10, 1 << 20
	if n > large {
		return (n + large - 1) / large * large
	}
	size := small
	for size < n {
		size *= 2
	}
	return size
}

func putScratch(b *[]byte) { scratchPool.Put(b) }
