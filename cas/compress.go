package cas

import (
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

func zstdEncoder() *zstd.Encoder {
	encoderOnce.Do(func() {
		var err error
		encoder, err = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			// EncodeAll hands each call one of this many encoder states and
			// blocks when none is free: one per core lets every compressor
			// goroutine run at once (1 serialised them, measured).
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithLowerEncoderMem(true),
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

// Decompress decodes stored bytes into dst[:0]. rawLen is the plaintext length
// recorded in the pack trailer; output of any other length is corrupt.
func Decompress(dst, stored []byte, c Compression, rawLen int) ([]byte, error) {
	switch c {
	case CompressionNone:
		if len(stored) != rawLen {
			return nil, fmt.Errorf("raw blob is %d bytes, want %d: %w", len(stored), rawLen, ErrCorrupt)
		}
		return append(dst[:0], stored...), nil
	case CompressionZstd:
		if rawLen > MaxBlobSize {
			return nil, fmt.Errorf("blob length %d over limit: %w", rawLen, ErrCorrupt)
		}
		// Size the output from the claimed length only up to a bound that
		// depends on the stored bytes: a damaged entry claiming 256 MiB for
		// ten bytes must not allocate 256 MiB. Real high ratios still work;
		// the decoder grows dst as it goes.
		if want := min(rawLen, 64*len(stored)+64<<10); cap(dst) < want {
			dst = make([]byte, 0, want)
		}
		out, err := zstdDecoder().DecodeAll(stored, dst[:0])
		if err != nil {
			return nil, fmt.Errorf("zstd: %v: %w", err, ErrCorrupt)
		}
		if len(out) != rawLen {
			return nil, fmt.Errorf("blob decompresses to %d bytes, want %d: %w", len(out), rawLen, ErrCorrupt)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown compression %d: %w", c, ErrCorrupt)
}
