package repo

import (
	"crypto/rand"
	"encoding/binary"
	"path/filepath"
	"sync/atomic"
	"testing"

	"smp/cas"
)

// BenchmarkAddBlobParallel measures AddBlob of already compressed 1 MiB
// blobs from GOMAXPROCS goroutines, as capture's compression workers call
// it, into a store in clear and an encrypted one: the encrypted store's
// extra cost is sealing, and how much of it the workers do side by side.
func BenchmarkAddBlobParallel(b *testing.B) {
	for _, encrypted := range []bool{false, true} {
		name := "clear"
		if encrypted {
			name = "encrypted"
		}
		b.Run(name, func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "store")
			params, _ := cas.ChunkerParamsForAvg(1 << 20)
			o := InitOptions{Params: params}
			if encrypted {
				o.Keys = testKeys(b)
			}
			if _, err := InitWith(dir, o); err != nil {
				b.Fatal(err)
			}
			oo := OpenOptions{}
			if encrypted {
				oo.Keyring = o.Keys.Keyring()
			}
			r, err := OpenWith(dir, oo)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			stored := make([]byte, 1<<20)
			rand.Read(stored)
			var n atomic.Uint64
			b.SetBytes(int64(len(stored)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var id cas.ID
				for pb.Next() {
					rand.Read(id[:8])
					binary.LittleEndian.PutUint64(id[8:], n.Add(1))
					if ok, err := r.Reserve(cas.BlobData, id); err != nil || !ok {
						b.Fatalf("reserve: %v %v", ok, err)
					}
					if err := r.AddBlob(cas.BlobData, id, cas.CompressionNone, stored, len(stored)); err != nil {
						b.Fatal(err)
					}
				}
			})
			if err := r.Flush(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
