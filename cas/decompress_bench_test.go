package cas

import (
	"fmt"
	"testing"
)

// BenchmarkDecompress decodes text-like blobs of the sizes a restore
// meets (a small file's one chunk, a block, an average chunk) into a
// reused buffer, as a restore worker does.
func BenchmarkDecompress(b *testing.B) {
	for _, n := range []int{4 << 10, 64 << 10, 1 << 20} {
		plain := wordsBytes(uint64(n), n)
		stored, c := CompressLevel(nil, plain, LevelFastest)
		if c != CompressionZstd {
			b.Fatalf("%d bytes stored raw", n)
		}
		stored = append([]byte(nil), stored...)
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			b.SetBytes(int64(n))
			var dst []byte
			for b.Loop() {
				out, err := Decompress(dst, stored, c, n)
				if err != nil {
					b.Fatal(err)
				}
				dst = out
			}
		})
	}
}
