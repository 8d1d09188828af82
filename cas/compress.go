package cas

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Compression identifies how a blob's bytes are stored in a pack. Values are
// part of the on-disk format: never reuse a retired one.
type Compression uint8

const (
	// CompressionNone stores the plaintext as is.
	CompressionNone Compression = 0
	// CompressionZstd stores a single zstd frame of the plaintext.
	CompressionZstd Compression = 1
)

func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// storeRawAbove is the compressed/raw ratio above which a chunk is stored raw:
// a chunk that shrinks by less than 3% is not worth a decompression on every
// restore (JPEG, video, zip and other already-compressed formats).
const storeRawAbove = 0.97

// Level is how hard Compress works on a chunk that compresses: which zstd
// encoder level writes its frame. It is not part of the format: a zstd
// frame is self-describing and decodes the same whatever level wrote it,
// so one store may hold blobs of every level and any reader reads them.
type Level uint8

const (
	// LevelFastest is zstd's fastest level (klauspost's SpeedFastest,
	// about zstd -1) for every chunk: the default (DefaultLevel).
	LevelFastest Level = iota
	// LevelAdaptive compresses the chunks larger than 2*probeSize that
	// the probe finds compressible at SpeedDefault and smaller ones at the
	// fastest level: the harder level saves more bytes per extra CPU
	// second on large chunks than on small ones, whatever their ratio
	// (docs/BENCHMARKS.md, "Compression level and chunk size").
	LevelAdaptive
	// LevelDefault is zstd's default level for every chunk (SpeedDefault,
	// about zstd -3; restic's "auto"), not smp's default.
	LevelDefault
	// LevelBetter is SpeedBetterCompression (about zstd -7).
	LevelBetter
	// LevelBest is SpeedBestCompression (about zstd -11).
	LevelBest
	numLevels
)

// DefaultLevel is the level of Compress and of a capture that names none.
// It is the fastest: on the realistic corpus every harder level costs
// capture about a fifth more CPU or more for about 2% fewer stored bytes
// (adaptive and default), and warm capture is CPU-bound and must stay at
// 2.5 times restic's speed (docs/BENCHMARKS.md, "Compression level and
// chunk size").
const DefaultLevel = LevelFastest

var levelNames = [numLevels]string{"fastest", "adaptive", "default", "better", "best"}

func (l Level) String() string {
	if l < numLevels {
		return levelNames[l]
	}
	return fmt.Sprintf("level(%d)", uint8(l))
}

// ParseLevel parses a Level's name.
func ParseLevel(s string) (Level, error) {
	for l, name := range levelNames {
		if s == name {
			return Level(l), nil
		}
	}
	return 0, fmt.Errorf("unknown compression level %q (want fastest, adaptive, default, better or best)", s)
}

// zstdLevels maps each Level to its encoder level. LevelAdaptive's entry
// is never used: CompressLevel resolves it per chunk to LevelDefault or
// LevelFastest, whose encoders it then shares.
var zstdLevels = [numLevels]zstd.EncoderLevel{
	LevelFastest:  zstd.SpeedFastest,
	LevelAdaptive: zstd.SpeedDefault,
	LevelDefault:  zstd.SpeedDefault,
	LevelBetter:   zstd.SpeedBetterCompression,
	LevelBest:     zstd.SpeedBestCompression,
}

// The zstd encoders and the decoder are goroutine-safe for EncodeAll and
// DecodeAll and hold sizeable tables, so one of each is shared by the whole
// process (kopia pools them for the same reason); an encoder is made on
// first use, so a process that never compresses harder never holds the
// larger levels' tables.
var (
	encoderOnce [numLevels]sync.Once
	encoders    [numLevels]*zstd.Encoder
	decoderOnce sync.Once
	decoder     *zstd.Decoder
)

// zstdWindow is how far back the encoder looks for matches. Each encoder
// state keeps a history buffer of the window plus one block, however short
// its input, and there is one state per core: the levels' own windows (4
// MiB for the fastest, 8 MiB above it) cost 4-8 MiB per core, while a
// chunk is at most 4 MiB and its matches lie close together (what the
// smaller window costs in stored bytes: docs/BENCHMARKS.md, "Capture
// memory"). Chunks larger than the window are written as frames with a
// window descriptor, which every zstd decoder reads.
const zstdWindow = 1 << 20

// zstdEncoder is the shared encoder of level l (zstdLevels[l]).
func zstdEncoder(l Level) *zstd.Encoder {
	encoderOnce[l].Do(func() {
		// EncodeAll hands each call one of this many encoder states and
		// blocks when none is free: one per core lets every compressor
		// goroutine run at once (one state would serialise them).
		encoders[l] = newEncoder(l, runtime.GOMAXPROCS(0))
	})
	return encoders[l]
}

// newEncoder returns an encoder of level l with concurrency states (for a
// stream: 1, which encodes each block on the caller's goroutine).
func newEncoder(l Level, concurrency int) *zstd.Encoder {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstdLevels[l]),
		zstd.WithEncoderConcurrency(concurrency),
		zstd.WithLowerEncoderMem(true),
		zstd.WithWindowSize(zstdWindow),
		zstd.WithEncoderCRC(false), // blob IDs already verify every byte
		// Entropy-code literals-only blocks, which SpeedFastest would
		// emit raw: digit-heavy text (CSV, hex, base64) has no matches
		// yet compresses well, and must be neither stored raw nor
		// mistaken by the probe for compressed data.
		zstd.WithAllLitEntropyCompression(true),
	)
	if err != nil {
		panic(err) // only fails on invalid options, which are constant here
	}
	return enc
}

// streams holds idle streaming encoders of LevelFastest for
// compressProbed, at most one per core: capture compresses on one
// goroutine per core, and a burst of callers beyond that gets encoders
// that are dropped afterwards instead of kept (each holds a window of
// history). A sync.Pool would drop them at every collection and rebuild
// their tables.
var streams struct {
	sync.Mutex
	idle []*zstd.Encoder
}

func getStream() *zstd.Encoder {
	streams.Lock()
	defer streams.Unlock()
	if n := len(streams.idle); n > 0 {
		enc := streams.idle[n-1]
		streams.idle = streams.idle[:n-1]
		return enc
	}
	return newEncoder(LevelFastest, 1)
}

func putStream(enc *zstd.Encoder) {
	enc.Reset(nil) // drop the caller's buffer
	streams.Lock()
	defer streams.Unlock()
	if len(streams.idle) < runtime.GOMAXPROCS(0) {
		streams.idle = append(streams.idle, enc)
	}
}

// appendWriter is the io.Writer a streaming encoder appends its frame to.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func zstdDecoder() *zstd.Decoder {
	decoderOnce.Do(func() {
		var err error
		decoder, err = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(MaxBlobSize+1<<20),
			// DecodeAll stops once the output passes cap(dst): the caller's
			// bound, not the frame's own header or blocks, decides how
			// much a frame may expand (see Decompress).
			zstd.WithDecodeAllCapLimit(true),
			zstd.IgnoreChecksum(true),
		)
		if err != nil {
			panic(err)
		}
	})
	return decoder
}

// probeSize is the prefix compressed first to decide whether a large chunk
// is worth compressing at all.
const probeSize = 64 << 10

// Compress is CompressLevel at DefaultLevel.
func Compress(dst, plain []byte) ([]byte, Compression) {
	return CompressLevel(dst, plain, DefaultLevel)
}

// CompressLevel returns the bytes to store for plain and how they are
// encoded, compressing as hard as l says. The result is appended to dst[:0]
// when compressed; when stored raw the returned slice is plain itself. It
// is safe for concurrent use: capture's compressors call it from one
// goroutine per core.
//
// Already-compressed data (JPEG, video, zip) is the slowest input for zstd
// (about 80 MB/s a core here, against 250 MB/s for text) and gains nothing,
// so a chunk larger than 2*probeSize whose first probeSize bytes do not
// shrink is stored raw without compressing the rest. A chunk that starts
// incompressible and continues compressible loses some compression; that
// mix is rare inside one content-defined chunk. A chunk the probe passes
// is where LevelAdaptive compresses harder.
func CompressLevel(dst, plain []byte, l Level) ([]byte, Compression) {
	if len(plain) < 64 {
		return plain, CompressionNone
	}
	if l >= numLevels {
		l = DefaultLevel
	}
	if len(plain) > 2*probeSize {
		if l == LevelFastest {
			return compressProbed(dst, plain)
		}
		probe := zstdEncoder(LevelFastest).EncodeAll(plain[:probeSize], dst[:0])
		if float64(len(probe)) > probeSize*storeRawAbove {
			return plain, CompressionNone
		}
		if l == LevelAdaptive {
			l = LevelDefault
		}
		return encodeKept(zstdEncoder(l), probe[:0], plain)
	}
	if l == LevelAdaptive {
		l = LevelFastest
	}
	return encodeKept(zstdEncoder(l), dst, plain)
}

// compressProbed is CompressLevel at LevelFastest for a chunk larger than
// 2*probeSize: one streaming frame whose first block is the probe (Flush
// ends a block there; the fastest level's blocks are probeSize anyway), so
// the probe's bytes are compressed once. The frame is abandoned, and plain
// stored raw, when that block does not shrink; otherwise the rest of plain
// follows in the same frame, with the probe as history. The result is one
// zstd frame with its content size, as EncodeAll's, within a few bytes of
// EncodeAll's (its header is not single-segment, and the stream encodes
// its first block as any later one).
func compressProbed(dst, plain []byte) ([]byte, Compression) {
	enc := getStream()
	defer putStream(enc)
	w := appendWriter{b: dst[:0]}
	enc.ResetContentSize(&w, int64(len(plain)))
	if _, err := enc.Write(plain[:probeSize]); err != nil {
		return plain, CompressionNone
	}
	if err := enc.Flush(); err != nil || float64(len(w.b)) > probeSize*storeRawAbove {
		return plain, CompressionNone
	}
	if _, err := enc.Write(plain[probeSize:]); err != nil {
		return plain, CompressionNone
	}
	if err := enc.Close(); err != nil || float64(len(w.b)) > float64(len(plain))*storeRawAbove {
		return plain, CompressionNone
	}
	return w.b, CompressionZstd
}

// encodeKept encodes plain with enc into dst[:0], or returns plain raw
// when the frame saves less than 1-storeRawAbove of it.
func encodeKept(enc *zstd.Encoder, dst, plain []byte) ([]byte, Compression) {
	out := enc.EncodeAll(plain, dst[:0])
	if float64(len(out)) > float64(len(plain))*storeRawAbove {
		return plain, CompressionNone
	}
	return out, CompressionZstd
}

// Decompress decodes stored bytes into dst[:0]. rawLen is the plaintext
// length recorded in the pack trailer or the upload frame; output of any
// other length is corrupt.
//
// rawLen is also the bound of the decoding: the decoder stops as soon as
// its output passes the buffer it was given (by at most one 128 KiB zstd
// block), so a frame that expands further (a zstd bomb: kilobytes that
// claim a 64-byte plaintext and expand to 256 MiB) costs no more than
// rawLen plus one block, whatever its frame header or blocks say.
func Decompress(dst, stored []byte, c Compression, rawLen int) ([]byte, error) {
	switch c {
	case CompressionNone:
		if len(stored) != rawLen {
			return nil, fmt.Errorf("raw blob is %d bytes, want %d: %w", len(stored), rawLen, ErrCorrupt)
		}
		return append(dst[:0], stored...), nil
	case CompressionZstd:
		if rawLen < 0 || rawLen > MaxBlobSize {
			return nil, fmt.Errorf("blob length %d over limit: %w", rawLen, ErrCorrupt)
		}
		return decompressZstd(dst, stored, rawLen)
	}
	return nil, fmt.Errorf("unknown compression %d: %w", c, ErrCorrupt)
}

// decodeSlack is the room the zstd decoder wants past a block's end to
// use its unchecked copies (the package's compressedBlockOverAlloc, 32
// bytes in klauspost/compress 1.20): without it a blob that fits its
// buffer exactly, every small file's, decodes on the slower path.
const decodeSlack = 64

// decompressZstd decodes a zstd blob of rawLen plaintext bytes. The buffer
// starts at a size that depends on the stored bytes, so a damaged entry
// claiming 256 MiB for ten bytes does not allocate 256 MiB; it doubles,
// up to rawLen, only while the frame really decodes further. Each retry
// decodes from the start, which costs at most as much again as the last
// try, and only blobs that compress more than 64 times need one.
func decompressZstd(dst, stored []byte, rawLen int) ([]byte, error) {
	limit := min(rawLen, 64*len(stored)+64<<10)
	for {
		// decodeSlack bytes more than the limit: a longer output is seen
		// as such, and the decoder copies matches with its fast routines
		// up to the last byte instead of bounds-checked ones.
		if cap(dst) < limit+decodeSlack {
			dst = make([]byte, 0, limit+decodeSlack)
		}
		out, err := zstdDecoder().DecodeAll(stored, dst[:0:limit+decodeSlack])
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) && limit < rawLen {
			limit = min(rawLen, 2*limit)
			dst = out[:0]
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("zstd: %v: %w", err, ErrCorrupt)
		}
		if len(out) != rawLen {
			return nil, fmt.Errorf("blob decompresses to %d bytes, want %d: %w", len(out), rawLen, ErrCorrupt)
		}
		return out, nil
	}
}
