package capture_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"smp/capture"
)

// BenchmarkCountBeforeCapture measures the counting walk a remote capture
// runs before its session (capture.Count, for the console's progress and
// ETA) against the capture itself, on a profile of countBenchFiles files
// of 16 KiB in 40 directories, into a local store: a first capture (every
// file read) and a re-capture with nothing changed (every file compared
// with the parent, none read), the case where the count costs the most
// in proportion. Reported in ms: count and first capture, count against
// the parent and the unchanged re-capture, and each count's share of its
// capture.
func BenchmarkCountBeforeCapture(b *testing.B) {
	const countBenchFiles = 4000
	src := b.TempDir()
	for i := range countBenchFiles {
		write(b, src, filepath.Join("home/alice", fmt.Sprintf("d%02d", i%40), fmt.Sprintf("f%04d", i)), randBytes(uint64(i), 16<<10))
	}
	ctx := context.Background()
	var count, first, countParent, again time.Duration
	for range b.N {
		r := newRepo(b)
		opts := capture.Options{Computer: "pc", Root: src}
		t := time.Now()
		if _, err := capture.Count(ctx, r, opts); err != nil {
			b.Fatal(err)
		}
		count += time.Since(t)
		t = time.Now()
		res, err := capture.Run(ctx, r, opts)
		if err != nil {
			b.Fatal(err)
		}
		first += time.Since(t)
		opts.Parent, opts.ParentID = res.Record, res.ID
		t = time.Now()
		tot, err := capture.Count(ctx, r, opts)
		if err != nil || tot.Files != 0 {
			b.Fatalf("count against an unchanged parent: %+v, %v", tot, err)
		}
		countParent += time.Since(t)
		t = time.Now()
		if _, err := capture.Run(ctx, r, opts); err != nil {
			b.Fatal(err)
		}
		again += time.Since(t)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(count), "count-ms")
	b.ReportMetric(ms(first), "capture-ms")
	b.ReportMetric(float64(count)/float64(first), "count/capture")
	b.ReportMetric(ms(countParent), "count-parent-ms")
	b.ReportMetric(ms(again), "recapture-ms")
	b.ReportMetric(float64(countParent)/float64(again), "count/recapture")
}
