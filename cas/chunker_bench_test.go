package cas

// Throughput of our FastCDC chunker against github.com/PlakarKorp/go-cdc-chunkers
// v1.1.0 ("fastcdc-v1.0.0", the variant whose masks follow NormalSize; plain
// "fastcdc" uses fixed 8 KiB masks), same parameters (Min 256 KiB, Avg 1 MiB,
// Max 4 MiB), same 64 MiB seeded random input held in memory, chunker and
// reader reused across iterations (so both include copying the input from a
// bytes.Reader into their buffer).
//
//	go test ./cas -run XXX -bench Chunker -benchtime 3x -count 3
//
// Measured 2026-11 on a 2-vCPU AMD EPYC (Turin) VM, Go 1.26, linux/amd64, with
// other jobs sharing the machine; the quietest run (MB/s, higher is better):
//
//	BenchmarkChunker               2043  2797  2856   (57 chunks, p50 1189887 B, p99 2267166 B)
//	BenchmarkChunkerPlakarFastCDC  1765  1749  1701   (59 chunks, p50 1199914 B, p99 2285004 B)
//
// Ours is ~1.6x the library (the first iteration of a run includes page
// faults on the fresh buffer). A plain byte-at-a-time loop, like the library's,
// measured 1373-1645 MB/s here; the 8-way unrolled gearScan is the
// difference. Under heavy load from other jobs both drop a lot and vary run to
// run, so compare them within one run.
//
// The library is used only in this file (the benchmark and a cross-check of
// our cut points against its FastCDC); dropping it means deleting
// BenchmarkChunkerPlakarFastCDC, plakarOpts and TestCutPointMatchesPlakarFastCDC.

import (
	"bytes"
	"io"
	"slices"
	"sync"
	"testing"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	"github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc"
)

const chunkerBenchInputSize = 64 << 20

var chunkerBenchInput = sync.OnceValue(func() []byte { return chunkerTestData(10, chunkerBenchInputSize) })

// reportChunkSizes reports the median and 99th percentile chunk length.
func reportChunkSizes(b *testing.B, lens []int) {
	slices.Sort(lens)
	if len(lens) == 0 {
		return
	}
	b.ReportMetric(float64(lens[len(lens)/2]), "p50-bytes")
	b.ReportMetric(float64(lens[(len(lens)*99)/100]), "p99-bytes")
	b.ReportMetric(float64(len(lens)), "chunks")
}

func BenchmarkChunker(b *testing.B) {
	data := chunkerBenchInput()
	p := DefaultChunkerParams()
	rd := bytes.NewReader(data)
	c := NewChunker(rd, p)
	var lens []int
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		rd.Reset(data)
		c.Reset(rd)
		for {
			chunk, err := c.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if i == 0 {
				lens = append(lens, len(chunk))
			}
		}
	}
	reportChunkSizes(b, lens)
}

func plakarOpts(p ChunkerParams) *chunkers.ChunkerOpts {
	return &chunkers.ChunkerOpts{MinSize: p.Min, NormalSize: p.Avg, MaxSize: p.Max}
}

func BenchmarkChunkerPlakarFastCDC(b *testing.B) {
	data := chunkerBenchInput()
	p := DefaultChunkerParams()
	rd := bytes.NewReader(data)
	c, err := chunkers.NewChunker("fastcdc-v1.0.0", rd, plakarOpts(p))
	if err != nil {
		b.Fatal(err)
	}
	var lens []int
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		rd.Reset(data)
		c.Reset(rd)
		for {
			// The library returns the last chunk together with io.EOF
			// when it is shorter than MinSize.
			chunk, err := c.Next()
			if err != nil && err != io.EOF {
				b.Fatal(err)
			}
			if i == 0 && len(chunk) > 0 {
				lens = append(lens, len(chunk))
			}
			if err == io.EOF {
				break
			}
		}
	}
	reportChunkSizes(b, lens)
}

// TestCutPointMatchesPlakarFastCDC cross-checks our cut-point loop and masks
// against an independent FastCDC implementation, by running ours with the
// library's gear table. The library ends a chunk before the byte whose hash
// matched, ours after it, so its length L corresponds to our L+1 (and both
// stop at Max when nothing matched).
func TestCutPointMatchesPlakarFastCDC(t *testing.T) {
	data := chunkerTestData(11, 16<<20)
	for _, avg := range []int{64 << 10, 1 << 20} {
		p := mustChunkerParams(t, avg)
		maskS, maskL := chunkerMasks(p.Avg)
		for off := 0; off+p.Max <= len(data); off += 7919 * 13 {
			window := data[off : off+p.Max]
			c, err := chunkers.NewChunker("fastcdc-v1.0.0", bytes.NewReader(window), plakarOpts(p))
			if err != nil {
				t.Fatal(err)
			}
			chunk, err := c.Next()
			if err != nil {
				t.Fatal(err)
			}
			want := min(len(chunk)+1, p.Max)
			if got := cutPoint(window, p.Min, p.Avg, p.Max, maskS, maskL, &fastcdc.G); got != want {
				t.Fatalf("avg %d, offset %d: cut at %d, library cut at %d (want %d)", avg, off, got, len(chunk), want)
			}
		}
	}
}
