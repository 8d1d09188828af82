package main

import "testing"

func TestE2EBenchGC(t *testing.T) {
	t.Parallel()
	var rep struct {
		Chunks       int     `json:"chunks"`
		Removed      int     `json:"removed"`
		BlobsRemoved int     `json:"blobs_removed"`
		LiveBlobs    int     `json:"live_blobs"`
		GCSeconds    float64 `json:"gc_seconds"`
		GCPeakRSSMiB float64 `json:"gc_peak_rss_mib"`
	}
	smpJSON(t, exitOK, &rep, "bench", "gc", "--chunks", "30000", "--work", tmpDir(t), "--json")
	// 3 records of 10000 chunks, the 1st and 3rd removed: 20000 chunks and
	// their trees and file chunks go; the live record's stay.
	if rep.Chunks != 30000 || rep.Removed != 2 || rep.BlobsRemoved < 20000 || rep.LiveBlobs < 10000 || rep.GCSeconds <= 0 || rep.GCPeakRSSMiB <= 0 {
		t.Fatalf("bench gc report: %+v", rep)
	}
	if r := smp(t, "bench", "gc", "--chunks", "5"); r.code != exitUsage {
		t.Fatalf("tiny --chunks: %s", r)
	}
}
