package cas

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestCompressRoundTrip(t *testing.T) {
	half := append(textBytes(4000), randomBytes(3, 4000)...)
	tests := []struct {
		name  string
		plain []byte
		want  Compression
	}{
		{"nil", nil, CompressionNone},
		{"empty", []byte{}, CompressionNone},
		{"one byte", []byte{'x'}, CompressionNone},
		{"63 zero bytes (under the 64 byte floor)", make([]byte, 63), CompressionNone},
		{"64 zero bytes", make([]byte, 64), CompressionZstd},
		{"text 1 KiB", textBytes(1 << 10), CompressionZstd},
		{"text 1 MiB", textBytes(1 << 20), CompressionZstd},
		{"zeros 4 MiB", make([]byte, 4<<20), CompressionZstd},
		{"text 4 MiB (past the encoder window)", textBytes(4 << 20), CompressionZstd},
		{"random 64 B", randomBytes(1, 64), CompressionNone},
		{"random 100 KiB", randomBytes(2, 100<<10), CompressionNone},
		{"half text half random", half, CompressionZstd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored, c := Compress(nil, tt.plain)
			if c != tt.want {
				t.Fatalf("Compress chose %v, want %v (stored %d of %d bytes)", c, tt.want, len(stored), len(tt.plain))
			}
			switch c {
			case CompressionNone:
				if !bytes.Equal(stored, tt.plain) {
					t.Errorf("raw stored bytes differ from plaintext")
				}
			case CompressionZstd:
				if float64(len(stored)) > float64(len(tt.plain))*storeRawAbove {
					t.Errorf("zstd kept although it saves under 3%%: %d of %d bytes", len(stored), len(tt.plain))
				}
			}
			for _, dst := range [][]byte{nil, make([]byte, 0, 8), make([]byte, 5, len(tt.plain)+5)} {
				got, err := Decompress(dst, stored, c, len(tt.plain))
				if err != nil {
					t.Fatalf("Decompress: %v", err)
				}
				if !bytes.Equal(got, tt.plain) {
					t.Errorf("round trip: got %d bytes, want %d (content differs)", len(got), len(tt.plain))
				}
			}
		})
	}
}

// TestCompressWindow checks that a chunk larger than zstdWindow is written
// as a frame whose window is zstdWindow: the encoder keeps a history of the
// window per core, whatever the chunk size (the level's own window would
// be 4 to 8 MiB).
func TestCompressWindow(t *testing.T) {
	for _, n := range []int{zstdWindow + 1, 4 << 20} {
		stored, c := Compress(nil, textBytes(n))
		if c != CompressionZstd {
			t.Fatalf("%d bytes of text stored %v", n, c)
		}
		var h zstd.Header
		if err := h.Decode(stored); err != nil {
			t.Fatal(err)
		}
		if h.SingleSegment || h.WindowSize != zstdWindow || h.FrameContentSize != uint64(n) {
			t.Errorf("%d bytes: frame single segment %v, window %d, content size %d: want a %d-byte window and the size", n, h.SingleSegment, h.WindowSize, h.FrameContentSize, zstdWindow)
		}
	}
}

func TestCompressReusesDst(t *testing.T) {
	plain := textBytes(50000)
	dst := make([]byte, 3, 1<<20)
	stored, c := Compress(dst, plain)
	if c != CompressionZstd {
		t.Fatalf("compression %v", c)
	}
	if &stored[0] != &dst[:1][0] {
		t.Errorf("Compress did not append to dst[:0] although it had room")
	}
	// Raw storage returns plain itself, not a copy into dst.
	rnd := randomBytes(9, 1000)
	stored, c = Compress(dst, rnd)
	if c != CompressionNone || &stored[0] != &rnd[0] {
		t.Errorf("raw Compress did not return plain itself")
	}
}

func TestDecompressDoesNotAliasStored(t *testing.T) {
	plain := randomBytes(4, 100)
	got, err := Decompress(nil, plain, CompressionNone, len(plain))
	if err != nil {
		t.Fatal(err)
	}
	got[0] ^= 0xff
	if plain[0] == got[0] {
		t.Errorf("Decompress of a raw blob returned the stored slice itself")
	}
}

func TestDecompressRejects(t *testing.T) {
	text := textBytes(10000)
	zst, c := Compress(nil, text)
	if c != CompressionZstd {
		t.Fatal("text did not compress")
	}
	flipped := slices.Clone(zst)
	flipped[len(flipped)/2] ^= 0xff
	tests := []struct {
		name   string
		stored []byte
		c      Compression
		rawLen int
	}{
		{"raw: rawLen too small", []byte("hello"), CompressionNone, 4},
		{"raw: rawLen too large", []byte("hello"), CompressionNone, 6},
		{"raw: empty but rawLen 1", nil, CompressionNone, 1},
		{"zstd: rawLen too small", zst, CompressionZstd, len(text) - 1},
		{"zstd: rawLen too large", zst, CompressionZstd, len(text) + 1},
		{"zstd: rawLen zero", zst, CompressionZstd, 0},
		{"zstd: rawLen over MaxBlobSize", zst, CompressionZstd, MaxBlobSize + 1},
		{"zstd: garbage", []byte("definitely not a zstd frame at all"), CompressionZstd, 10},
		{"zstd: empty input", nil, CompressionZstd, 10},
		{"zstd: truncated frame", zst[:len(zst)/2], CompressionZstd, len(text)},
		{"zstd: magic only", zst[:4], CompressionZstd, len(text)},
		{"zstd: trailing garbage", append(slices.Clone(zst), 1, 2, 3), CompressionZstd, len(text)},
		{"unknown compression", []byte("hello"), Compression(2), 5},
		{"unknown compression 255", []byte("hello"), Compression(255), 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decompress(nil, tt.stored, tt.c, tt.rawLen)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("Decompress = %d bytes, %v; want ErrCorrupt", len(got), err)
			}
			if got != nil {
				t.Errorf("Decompress returned data with an error")
			}
		})
	}
	// A flipped byte in a zstd frame either fails to decode or decodes to
	// other bytes; it must never silently give the original back with a
	// different length.
	if got, err := Decompress(nil, flipped, CompressionZstd, len(text)); err == nil && bytes.Equal(got, text) {
		t.Errorf("flipped zstd frame decoded to the original")
	}
}

func TestCompressConcurrent(t *testing.T) {
	inputs := [][]byte{textBytes(70000), randomBytes(5, 30000), make([]byte, 100000)}
	done := make(chan error)
	for g := range 8 {
		go func() {
			for i := range 20 {
				in := inputs[(g+i)%len(inputs)]
				stored, c := Compress(nil, in)
				out, err := Decompress(nil, stored, c, len(in))
				if err == nil && !bytes.Equal(out, in) {
					err = errors.New("round trip differs")
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestDecompressBoundsAllocation: Decompress allocates the raw length the
// trailer claims before looking at the frame, so a damaged or hostile pack
// entry of 10 stored bytes with raw_len 256 MiB makes every read allocate
// 256 MiB (a 528-byte pack of 8 such entries: 2 GiB allocated, ~4 s in
// ReadBlob). MaxPackEntries exists so that "a damaged count cannot make a
// reader allocate without limit"; the same should hold for raw_len.
func TestDecompressBoundsAllocation(t *testing.T) {
	garbage := []byte("0123456789")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Decompress(nil, garbage, CompressionZstd, MaxBlobSize)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Decompress(garbage) = %v, want ErrCorrupt", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("Decompress of 10 garbage bytes allocated %d MiB", got>>20)
	}
}

// BenchmarkCompressAlreadyCompressed shows the probe at work: gzip output
// (as in .docx, .png, .jar) is detected from its first 64 KiB and stored
// raw, instead of costing a full zstd pass (about 130 MB/s here) that
// saves nothing.
func BenchmarkCompressAlreadyCompressed(b *testing.B) {
	src, err := os.ReadFile("/usr/local/go/src/net/http/server.go")
	if err != nil {
		b.Skip("no Go sources to build gzip data from")
	}
	var buf bytes.Buffer
	for i := 0; buf.Len() < 1<<20; i++ {
		w, _ := gzip.NewWriterLevel(&buf, 6)
		w.Write(src[(i*7919)%(len(src)/2):])
		w.Close()
	}
	data := buf.Bytes()[:1<<20]
	b.Run("probe", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, c := Compress(nil, data); c != CompressionNone {
				b.Fatal("gzip data compressed")
			}
		}
	})
	b.Run("full-zstd", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			zstdEncoder(LevelFastest).EncodeAll(data, nil)
		}
	})
}

// zstdBomb returns a zstd frame of 4 bytes per 128 KiB of output: no
// content size in its header, then n RLE blocks of 128 KiB of 'A'.
func zstdBomb(n int) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, // magic
		0x00,           // no content size, not single segment, no checksum
		(17 - 10) << 3, // window 128 KiB
	}
	for i := range n {
		h := uint32(128<<10)<<3 | 1<<1 // RLE block of 128 KiB
		if i == n-1 {
			h |= 1 // last block
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 'A')
	}
	return b
}

// TestDecompressBomb: 8 KiB of zstd that claims 64 bytes of plaintext and
// expands to 256 MiB is refused after about one block of output, not after
// decoding (and allocating) all of it.
func TestDecompressBomb(t *testing.T) {
	bomb := zstdBomb(2048)
	if len(bomb) > 8<<10+6 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	for _, rawLen := range []int{64, 4 << 20} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Decompress(nil, bomb, CompressionZstd, rawLen)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Decompress(bomb, rawLen %d) = %v, want ErrCorrupt", rawLen, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > uint64(rawLen)*6+2<<20 {
			t.Errorf("Decompress(bomb, rawLen %d) allocated %d KiB", rawLen, got>>10)
		} else {
			t.Logf("Decompress(bomb, rawLen %d) allocated %d KiB", rawLen, got>>10)
		}
	}
	// The same frame cut to its true length decodes: the bound is what
	// stops it, not a dislike of RLE blocks.
	small := zstdBomb(3)
	out, err := Decompress(nil, small, CompressionZstd, 3*128<<10)
	if err != nil || len(out) != 3*128<<10 || out[0] != 'A' || out[len(out)-1] != 'A' {
		t.Fatalf("Decompress(3 RLE blocks) = %d bytes, %v", len(out), err)
	}
	// Highly compressible real blobs still decode whatever their ratio.
	plain := bytes.Repeat([]byte{0}, 8<<20)
	stored, c := Compress(nil, plain)
	if c != CompressionZstd {
		t.Fatal("zeros not compressed")
	}
	out, err = Decompress(nil, stored, c, len(plain))
	if err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("Decompress of %d zero bytes from %d: %d bytes, %v", len(plain), len(stored), len(out), err)
	}
}

// wordsBytes returns n bytes of prose-like text: words drawn at random
// from a small vocabulary, which compresses to about a third, and more at
// the harder levels.
func wordsBytes(seed uint64, n int) []byte {
	words := strings.Fields("profile settings user document report budget meeting notes draft final " +
		"quarter sales marketing invoice customer account project review summary outlook calendar " +
		"the a of and to in for on with by from at is are was were be this that it")
	rnd := randomBytes(seed, n)
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = append(b, words[int(rnd[i%len(rnd)])%len(words)]...)
		b = append(b, " \n"[min(int(rnd[(i+1)%len(rnd)])/230, 1)])
	}
	return b[:n]
}

// alphabetBytes returns n random bytes from a 64-symbol alphabet: no
// matches, 6 bits of entropy a byte, so it compresses to about 0.75.
func alphabetBytes(seed uint64, n int) []byte {
	const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := randomBytes(seed, n)
	for i := range b {
		b[i] = abc[b[i]%64]
	}
	return b
}

// TestCompressLevels checks every level round-trips through the one
// Decompress (the level is not recorded: a zstd frame of any level is
// read the same), stores incompressible data raw at every level, and that
// LevelAdaptive compresses harder exactly the large chunks the probe
// passes.
func TestCompressLevels(t *testing.T) {
	inputs := []struct {
		name         string
		plain        []byte
		want         Compression
		adaptiveHard bool // LevelAdaptive compresses it at the default level
	}{
		{"words 1 MiB", wordsBytes(1, 1<<20), CompressionZstd, true},
		{"words 20 KiB", wordsBytes(2, 20<<10), CompressionZstd, false},
		{"alphabet 1 MiB", alphabetBytes(3, 1<<20), CompressionZstd, true},
		{"alphabet 20 KiB", alphabetBytes(4, 20<<10), CompressionZstd, false},
		{"random 1 MiB", randomBytes(5, 1<<20), CompressionNone, false},
		{"random 20 KiB", randomBytes(6, 20<<10), CompressionNone, false},
	}
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			sizes := map[Level]int{}
			for l := range numLevels {
				stored, c := CompressLevel(nil, in.plain, l)
				if c != in.want {
					t.Fatalf("%v: chose %v, want %v", l, c, in.want)
				}
				got, err := Decompress(nil, stored, c, len(in.plain))
				if err != nil || !bytes.Equal(got, in.plain) {
					t.Fatalf("%v: round trip failed: %v", l, err)
				}
				sizes[l] = len(stored)
			}
			if in.want == CompressionNone {
				return
			}
			if strings.HasPrefix(in.name, "words") && sizes[LevelBest] >= sizes[LevelFastest] {
				t.Errorf("best %d bytes, fastest %d: no gain", sizes[LevelBest], sizes[LevelFastest])
			}
			want := sizes[LevelFastest]
			if in.adaptiveHard {
				want = sizes[LevelDefault]
			}
			if sizes[LevelAdaptive] != want {
				t.Errorf("adaptive stored %d bytes, want %d (fastest %d, default %d)", sizes[LevelAdaptive], want, sizes[LevelFastest], sizes[LevelDefault])
			}
			if stored, _ := Compress(nil, in.plain); len(stored) != sizes[DefaultLevel] {
				t.Errorf("Compress stored %d bytes, DefaultLevel %d", len(stored), sizes[DefaultLevel])
			}
		})
	}
}

func TestParseLevel(t *testing.T) {
	for l := range numLevels {
		got, err := ParseLevel(l.String())
		if err != nil || got != l {
			t.Errorf("ParseLevel(%q) = %v, %v", l.String(), got, err)
		}
	}
	if _, err := ParseLevel("max"); err == nil || !strings.Contains(err.Error(), "fastest, adaptive, default, better or best") {
		t.Errorf("ParseLevel(max): %v", err)
	}
	if s := Level(200).String(); s != "level(200)" {
		t.Errorf("Level(200) is %q", s)
	}
}

// FuzzCompressLevel checks any input at any level (out-of-range ones
// included) reads back through Decompress byte for byte, and is stored raw
// exactly when zstd would not save 3%.
func FuzzCompressLevel(f *testing.F) {
	f.Add([]byte("the quick brown fox jumps over the lazy dog"), uint8(LevelFastest))
	f.Add(wordsBytes(1, 300<<10), uint8(LevelAdaptive))
	f.Add(alphabetBytes(2, 4<<10), uint8(LevelBest))
	f.Add(randomBytes(3, 200<<10), uint8(200))
	f.Fuzz(func(t *testing.T, plain []byte, level uint8) {
		stored, c := CompressLevel(nil, plain, Level(level))
		if c == CompressionZstd && float64(len(stored)) > float64(len(plain))*storeRawAbove {
			t.Fatalf("zstd kept at %d of %d bytes", len(stored), len(plain))
		}
		got, err := Decompress(nil, stored, c, len(plain))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("level %d, %v: round trip failed: %v", level, c, err)
		}
	})
}

// probeThenWhole is the fastest level's former way with a large chunk:
// the probe compressed as a frame of its own, then the whole chunk again.
// BenchmarkCompressLarge compares it with compressProbed.
func probeThenWhole(dst, plain []byte) ([]byte, Compression) {
	probe := zstdEncoder(LevelFastest).EncodeAll(plain[:probeSize], dst[:0])
	if float64(len(probe)) > probeSize*storeRawAbove {
		return plain, CompressionNone
	}
	return encodeKept(zstdEncoder(LevelFastest), probe[:0], plain)
}

// TestCompressProbedMatchesProbeThenWhole checks the streaming probe takes
// the same raw-or-zstd decision as compressing the probe on its own, and
// stores as many bytes give or take a block header and its tables.
func TestCompressProbedMatchesProbeThenWhole(t *testing.T) {
	half := append(textBytes(512<<10), randomBytes(11, 512<<10)...)
	for _, tt := range []struct {
		name  string
		plain []byte
	}{
		{"words 1 MiB", wordsBytes(1, 1<<20)},
		{"alphabet 300 KiB", alphabetBytes(2, 300<<10)},
		{"text 4 MiB", textBytes(4 << 20)},
		{"random 1 MiB", randomBytes(3, 1<<20)},
		{"random then text", append(randomBytes(4, 64<<10), textBytes(1<<20)...)},
		{"text then random", half},
		{"just over two probes", wordsBytes(5, 2*probeSize+1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, c := compressProbed(nil, tt.plain)
			want, wc := probeThenWhole(nil, tt.plain)
			if c != wc {
				t.Fatalf("chose %v, probe then whole chose %v", c, wc)
			}
			if d := len(got) - len(want); d > 256 || d < -256 {
				t.Errorf("stored %d bytes, probe then whole %d", len(got), len(want))
			}
			out, err := Decompress(nil, got, c, len(tt.plain))
			if err != nil || !bytes.Equal(out, tt.plain) {
				t.Fatalf("round trip: %v", err)
			}
		})
	}
}

// BenchmarkCompressLarge: a compressible chunk of 1 MiB at the fastest
// level, the probe its frame's first block (Compress) against the probe
// compressed alone and then the whole chunk (probe-then-whole).
func BenchmarkCompressLarge(b *testing.B) {
	src, err := os.ReadFile("/usr/local/go/src/net/http/server.go")
	if err != nil {
		b.Skip("no Go sources")
	}
	inputs := map[string][]byte{
		"words":  wordsBytes(1, 1<<20),
		"source": bytes.Repeat(src, (1<<20)/len(src)+1)[:1<<20],
	}
	for _, name := range []string{"words", "source"} {
		data := inputs[name]
		dst := make([]byte, 0, len(data))
		for _, f := range []struct {
			name string
			f    func([]byte, []byte) ([]byte, Compression)
		}{{"probed", Compress}, {"probe-then-whole", probeThenWhole}} {
			b.Run(name+"/"+f.name, func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				var n int
				for b.Loop() {
					out, _ := f.f(dst, data)
					n = len(out)
				}
				b.ReportMetric(float64(n), "stored-B")
			})
		}
	}
}
