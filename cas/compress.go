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

// The zstd encoder and decoder are goroutine-safe for EncodeAll/DecodeAll and
// hold sizeable tables, so one of each is shared by the whole process (kopia
// pools them for the same reason).
var (
	probeOnce   sync.Once
	probeEnc    *zstd.Encoder
	encoderOnce sync.Once
	encoder     *zstd.Encoder
	decoderOnce sync.Once
	decoder     *zstd.Decoder
)

// zstdWindow is how far back the encoder looks for matches. Each encoder
// state keeps a history buffer of the window plus one block, however short
// its input, and there is one state per core: the levels' own windows (4
// MiB for the fastest, 8 MiB above it) cost 4-8 MiB per core, while a
// chunk is at most 4 MiB and its matches lie close together (on generated
// profiles, a 1 MiB window stored 0.01% more bytes than 4 MiB at the
// fastest and the default level; see docs/BENCHMARKS.md, "Capture
// memory"). Chunks larger than the window are written as frames with a
// window descriptor, which every zstd decoder reads.
const zstdWindow = 1 << 20

func zstdEncoder() *zstd.Encoder {
	encoderOnce.Do(func() {
		var err error
		encoder, err = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			// EncodeAll hands each call one of this many encoder states and
			// blocks when none is free: one per core lets every compressor
			// goroutine run at once (one state would serialise them).
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithLowerEncoderMem(true),
			zstd.WithWindowSize(zstdWindow),
			zstd.WithEncoderCRC(false), // blob IDs already verify every byte
		)
		if err != nil {
			panic(err) // only fails on invalid options, which are constant here
		}
	})
	return encoder
}

// probeEncoder entropy-codes literals-only blocks, which SpeedFastest would
// emit raw: digit-heavy text (CSV, hex, base64) has no matches within the
// probe yet compresses well, and must not be mistaken for compressed data.
func probeEncoder() *zstd.Encoder {
	probeOnce.Do(func() {
		var err error
		probeEnc, err = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithLowerEncoderMem(true),
			zstd.WithWindowSize(zstdWindow),
			zstd.WithEncoderCRC(false),
			zstd.WithAllLitEntropyCompression(true),
		)
		if err != nil {
			panic(err)
		}
	})
	return probeEnc
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

// Compress returns the bytes to store for plain and how they are encoded. The
// result is appended to dst[:0] when compressed; when stored raw the returned
// slice is plain itself.
//
// Already-compressed data (JPEG, video, zip) is the slowest input for zstd
// (about 80 MB/s a core here, against 250 MB/s for text) and gains nothing,
// so a chunk larger than probeSize whose first probeSize bytes do not shrink
// is stored raw without compressing the rest. A chunk that starts
// incompressible and continues compressible loses some compression; that
// mix is rare inside one content-defined chunk.
func Compress(dst, plain []byte) ([]byte, Compression) {
	if len(plain) < 64 {
		return plain, CompressionNone
	}
	enc := zstdEncoder()
	if len(plain) > 2*probeSize {
		probe := probeEncoder().EncodeAll(plain[:probeSize], dst[:0])
		if float64(len(probe)) > probeSize*storeRawAbove {
			return plain, CompressionNone
		}
		dst = probe[:0]
	}
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

// decompressZstd decodes a zstd blob of rawLen plaintext bytes. The buffer
// starts at a size that depends on the stored bytes, so a damaged entry
// claiming 256 MiB for ten bytes does not allocate 256 MiB; it doubles,
// up to rawLen, only while the frame really decodes further. Each retry
// decodes from the start, which costs at most as much again as the last
// try, and only blobs that compress more than 64 times need one.
func decompressZstd(dst, stored []byte, rawLen int) ([]byte, error) {
	limit := min(rawLen, 64*len(stored)+64<<10)
	for {
		// One byte more than the limit, so a longer output is seen as such.
		if cap(dst) < limit+1 {
			dst = make([]byte, 0, limit+1)
		}
		out, err := zstdDecoder().DecodeAll(stored, dst[:0:limit+1])
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
