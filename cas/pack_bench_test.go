package cas

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
)

// packBenchBlobs returns 32 MiB of 1 MiB blobs: half Go source text
// (compressible), half pseudo-random (stored raw), precompressed once.
func packBenchBlobs(b *testing.B, h *Hasher) (plains, stored [][]byte, comps []Compression, total int64) {
	b.Helper()
	src, err := os.ReadFile("/usr/local/go/src/net/http/server.go")
	if err != nil {
		src = bytes.Repeat([]byte("func main() { println(\"smp\") }\n"), 1<<12)
	}
	r := rand.New(rand.NewPCG(7, 7))
	for i := range 32 {
		plain := make([]byte, 1<<20)
		if i%2 == 0 {
			for off := 0; off < len(plain); off += copy(plain[off:], src[r.IntN(len(src)/2):]) {
			}
		} else {
			for j := range plain {
				plain[j] = byte(r.Uint32())
			}
		}
		s, c := Compress(nil, plain)
		plains = append(plains, plain)
		stored = append(stored, bytes.Clone(s))
		comps = append(comps, c)
		total += int64(len(plain))
	}
	return plains, stored, comps, total
}

// BenchmarkPackWrite measures appending precompressed blobs to a pack and
// committing it (temporary file, fsync, rename): MB/s of plaintext.
func BenchmarkPackWrite(b *testing.B) {
	h := NewHasher([32]byte{3})
	plains, stored, comps, total := packBenchBlobs(b, h)
	ids := make([]ID, len(plains))
	for i, p := range plains {
		ids[i] = h.Sum(p)
	}
	d, err := NewPackDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	for b.Loop() {
		p, err := d.Create()
		if err != nil {
			b.Fatal(err)
		}
		for i := range stored {
			if err := p.Add(BlobData, ids[i], comps[i], stored[i], len(plains[i])); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, _, err := p.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPackRead measures reading every blob of a pack back: read,
// decompress and verify the ID, as restore does. MB/s of plaintext. The
// pack is in clear, or sealed with each cipher (read also opens every
// blob): the CPU an encrypted restore adds per byte (cpu-ns/op is the
// process's CPU time per read of the pack).
func BenchmarkPackRead(b *testing.B) {
	h := NewHasher([32]byte{3})
	plains, stored, comps, total := packBenchBlobs(b, h)
	for _, c := range append([]Cipher{0}, ciphers...) {
		name := "clear"
		if c != 0 {
			name = c.String()
		}
		b.Run(name, func(b *testing.B) {
			d, err := NewPackDir(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			if c != 0 {
				d.Seal(testSealerWith(b, "store-a", 1, false, c))
			}
			p, err := d.Create()
			if err != nil {
				b.Fatal(err)
			}
			for i := range stored {
				if err := p.Add(BlobData, h.Sum(plains[i]), comps[i], stored[i], len(plains[i])); err != nil {
					b.Fatal(err)
				}
			}
			id, entries, _, err := p.Commit()
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, 1<<20)
			b.SetBytes(total)
			cpu := processCPU()
			for b.Loop() {
				for _, e := range entries {
					out, err := d.ReadBlob(id, e, h, buf)
					if err != nil {
						b.Fatal(err)
					}
					buf = out[:0]
				}
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkSealedPackWriteVaried seals blobs of the sizes a chunker cuts
// (256 KiB to 4 MiB, in random order) into a pack written to io.Discard:
// the CPU and the garbage (B/op with -benchmem) of sealing, with the seal
// scratch shared by every pack writer. A GC per iteration empties the
// pool's primary cache, as collections during a capture do.
func BenchmarkSealedPackWriteVaried(b *testing.B) {
	s := testSealer(b, "store-bench", 5, false)
	h := testHasher()
	r := rand.New(rand.NewPCG(11, 11))
	var blobs [][]byte
	var total int64
	for range 48 {
		p := make([]byte, 256<<10+r.IntN(4<<20-256<<10))
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		blobs = append(blobs, p)
		total += int64(len(p))
	}
	ids := make([]ID, len(blobs))
	for i, p := range blobs {
		ids[i] = h.Sum(p)
	}
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		b.StartTimer()
		w, err := NewSealedPackWriter(io.Discard, s)
		if err != nil {
			b.Fatal(err)
		}
		for i, p := range blobs {
			if err := w.Add(BlobData, ids[i], CompressionNone, p, len(p)); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, err := w.Finish(); err != nil {
			b.Fatal(err)
		}
	}
}
