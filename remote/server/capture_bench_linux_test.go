package server_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"smp/capture"
	"smp/cas"
	"smp/remote/access"
	"smp/repo"
	"smp/store"
)

// smallTreeFiles is the size of the benchmark tree: a profile's worth of
// small files, where per-file costs (have-queries, proofs, frames, trees)
// dominate and per-byte costs do not hide them.
const smallTreeFiles = 10_000

// smallTree writes a tree of n files shaped like a user profile: sizes
// drawn log-normally around a median of 4 KiB (half the files under it, a
// long tail up to 1 MiB), 20 files and a few dot-files per directory,
// directories three levels deep; four files in five are text that zstd
// shrinks a few times, the fifth random bytes. Every file's content is
// distinct, so nothing dedupes within the tree, and trees of other seeds
// share nothing with it. It returns the bytes written.
func smallTree(tb testing.TB, root string, n int, seed uint64) int64 {
	tb.Helper()
	rng := rand.New(rand.NewPCG(17, seed))
	words := make([][]byte, 512)
	for i := range words {
		w := make([]byte, 3+rng.IntN(8))
		for j := range w {
			w[j] = 'a' + byte(rng.IntN(26))
		}
		words[i] = append(w, ' ')
	}
	text := make([]byte, 0, 4<<20)
	for len(text) < 4<<20-16 {
		text = append(text, words[rng.IntN(len(words))]...)
	}
	noise := make([]byte, 1<<20)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	var total int64
	buf := make([]byte, 0, 1<<20+64)
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("d%02d", i/1000), fmt.Sprintf("e%02d", i/200%5*2+i/100%2), fmt.Sprintf("f%02d", i/20%5))
		if i%20 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				tb.Fatal(err)
			}
		}
		size := int(math.Exp(math.Log(4096) + 1.5*rng.NormFloat64()))
		size = min(max(size, 0), 1<<20)
		buf = fmt.Appendf(buf[:0], "file %d of tree %d\n", i, seed)
		src := text
		if i%5 == 4 {
			src = noise
		}
		for len(buf) < size {
			off := rng.IntN(len(src) - 1)
			buf = append(buf, src[off:min(len(src), off+size-len(buf))]...)
		}
		name := fmt.Sprintf("file%04d.dat", i)
		if i%7 == 0 {
			name = fmt.Sprintf(".rc%04d", i)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
			tb.Fatal(err)
		}
		total += int64(len(buf))
	}
	return total
}

// meter counts an HTTP server's requests, the bytes of their bodies, and
// the CPU time its handlers spend: each request's goroutine is locked to
// its thread for the handler's duration, so that thread's CPU time is the
// handler's (reading the body, verifying, storing). What the process
// spends beside the handlers (the client, the garbage collector of both)
// is the rest of the process's CPU time.
type meter struct {
	h        http.Handler
	requests atomic.Int64
	bytesIn  atomic.Int64
	cpuNs    atomic.Int64
}

func (m *meter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := threadCPU()
	m.requests.Add(1)
	r.Body = &countingBody{ReadCloser: r.Body, n: &m.bytesIn}
	m.h.ServeHTTP(w, r)
	m.cpuNs.Add(int64(threadCPU() - start))
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func threadCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCaptureSmallFiles captures a tree of 10,000 small files
// (smallTree) into a fresh store, in process:
//
//   - local: into a store directory (repo), the reference;
//   - serve: through an SMP (the server over loopback HTTP, the client
//     and capture as `smp capture --store https://...` runs them);
//   - serve-dedupe: through an SMP that already holds every file (another
//     computer captured the same tree): every chunk is proved, none sent.
//
// Metrics per 1,000 files: cpu-s (the whole process), and for the SMP
// runs server-cpu-s (the handlers' threads), client-cpu-s (the rest),
// requests and sent-MB (request bodies). sep-ratio is a local capture's
// CPU time over the larger of the client's and the server's: what a
// capture through an SMP runs at, against a local one on one CPU, when
// the client and the server each have their own CPU (issue 17's target
// is 0.85). It needs the local run's figure, so it is reported by the
// serve runs after a local one in the same process.
func BenchmarkCaptureSmallFiles(b *testing.B) {
	src := filepath.Join(b.TempDir(), "src")
	bytes := smallTree(b, filepath.Join(src, "home", "user01"), smallTreeFiles, 42)
	b.Logf("tree: %d files, %.1f MB", smallTreeFiles, float64(bytes)/1e6)
	benchCaptures(b, captureBench{src: src, unit: "1k-files", per: smallTreeFiles / 1000})
}

// BenchmarkCaptureLargeFiles is BenchmarkCaptureSmallFiles on the shape of
// `smp bench run`'s large-file corpus (its serve rows): 48 files of 1 to
// 8 MiB, text and random bytes as in smallTree; metrics per GB.
func BenchmarkCaptureLargeFiles(b *testing.B) {
	src := filepath.Join(b.TempDir(), "src")
	var bytes int64
	dir := filepath.Join(src, "home", "user01")
	for i := range 48 {
		sub := filepath.Join(dir, fmt.Sprintf("big%02d", i))
		bytes += largeFile(b, sub, (1+i%8)<<20, uint64(i))
	}
	b.Logf("tree: 48 files, %.1f MB", float64(bytes)/1e6)
	benchCaptures(b, captureBench{src: src, unit: "GB", per: float64(bytes) / 1e9})
}

// largeFile writes one file of size bytes in its own directory dir: lines
// of text and numbers (zstd shrinks them a few times), or random bytes for
// one seed in five.
func largeFile(tb testing.TB, dir string, size int, seed uint64) int64 {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	buf := make([]byte, 0, size)
	for len(buf) < size {
		if seed%5 == 4 {
			buf = binaryAppendRandom(buf, rng, min(1<<16, size-len(buf)))
			continue
		}
		buf = append(buf, fmt.Sprintf("line %d of file %d: %x\n", len(buf), seed, rng.Uint64()>>uint(rng.IntN(48)))...)
	}
	if err := os.WriteFile(filepath.Join(dir, "data.bin"), buf[:size], 0o644); err != nil {
		tb.Fatal(err)
	}
	return int64(size)
}

func binaryAppendRandom(buf []byte, rng *rand.Rand, n int) []byte {
	for range n / 8 {
		v := rng.Uint64()
		buf = append(buf, byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
	}
	return buf
}

// captureBench is a tree to capture and the unit its metrics are per:
// per is the tree's size in units.
type captureBench struct {
	src  string
	unit string
	per  float64
}

// benchCaptures runs the local, serve and serve-dedupe captures of cb.
func benchCaptures(b *testing.B, cb captureBench) {
	var localCPU time.Duration // per unit, for the serve runs' sep-ratio
	b.Run("local", func(b *testing.B) {
		var cpu time.Duration
		for range b.N {
			b.StopTimer()
			dir := filepath.Join(b.TempDir(), "store")
			if _, err := repo.Init(dir, cas.DefaultChunkerParams()); err != nil {
				b.Fatal(err)
			}
			r, err := repo.Open(dir)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			c0 := processCPU()
			if _, err := capture.Run(context.Background(), r, capture.Options{Computer: "pc1", Root: cb.src}); err != nil {
				b.Fatal(err)
			}
			cpu += processCPU() - c0
			b.StopTimer()
			if err := r.Close(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		localCPU = time.Duration(float64(cpu) / float64(b.N) / cb.per)
		b.ReportMetric(localCPU.Seconds(), "cpu-s/"+cb.unit)
	})
	for _, dedupe := range []bool{false, true} {
		name := "serve"
		if dedupe {
			name = "serve-dedupe"
		}
		b.Run(name, func(b *testing.B) { benchServeCapture(b, cb, dedupe, localCPU) })
	}
}

func benchServeCapture(b *testing.B, cb captureBench, dedupe bool, localCPU time.Duration) {
	var cpu, server time.Duration
	var requests, sent int64
	for range b.N {
		b.StopTimer()
		e := newEnv(b)
		m := &meter{h: e.srv}
		hs := httptest.NewServer(m)
		if dedupe {
			captureThrough(b, hs.URL, e.token("other", access.RoleClient, 0), capture.Options{Computer: "other", Root: cb.src})
		}
		tok := e.token("pc1", access.RoleClient, 0)
		m.requests.Store(0)
		m.bytesIn.Store(0)
		m.cpuNs.Store(0)
		b.StartTimer()
		c0 := processCPU()
		captureThrough(b, hs.URL, tok, capture.Options{Computer: "pc1", Root: cb.src})
		cpu += processCPU() - c0
		b.StopTimer()
		server += time.Duration(m.cpuNs.Load())
		requests += m.requests.Load()
		sent += m.bytesIn.Load()
		hs.Close()
		b.StartTimer()
	}
	n := float64(b.N) * cb.per
	clientCPU := (cpu - server).Seconds() / n
	serverCPU := server.Seconds() / n
	b.ReportMetric(cpu.Seconds()/n, "cpu-s/"+cb.unit)
	b.ReportMetric(clientCPU, "client-cpu-s/"+cb.unit)
	b.ReportMetric(serverCPU, "server-cpu-s/"+cb.unit)
	b.ReportMetric(float64(requests)/n, "requests/"+cb.unit)
	b.ReportMetric(float64(sent)/1e6/n, "sent-MB/"+cb.unit)
	if localCPU > 0 {
		b.ReportMetric(localCPU.Seconds()/max(clientCPU, serverCPU), "sep-ratio")
	}
}

// captureThrough runs the capture opts through the SMP at url as `smp
// capture --store URL` does (store.Remote: the walk totals counted, a
// capture session, capture.Run, the commit), so the client's figures hold
// everything a capture through an SMP does beyond a local one.
func captureThrough(b *testing.B, url, tok string, opts capture.Options) {
	ctx := context.Background()
	st, err := store.Open(ctx, url, store.Options{Token: tok})
	if err != nil {
		b.Error(err)
		return
	}
	defer st.Close()
	if _, err := st.Capture(ctx, store.CaptureOptions{Options: opts}); err != nil {
		b.Error(err)
	}
}

// BenchmarkCaptureSmallFiles16 is `smp bench run`'s serve-16 load on small
// files: 8 users of 1,250 files each (smallTree, a seed per user), and 16
// clients capturing at once through one SMP, client i capturing user
// (i mod 8) as its own computer, so two computers send the same files
// concurrently. Per 1,000 files captured (20,000 in all): cpu-s (the
// process), server-cpu-s, requests, sent-MB (what the second capture of a
// user sends shows how much dedupe across concurrent sessions holds).
func BenchmarkCaptureSmallFiles16(b *testing.B) {
	const users, clients, perUser = 8, 16, 1250
	src := filepath.Join(b.TempDir(), "src")
	for u := range users {
		smallTree(b, filepath.Join(src, "home", fmt.Sprintf("user%02d", u+1)), perUser, uint64(100+u))
	}
	var cpu, server time.Duration
	var requests, sent int64
	for range b.N {
		b.StopTimer()
		e := newEnv(b)
		m := &meter{h: e.srv}
		hs := httptest.NewServer(m)
		toks := make([]string, clients)
		for i := range toks {
			toks[i] = e.token(fmt.Sprintf("load%02d", i), access.RoleClient, 0)
		}
		b.StartTimer()
		c0 := processCPU()
		var wg sync.WaitGroup
		for i := range clients {
			wg.Go(func() {
				captureThrough(b, hs.URL, toks[i], capture.Options{Computer: fmt.Sprintf("load%02d", i), Root: src,
					Users: []string{fmt.Sprintf("user%02d", i%users+1)}})
			})
		}
		wg.Wait()
		cpu += processCPU() - c0
		b.StopTimer()
		server += time.Duration(m.cpuNs.Load())
		requests += m.requests.Load()
		sent += m.bytesIn.Load()
		hs.Close()
		b.StartTimer()
	}
	n := float64(b.N) * clients * perUser / 1000
	b.ReportMetric(cpu.Seconds()/n, "cpu-s/1k-files")
	b.ReportMetric(server.Seconds()/n, "server-cpu-s/1k-files")
	b.ReportMetric(float64(requests)/n, "requests/1k-files")
	b.ReportMetric(float64(sent)/1e6/n, "sent-MB/1k-files")
}
