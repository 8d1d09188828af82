package main

import (
	"bytes"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// peakHeapProfile records the in-use heap profile of the collection that
// found the largest live heap of the run, and writes it to path when
// stopped: what a run's peak memory holds, which the allocation profile
// of SMP_MEMPROFILE (every allocation, at exit) does not show. The runtime
// publishes a heap profile a collection or two after the one it describes,
// so the poller takes one after each collection that marked more live bytes
// than any before it: the profile is of the heap near its peak, not of it
// exactly.
type peakHeapProfile struct {
	path string
	done chan struct{}
	out  chan []byte
}

// heapPollInterval is how often the poller looks for a finished
// collection; a collection marks for milliseconds, and the live heap
// stays at its peak for many of them.
const heapPollInterval = 20 * time.Millisecond

func startPeakHeapProfile(path string) *peakHeapProfile {
	runtime.MemProfileRate = 4096
	p := &peakHeapProfile{path: path, done: make(chan struct{}), out: make(chan []byte, 1)}
	go p.poll()
	return p
}

func (p *peakHeapProfile) poll() {
	samples := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/live:bytes"}}
	var cycles, peak uint64
	var best []byte
	t := time.NewTicker(heapPollInterval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			p.out <- best
			return
		case <-t.C:
		}
		metrics.Read(samples)
		if c := samples[0].Value.Uint64(); c != cycles {
			cycles = c
			if live := samples[1].Value.Uint64(); live > peak {
				peak = live
				var b bytes.Buffer
				if pprof.Lookup("heap").WriteTo(&b, 0) == nil {
					best = b.Bytes()
				}
			}
		}
	}
}

// stop writes the profile; a run too short for a collection writes the
// heap as it is at exit.
func (p *peakHeapProfile) stop() {
	close(p.done)
	best := <-p.out
	if best == nil {
		runtime.GC()
		var b bytes.Buffer
		pprof.Lookup("heap").WriteTo(&b, 0)
		best = b.Bytes()
	}
	os.WriteFile(p.path, best, 0o600)
}
