package cas

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkPackDirWriteSmall writes a store's pack of 16 MiB as a capture
// does: blobs of 1-64 KiB, sealed, to a local PackDir that expects packs
// of that size (its writer buffers for direct writes); MB/s of stored
// bytes and the process CPU per pack (fsync included).
func BenchmarkPackDirWriteSmall(b *testing.B) {
	s := testSealer(b, "store-bench", 5, false)
	h := testHasher()
	r := rand.New(rand.NewPCG(13, 13))
	var blobs [][]byte
	var ids []ID
	var total int64
	for total < 16<<20 {
		p := make([]byte, 1<<10+r.IntN(63<<10))
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		blobs = append(blobs, p)
		ids = append(ids, h.Sum(p))
		total += int64(len(p))
	}
	d, err := NewPackDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	d.Seal(s).ExpectSize(16<<20 + 2<<20)
	b.SetBytes(total)
	start := processCPU()
	for b.Loop() {
		p, err := d.Create()
		if err != nil {
			b.Fatal(err)
		}
		for i, blob := range blobs {
			if err := p.Add(BlobData, ids[i], CompressionNone, blob, len(blob)); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, _, err := p.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}
