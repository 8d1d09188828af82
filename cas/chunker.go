package cas

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"

	"github.com/zeebo/blake3"
)

// Chunking in smp is FastCDC (Xia et al., "FastCDC: a Fast and Efficient
// Content-Defined Chunking Approach for Data Deduplication", USENIX ATC 2016,
// and the extended 2020 IEEE TPDS version) with:
//
//   - a 64-bit gear hash, rolled with the "left shift" variant
//     h = (h << 1) + gear[b], so bit k of h depends on the last k+1 bytes and
//     the high bits see a 64-byte window;
//   - cut-point skipping: the first Min bytes of every chunk are not hashed,
//     which both speeds chunking up and enforces the minimum size;
//   - normalized chunking, level 2: until Avg bytes into the chunk a cut needs
//     log2(Avg)+2 zero bits (maskS, harder), after that only log2(Avg)-2
//     (maskL, easier). This squeezes the chunk-size distribution towards Avg:
//     the papers found it keeps deduplication close to unnormalized CDC while
//     producing far fewer tiny and huge chunks, and the skipped Min bytes are
//     never hashed at all.
//
// A boundary is declared after the byte whose hash satisfies the mask, so a
// chunk's end depends only on the chunk's own bytes, never on the first byte
// of the next chunk (the papers' pseudocode cuts before that byte instead). A
// chunk ends at Max bytes if no boundary was found earlier.
//
// Everything here is part of the on-disk contract: the chunk boundaries decide
// chunk IDs, and any change to the gear table, the masks, or the loop would
// make new backups stop deduplicating against old ones. TestChunkerGolden pins
// it.

const (
	// MinAvgChunkSize and MaxAvgChunkSize bound the average chunk size a store
	// may choose. Below 64 KiB the per-chunk overhead (index entries, pack
	// trailer entries, IDs in trees) dominates; above 64 MiB dedupe granularity
	// is poor and the chunker buffer (8*Avg) gets unreasonably large.
	MinAvgChunkSize = 64 << 10
	MaxAvgChunkSize = 64 << 20

	// DefaultAvgChunkSize is the average chunk size of a new store.
	DefaultAvgChunkSize = 512 << 10

	// gearSeed is the domain-separation prefix of the gear table derivation.
	// Changing it changes every chunk boundary: never do that for v1 stores.
	gearSeed = "smp gear v1"

	// maxEmptyReads bounds how many consecutive (0, nil) reads the chunker
	// tolerates before giving up with io.ErrNoProgress, as bufio does, so a
	// broken reader cannot hang a backup in a busy loop.
	maxEmptyReads = 100
)

// gearTable maps a byte to a pseudo-random 64-bit value for the gear hash.
//
// It is derived, not pasted, so that it is reproducible from this comment
// alone: gearTable[i] is the first 8 bytes, read little endian, of the
// unkeyed BLAKE3-256 of the 11 ASCII bytes "smp gear v1" followed by the
// single byte i. It must never change (see TestGearTableGolden).
var gearTable = func() (t [256]uint64) {
	in := make([]byte, len(gearSeed)+1)
	copy(in, gearSeed)
	for i := range t {
		in[len(gearSeed)] = byte(i)
		sum := blake3.Sum256(in)
		t[i] = binary.LittleEndian.Uint64(sum[:8])
	}
	return t
}()

// ChunkerParams are the content-defined chunking parameters, fixed per store at init.
type ChunkerParams struct {
	Min, Avg, Max int // bytes; Avg a power of two; Min < Avg < Max

	// KeyedGear says the gear table is keyed from the store's hash key
	// (KeyedGearTable) instead of the fixed table, so chunk boundaries do
	// not fingerprint a known file to someone without the key. Set for
	// new encrypted stores; kept in config.json and sent in /v1/info.
	KeyedGear bool `json:"keyed_gear,omitempty"`

	// Gear is the keyed table when KeyedGear is set; whoever holds the
	// hash key fills it in (WithGearKey) before chunking. Never stored.
	Gear *[256]uint64 `json:"-"`
}

// WithGearKey returns p ready to chunk for a store with hash key key: with
// its keyed gear table when p.KeyedGear is set, unchanged otherwise.
func (p ChunkerParams) WithGearKey(key [32]byte) ChunkerParams {
	if p.KeyedGear {
		p.Gear = KeyedGearTable(key)
	} else {
		p.Gear = nil
	}
	return p
}

// KeyedGearTable derives a store's gear table from its hash key:
// gear[i] is bytes 8i..8i+7, read little endian, of HKDF-SHA256 with the
// hash key as secret, no salt, and info "smp keyed gear v1", 2048 bytes.
// Every client that chunks for a store already holds its hash key (it
// computes the chunks' IDs), so the table needs no secret of its own.
func KeyedGearTable(key [32]byte) *[256]uint64 {
	b, err := hkdf.Key(sha256.New, key[:], nil, "smp keyed gear v1", 256*8)
	if err != nil {
		panic(err) // 2048 bytes is within HKDF-SHA256's limit
	}
	var t [256]uint64
	for i := range t {
		t[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return &t
}

// DefaultChunkerParams returns the parameters of a new store: Avg 512
// KiB, Min 128 KiB, Max 2 MiB. A store keeps the parameters it was made
// with (config.json), so changing the default never changes an existing
// store's chunks.
func DefaultChunkerParams() ChunkerParams {
	p, err := ChunkerParamsForAvg(DefaultAvgChunkSize)
	if err != nil {
		panic(err) // DefaultAvgChunkSize is a valid constant
	}
	return p
}

// ChunkerParamsForAvg returns parameters with the given average chunk size and
// Min = avg/4, Max = avg*4: wide enough around Avg for normalized chunking to
// shape the size distribution, narrow enough to bound the largest chunk (and
// the chunker's buffer) at a small multiple of Avg. avg must be a power of two
// in [64 KiB, 64 MiB].
func ChunkerParamsForAvg(avg int) (ChunkerParams, error) {
	if err := checkAvg(avg); err != nil {
		return ChunkerParams{}, err
	}
	return ChunkerParams{Min: avg / 4, Avg: avg, Max: avg * 4}, nil
}

func checkAvg(avg int) error {
	if avg < MinAvgChunkSize || avg > MaxAvgChunkSize {
		return fmt.Errorf("chunker: average chunk size %d out of range [%d, %d]", avg, MinAvgChunkSize, MaxAvgChunkSize)
	}
	if avg&(avg-1) != 0 {
		return fmt.Errorf("chunker: average chunk size %d is not a power of two", avg)
	}
	return nil
}

// Validate reports whether p can be used to chunk: Avg must be a power of two
// in [64 KiB, 64 MiB] (the masks are derived from log2(Avg)), and
// 0 < Min < Avg < Max <= 4*MaxAvgChunkSize (which bounds the buffer). It is
// meant for parameters read back from a store's config, which may have been
// damaged or written by a different version.
func (p ChunkerParams) Validate() error {
	if err := checkAvg(p.Avg); err != nil {
		return err
	}
	if p.Min <= 0 || p.Min >= p.Avg {
		return fmt.Errorf("chunker: min chunk size %d must be in (0, avg %d)", p.Min, p.Avg)
	}
	if p.Max <= p.Avg || p.Max > 4*MaxAvgChunkSize {
		return fmt.Errorf("chunker: max chunk size %d must be in (avg %d, %d]", p.Max, p.Avg, 4*MaxAvgChunkSize)
	}
	return nil
}

// spreadMask returns a 64-bit mask with ones set bits spread evenly from bit
// 63 downwards (bit 63, 63-step, 63-2*step, ... with step = 64/ones). Spreading
// the bits over the high part of the word, instead of using the low ones,
// makes the cut condition depend on a wider byte window (with the left-shift
// gear hash, bit k depends on the last k+1 bytes); FastCDC does this to
// bring gear-based CDC's dedupe ratio on par with Rabin-based CDC. ones must
// be in [1, 64].
func spreadMask(ones int) uint64 {
	step := 64 / ones
	var m uint64
	for i := range ones {
		m |= 1 << (63 - i*step)
	}
	return m
}

// chunkerMasks returns the normalized-chunking masks for an average size of
// avg (a power of two): maskS with log2(avg)+2 bits is used before Avg,
// maskL with log2(avg)-2 bits after.
func chunkerMasks(avg int) (maskS, maskL uint64) {
	b := bits.Len(uint(avg)) - 1
	return spreadMask(b + 2), spreadMask(b - 2)
}

// Chunker splits a byte stream into content-defined chunks. It holds one
// buffer of Max+Max/4 bytes (chunkerBufSize), or a shorter one given for a
// short stream (ResetBuffer), so memory does not depend on stream length,
// and it can be Reset onto a new stream to reuse that buffer. A Chunker is
// not safe for concurrent use.
type Chunker struct {
	r            io.Reader
	p            ChunkerParams
	maskS, maskL uint64

	// buf[start:end] holds read but not yet returned bytes.
	buf        []byte
	start, end int
	eof        bool  // r returned io.EOF; buf[start:end] is all that is left
	err        error // sticky: io.EOF once drained, or a read error

	// onRefill, when set, runs before a refill overwrites returned chunks.
	onRefill func() error
}

// NewChunker returns a Chunker reading from r. It panics if p is invalid:
// parameters are fixed per store and checked with Validate when the store is
// opened, so an invalid p here is a programming error.
func NewChunker(r io.Reader, p ChunkerParams) *Chunker {
	if err := p.Validate(); err != nil {
		panic(err) // before the buffer: invalid parameters may ask for any size
	}
	return NewChunkerBuffer(r, p, make([]byte, chunkerBufSize(p)))
}

// NewChunkerBuffer is NewChunker chunking in buf (see ResetBuffer)
// instead of a buffer of its own; buf may be nil.
func NewChunkerBuffer(r io.Reader, p ChunkerParams, buf []byte) *Chunker {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	if p.KeyedGear && p.Gear == nil {
		panic("chunker: keyed gear table not derived (ChunkerParams.WithGearKey)")
	}
	maskS, maskL := chunkerMasks(p.Avg)
	c := &Chunker{p: p, maskS: maskS, maskL: maskL}
	c.ResetBuffer(r, buf)
	return c
}

// BufferSize is the buffer a Chunker needs to cut any stream with
// parameters p (chunkerBufSize).
func (p ChunkerParams) BufferSize() int { return chunkerBufSize(p) }

// chunkerBufSize is the buffer of a Chunker: a chunk of Max bytes must fit
// whole, and a refill must read a good share of it. Next refills only when
// the bytes left after the last chunk hold no boundary (they are the start
// of one chunk, shorter than Max), so a refill moves down less than one
// chunk, on average half of one, and reads at least Max/4 bytes, most often
// several chunks' worth. Each capture worker holds one Chunker: this buffer
// is most of a capture's memory per worker.
func chunkerBufSize(p ChunkerParams) int { return p.Max + p.Max/4 }

// Reset makes c chunk r from its start, reusing c's buffer. Slices returned
// by earlier calls to Next become invalid.
func (c *Chunker) Reset(r io.Reader) {
	c.r = r
	c.start, c.end = 0, 0
	c.eof = false
	c.err = nil
}

// ResetBuffer makes c chunk r from its start in buf, which becomes c's
// buffer. A buffer shorter than BufferSize is enough for a stream shorter
// than it (a file of known size: a buffer at least one byte longer than
// the file sees its end without filling up); a stream that fills it moves
// to a buffer of full size, so every stream is cut at the same boundaries
// whatever buffer it started in. Buffer returns the buffer in use.
func (c *Chunker) ResetBuffer(r io.Reader, buf []byte) {
	c.buf = buf
	c.Reset(r)
}

// Buffer returns c's buffer: the one it was made or reset with, or the
// one of full size that replaced it for a longer stream.
func (c *Chunker) Buffer() []byte { return c.buf }

// OnRefill makes Next call f before it overwrites the bytes of chunks it
// returned since the last Reset (a refill moves the unread bytes to the
// front of the buffer and reads after them): until then every chunk
// returned stays valid, so a caller may hand chunks to other goroutines
// and have f wait for them. An error from f ends the stream as a read
// error does, and nothing is overwritten.
func (c *Chunker) OnRefill(f func() error) { c.onRefill = f }

// Next returns the next chunk. The returned slice aliases the chunker's
// internal buffer and is valid until a later call to Next refills the
// buffer (see OnRefill), or until Reset. At end of stream it returns
// (nil, io.EOF). Read errors are returned wrapped.
//
// Every chunk but the last is between Min and Max bytes long; the last is
// between 1 and Max bytes. An empty stream yields no chunks. After a read
// error Next keeps returning that error and the bytes buffered before it are
// not returned: a stream that could not be read completely cannot be stored
// faithfully, and a chunk cut short by the error would not be a real chunk.
func (c *Chunker) Next() ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	gear := &gearTable
	if c.p.Gear != nil {
		gear = c.p.Gear
	}
	data := c.buf[c.start:c.end]
	if len(data) < c.p.Max && !c.eof {
		// A boundary within the buffered bytes is the one the whole
		// stream has (the gear hash looks back, never ahead), so only a
		// chunk that may run past them needs a refill.
		if n, ok := boundary(data, c.p.Min, c.p.Avg, c.maskS, c.maskL, gear); ok {
			return c.cut(data, n), nil
		}
		if err := c.fill(); err != nil {
			c.err = err
			return nil, err
		}
		data = c.buf[c.start:c.end]
	}
	if len(data) == 0 {
		c.err = io.EOF
		return nil, io.EOF
	}
	return c.cut(data, cutPoint(data, c.p.Min, c.p.Avg, c.p.Max, c.maskS, c.maskL, gear)), nil
}

// cut returns the first n bytes of data, the buffered bytes, as a chunk.
func (c *Chunker) cut(data []byte, n int) []byte {
	c.start += n
	// Cap the capacity so a caller's append cannot scribble over the
	// buffered bytes of the following chunks.
	return data[:n:n]
}

// fill moves the unread tail to the front of the buffer and reads until the
// buffer is full or the reader reports EOF, like io.ReadFull but treating a
// short stream as the normal end rather than an error. Filling the whole
// buffer rather than just up to Max keeps the number of Read calls and tail
// moves low. Once fill returns nil, the buffer holds at least Max unread
// bytes or the rest of the stream.
func (c *Chunker) fill() error {
	if c.start > 0 {
		if c.onRefill != nil {
			if err := c.onRefill(); err != nil {
				return err
			}
		}
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	empty := 0
	for {
		if c.end == len(c.buf) {
			if len(c.buf) >= chunkerBufSize(c.p) {
				return nil
			}
			// A stream longer than the short buffer it was given: the
			// chunks it returned stay in the old buffer, valid.
			b := make([]byte, chunkerBufSize(c.p))
			copy(b, c.buf[:c.end])
			c.buf = b
		}
		n, err := c.r.Read(c.buf[c.end:])
		if n < 0 || n > len(c.buf)-c.end {
			return fmt.Errorf("chunker: read returned invalid count %d", n)
		}
		c.end += n
		if err == io.EOF {
			c.eof = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("chunker: read: %w", err)
		}
		if n > 0 {
			empty = 0
		} else if empty++; empty >= maxEmptyReads {
			return fmt.Errorf("chunker: read: %w", io.ErrNoProgress)
		}
	}
}

// cutPoint returns the length of the chunk at the start of data: the first
// boundary found by FastCDC with normalized chunking, Max if there is none
// before it, or len(data) if data is shorter than that (end of stream).
func cutPoint(data []byte, minSize, avg, maxSize int, maskS, maskL uint64, gear *[256]uint64) int {
	data = data[:min(len(data), maxSize)]
	if n, ok := boundary(data, minSize, avg, maskS, maskL, gear); ok {
		return n
	}
	return len(data)
}

// boundary returns the length of the chunk at the start of data when its
// boundary lies within data, and false when data holds none. The hash
// restarts at minSize and each cut depends only on the bytes before it, so
// a boundary found in a prefix of the stream is the stream's boundary. data
// must be at most Max bytes long.
func boundary(data []byte, minSize, avg int, maskS, maskL uint64, gear *[256]uint64) (int, bool) {
	n := len(data)
	if n <= minSize {
		return 0, false
	}
	normal := min(avg, n)
	i, h := gearScan(data[minSize:normal], 0, maskS, gear)
	if i >= 0 {
		return minSize + i, true
	}
	i, _ = gearScan(data[normal:n], h, maskL, gear)
	if i >= 0 {
		return normal + i, true
	}
	return 0, false
}

// gearScan rolls the gear hash h over s and returns the length of the prefix
// of s after which h&mask == 0, or -1 and the final hash if there is none.
//
// This loop is where chunking spends its time, so it is unrolled by hand. The
// 8 table loads of a block are written as separate indexed reads ahead of
// the hash updates: that keeps each gear value in a register, and the
// compiler turns h<<1 + g into a single LEA, so the serial dependency through
// h is one cycle per byte instead of two (shift, then add-from-memory). The
// per-byte bounds checks that come with indexing are well-predicted and off
// that critical path; the BCE-friendly forms (ranging over s, or reslicing
// 8 bytes at a time) let the compiler fold the loads into the adds and
// are slower (BenchmarkChunker). The gear table is a pointer to an array so indexing
// it with a byte needs no bounds check. A match inside a block falls through
// to the byte-wise loop, which rescans that block from the same h.
func gearScan(s []byte, h, mask uint64, gear *[256]uint64) (int, uint64) {
	_ = gear[0] // one nil check here rather than one per block
	i := 0
	for ; i+8 <= len(s); i += 8 {
		g0 := gear[s[i]]
		g1 := gear[s[i+1]]
		g2 := gear[s[i+2]]
		g3 := gear[s[i+3]]
		g4 := gear[s[i+4]]
		g5 := gear[s[i+5]]
		g6 := gear[s[i+6]]
		g7 := gear[s[i+7]]
		h1 := h<<1 + g0
		h2 := h1<<1 + g1
		h3 := h2<<1 + g2
		h4 := h3<<1 + g3
		h5 := h4<<1 + g4
		h6 := h5<<1 + g5
		h7 := h6<<1 + g6
		h8 := h7<<1 + g7
		if h1&mask == 0 || h2&mask == 0 || h3&mask == 0 || h4&mask == 0 ||
			h5&mask == 0 || h6&mask == 0 || h7&mask == 0 || h8&mask == 0 {
			break
		}
		h = h8
	}
	for ; i < len(s); i++ {
		h = h<<1 + gear[s[i]]
		if h&mask == 0 {
			return i + 1, h
		}
	}
	return -1, h
}
