package cas

import (
	"fmt"
	"testing"
)

// BenchmarkHasherSum measures hashing small blobs (trees, metadata), where
// setting up a keyed BLAKE3 state costs as much as hashing the bytes, and
// a 1 MiB chunk.
func BenchmarkHasherSum(b *testing.B) {
	h := NewHasher([32]byte{1, 2, 3})
	for _, n := range []int{200, 4 << 10, 1 << 20} {
		data := make([]byte, n)
		b.Run(fmt.Sprintf("data-%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				h.Sum(data)
			}
		})
		b.Run(fmt.Sprintf("tree-%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				h.SumBlob(BlobTree, data)
			}
		})
	}
}
