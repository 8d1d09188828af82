package server_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"smp/cas"
	"smp/remote/access"
	"smp/remote/client"
)

// BenchmarkConcurrentCaptures runs loadClients captures at once through
// one server, two clients for each of loadSets data sets, as the serve-16
// scenario of smp bench run does (several computers sending the same data
// together). Each chunk is a compressible frame of loadChunk bytes, larger
// than the upload reader's buffer, so the server sees uploads of many
// frames each. Besides the time it reports what was sent: the second
// client of a pair finds a chunk held only once the first client's upload
// of it is committed, so uploads that finish late make the clients send
// (and the server decompress and verify) more.
func BenchmarkConcurrentCaptures(b *testing.B) {
	const (
		loadClients = 16
		loadSets    = 8
		loadChunks  = 24 // per set: three upload batches of the client
		loadChunk   = 512 << 10
	)
	sets := make([][]chunk, loadSets)
	for s := range sets {
		sets[s] = loadData(uint64(s), loadChunks, loadChunk)
	}
	var sent, held int64
	for range b.N {
		b.StopTimer()
		e := newEnv(b)
		clients := make([]*client.Client, loadClients)
		files := make([]map[string][]chunk, loadSets)
		for s := range files {
			named := make([]chunk, len(sets[s]))
			for i, c := range sets[s] {
				c.id = e.repo.Hasher.Sum(c.plain)
				named[i] = c
			}
			files[s] = map[string][]chunk{"data": named}
		}
		for i := range clients {
			clients[i] = e.client(e.token(fmt.Sprintf("load%02d", i), access.RoleClient, 0))
		}
		b.StartTimer()
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i, c := range clients {
			wg.Go(func() {
				_, cp := e.captureAll(c, fmt.Sprintf("load%02d", i), files[i%loadSets], t0)
				mu.Lock()
				sent += cp.SentBytes.Load()
				held += cp.HeldBlobs.Load()
				mu.Unlock()
			})
		}
		wg.Wait()
		b.StopTimer()
		e.hs.Close()
		for _, c := range clients {
			c.Close()
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(sent)/float64(b.N)/(1<<20), "sent-MiB/op")
	b.ReportMetric(float64(held)/float64(b.N), "held-chunks/op")
}

// loadData returns n chunks of size bytes drawn from 16 symbols, so zstd
// halves them about as it does a profile's files, with the compressed
// frame a client would send. IDs are left to the store's key.
func loadData(seed uint64, n, size int) []chunk {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]chunk, n)
	for i := range out {
		plain := make([]byte, size)
		for j := range plain {
			plain[j] = 'a' + byte(rng.Uint32()&15)
		}
		stored, comp := cas.Compress(nil, plain)
		out[i] = chunk{plain: plain, stored: bytes.Clone(stored), comp: comp}
	}
	return out
}
