package server_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"smp/capture"
	"smp/remote/access"
)

// BenchmarkConsoleCost measures what an admin keeping the console open
// costs a capture through the same server: the time of a real capture
// (capture.Run through remote/client: walk, chunk, compress, have-queries,
// uploads, commit) of consoleBenchMiB of fresh random files, alone and
// while a logged-in console session loads the overview and computers
// pages, interleaved so that a loaded host's drift hits both alike. The
// store holds consoleBenchRecords records of 12 computers beforehand (the
// computers page reads every record's usage), and each capture adds one.
//
// Modes: "refresh" loads both pages every second (a browser tab kept
// open and reloaded), "busy" loads them back to back (the worst one
// admin can do). Reported: the median capture wall time alone and polled,
// in ms, and their ratio; the process's CPU time (client, server and
// poller: one process) per capture alone and polled, and their ratio,
// which other load on the host disturbs less than wall time; page loads
// per polled capture and their mean latency.
func BenchmarkConsoleCost(b *testing.B) {
	for _, mode := range []struct {
		name  string
		every time.Duration
	}{{"refresh", time.Second}, {"busy", 0}} {
		b.Run(mode.name, func(b *testing.B) { benchConsoleCost(b, mode.every) })
	}
}

const (
	consoleBenchMiB     = 24
	consoleBenchRecords = 36
)

func benchConsoleCost(b *testing.B, every time.Duration) {
	e := newEnv(b)
	for i := range consoleBenchRecords {
		e.directRecord(fmt.Sprintf("PC%02d", i%12), e.makeChunks(uint64(1000+i), 8), t0)
	}
	cl := e.client(e.token("", access.RoleAdmin, 0))
	srcs := b.TempDir()
	var alone, polled []time.Duration
	var aloneCPU, polledCPU time.Duration
	var loads int64
	var loadTime time.Duration
	run := func(i int, poll bool) time.Duration {
		root := filepath.Join(srcs, fmt.Sprint(i))
		writeRandomProfile(b, root, uint64(i))
		var stop func() (int64, time.Duration)
		if poll {
			stop = startConsolePoller(b, e.hs.URL, e.admin, every)
		}
		cpu0 := cpuTime(b)
		start := time.Now()
		cp, err := cl.StartCapture(context.Background(), fmt.Sprintf("bench%03d", i), [32]byte{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := capture.Run(context.Background(), cp, capture.Options{Computer: fmt.Sprintf("bench%03d", i), Root: root}); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		cp.Close()
		if stop != nil {
			n, d := stop()
			loads, loadTime = loads+n, loadTime+d
			polledCPU += cpuTime(b) - cpu0
		} else {
			aloneCPU += cpuTime(b) - cpu0
		}
		os.RemoveAll(root)
		return took
	}
	b.ResetTimer()
	for i := range b.N {
		// Alternate which goes first, so neither always follows the other.
		if i%2 == 0 {
			alone = append(alone, run(2*i, false))
			polled = append(polled, run(2*i+1, true))
		} else {
			polled = append(polled, run(2*i, true))
			alone = append(alone, run(2*i+1, false))
		}
	}
	a, p := median(alone), median(polled)
	b.ReportMetric(float64(a.Milliseconds()), "alone-ms")
	b.ReportMetric(float64(p.Milliseconds()), "polled-ms")
	b.ReportMetric(float64(p)/float64(a), "ratio")
	b.ReportMetric(float64(aloneCPU.Milliseconds())/float64(b.N), "alone-cpu-ms")
	b.ReportMetric(float64(polledCPU.Milliseconds())/float64(b.N), "polled-cpu-ms")
	b.ReportMetric(float64(polledCPU)/float64(aloneCPU), "cpu-ratio")
	b.ReportMetric(float64(loads)/float64(b.N), "loads/capture")
	if loads > 0 {
		b.ReportMetric(float64(loadTime.Microseconds())/1000/float64(loads), "ms/load")
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// writeRandomProfile writes consoleBenchMiB of random files, 1 MiB each,
// under root/home/alice.
func writeRandomProfile(b *testing.B, root string, seed uint64) {
	dir := filepath.Join(root, "home", "alice")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 42))
	buf := make([]byte, 1<<20)
	for i := range consoleBenchMiB {
		for j := 0; j < len(buf); j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// startConsolePoller logs in to the console with the admin token and
// loads the overview and the computers page, then waits every (0: not
// at all), until the returned stop, which reports the pages loaded and
// the time they took.
func startConsolePoller(b *testing.B, base, admin string, every time.Duration) func() (int64, time.Duration) {
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.PostForm(base+"/login", url.Values{"token": {admin}})
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "smp_session" {
			cookie = c
		}
	}
	if cookie == nil {
		b.Fatalf("console login: status %d, no session cookie", resp.StatusCode)
	}
	var loads, loadNs atomic.Int64
	var failed atomic.Value
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			for _, path := range []string{"/", "/computers"} {
				req, _ := http.NewRequest(http.MethodGet, base+path, nil)
				req.AddCookie(cookie)
				t := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					failed.Store(err.Error())
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Store(fmt.Sprintf("GET %s: status %d", path, resp.StatusCode))
					return
				}
				loads.Add(1)
				loadNs.Add(int64(time.Since(t)))
			}
			select {
			case <-done:
				return
			case <-time.After(every):
			}
		}
	})
	return func() (int64, time.Duration) {
		close(done)
		wg.Wait()
		if f := failed.Load(); f != nil {
			b.Fatalf("console poller: %s", f)
		}
		return loads.Load(), time.Duration(loadNs.Load())
	}
}
