package server_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"smp/cas"
	"smp/remote/access"
	"smp/remote/wire"
)

// BenchmarkConcurrentUploads sends loadUploads upload requests at once,
// each of its own session, each of loadFrames compressible frames of
// 1 MiB of plaintext (larger, compressed, than the server's 64 KiB read
// buffer, so a frame is never whole in it when the previous one is done).
// The server's work is the same whatever the order of its work slots;
// what the order decides is when each upload is done: its blobs become
// visible to other sessions' have-queries only then, so an upload done
// late makes other clients send the same data again. Besides the time
// for all of them it reports the mean time from sending a request to its
// answer, and that mean as a fraction of the time for all (done-fraction:
// near 1 when every upload finishes at the end, about one half when they
// finish one after another), which the machine's speed cancels out of.
func BenchmarkConcurrentUploads(b *testing.B) {
	const (
		loadUploads = 16
		loadFrames  = 12
	)
	data := make([][]chunk, loadUploads)
	for i := range data {
		data[i] = loadData(uint64(100+i), loadFrames, 1<<20)
	}
	b.ResetTimer()
	var latency time.Duration
	fraction := 0.0
	for range b.N {
		b.StopTimer()
		e := newEnv(b)
		paths, toks, bodies := make([]string, loadUploads), make([]string, loadUploads), make([][]byte, loadUploads)
		for i := range paths {
			toks[i] = e.token(fmt.Sprintf("up%02d", i), access.RoleClient, 0)
			paths[i] = e.hs.URL + "/v1/captures/" + e.session(toks[i], fmt.Sprintf("up%02d", i)).ID + "/blobs"
			for _, c := range data[i] {
				c.id = e.repo.Hasher.Sum(c.plain)
				bodies[i] = wire.AppendBlob(bodies[i], c.frame())
			}
		}
		errs := make([]error, loadUploads)
		took := make([]time.Duration, loadUploads)
		var wg sync.WaitGroup
		b.StartTimer()
		start := time.Now()
		for i := range paths {
			wg.Go(func() {
				start := time.Now()
				errs[i] = postBlobs(e.hs.Client(), paths[i], toks[i], bodies[i])
				took[i] = time.Since(start)
			})
		}
		wg.Wait()
		b.StopTimer()
		wall := time.Since(start)
		var sum time.Duration
		for i, err := range errs {
			if err != nil {
				b.Fatalf("upload %d: %v", i, err)
			}
			sum += took[i]
		}
		latency += sum
		fraction += float64(sum) / float64(loadUploads) / float64(wall)
		e.hs.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(latency.Milliseconds())/float64(b.N*loadUploads), "ms/upload")
	b.ReportMetric(fraction/float64(b.N), "done-fraction")
}

// postBlobs sends one upload body and fails unless the server took it.
func postBlobs(hc *http.Client, url, tok string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, msg)
	}
	return nil
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
