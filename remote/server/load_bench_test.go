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
// one server, as the serve-16 scenario of smp bench run does: two clients
// for each of loadSets data sets, and every set also holds loadCommon
// chunks all sets share (the same application files in every profile),
// each set meeting them in another order. Chunks are compressible and of
// the default chunker's average size, larger than the upload reader's
// buffer, so the server sees uploads of many frames each. Besides the
// time it reports what was sent: a client finds a chunk held only once
// another client's upload of it is committed, so uploads that finish late
// make the clients send (and the server decompress and verify) more.
func BenchmarkConcurrentCaptures(b *testing.B) {
	const (
		loadClients = 16
		loadSets    = 8
		loadOwn     = 16 // chunks of one set only
		loadCommon  = 24 // chunks of every set
		loadChunk   = 1 << 20
	)
	common := loadData(1000, loadCommon, loadChunk)
	sets := make([][]chunk, loadSets)
	for s := range sets {
		own := loadData(uint64(s), loadOwn, loadChunk)
		for i := range loadOwn + loadCommon {
			if i%5 < 2 && len(own) > 0 {
				sets[s], own = append(sets[s], own[0]), own[1:]
				continue
			}
			sets[s] = append(sets[s], common[(i+5*s)%loadCommon])
		}
		sets[s] = append(sets[s], own...)
	}
	var sent, held int64
	for range b.N {
		b.StopTimer()
		e := newEnv(b)
		clients := make([]*client.Client, loadClients)
		files := make([]map[string][]chunk, loadSets)
		ids := map[*byte]cas.ID{}
		for s := range files {
			named := make([]chunk, len(sets[s]))
			for i, c := range sets[s] {
				id, ok := ids[&c.plain[0]]
				if !ok {
					id = e.repo.Hasher.Sum(c.plain)
					ids[&c.plain[0]] = id
				}
				c.id = id
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

// loadData returns n chunks of size bytes of text (words of a small
// vocabulary, so zstd shrinks them a few times, as it does a profile's
// documents and configuration), with the compressed frame a client would
// send. IDs are left to the store's key.
func loadData(seed uint64, n, size int) []chunk {
	rng := rand.New(rand.NewPCG(seed, 7))
	words := make([][]byte, 512)
	for i := range words {
		w := make([]byte, 3+rng.IntN(8))
		for j := range w {
			w[j] = 'a' + byte(rng.IntN(26))
		}
		words[i] = append(w, ' ')
	}
	out := make([]chunk, n)
	for i := range out {
		plain := make([]byte, 0, size+16)
		for len(plain) < size {
			plain = append(plain, words[rng.IntN(len(words))]...)
		}
		plain = plain[:size]
		stored, comp := cas.Compress(nil, plain)
		out[i] = chunk{plain: plain, stored: bytes.Clone(stored), comp: comp}
	}
	return out
}
