package bench

import (
	"encoding/json"
	"os"
	"strconv"
	"testing"

	"github.com/dustin/go-humanize"
)

// TestScale runs RunScale small (3000 files, a 256 MiB sparse file) with
// the real smp binary and checks the report.
func TestScale(t *testing.T) {
	work := t.TempDir()
	rep, err := RunScale(t.Context(), ScaleOptions{Bin: buildSMP(t), Work: work, Files: 3000, SparseBytes: 256 << 20, Log: t.Output()})
	if err != nil {
		t.Fatalf("%v\nreport so far: %+v", err, rep)
	}
	t.Logf("%+v", rep)
	if !rep.Verified {
		t.Error("restore not verified")
	}
	if rep.Files != 3000 || rep.SparseBytes != 256<<20 {
		t.Errorf("report says %d files, %d sparse bytes", rep.Files, rep.SparseBytes)
	}
	if rep.RestoredAllocatedBytes <= 0 || rep.RestoredAllocatedBytes >= 64<<20 {
		t.Errorf("restored sparse file allocates %d bytes, want some but under 64 MiB (holes kept)", rep.RestoredAllocatedBytes)
	}
	if rep.CapturePeakRSSMiB <= 0 || rep.RestorePeakRSSMiB <= 0 || rep.CaptureSeconds <= 0 || rep.RestoreSeconds <= 0 {
		t.Errorf("capture or restore not measured: %+v", rep)
	}
	// 2250 distinct files of at most 2 KiB plus 6 MiB of random data: the
	// duplicates and the 250 MiB of zeros must not be stored. (A chunk that
	// starts with random data is stored raw, zeros after it included, up
	// to the 4 MiB maximum chunk: hence the margin.)
	if rep.StoredBytes <= 6<<20 || rep.StoredBytes > 40<<20 {
		t.Errorf("stored %d bytes, want between 6 and 40 MiB", rep.StoredBytes)
	}
	if ents, err := os.ReadDir(work); err != nil || len(ents) != 0 {
		t.Errorf("scratch directory left behind in %s: %v %v", work, ents, err)
	}
}

// TestScaleFull is issue 7's full-size run, skipped unless SMP_SCALE_FULL=1:
//
//	SMP_SCALE_FULL=1 go test ./bench -run ScaleFull -timeout 60m -v
//
// SMP_SCALE_FILES (default 1000000), SMP_SCALE_SPARSE (default 20GiB) and
// SMP_SCALE_WORK (default a temporary directory) change its size and place.
func TestScaleFull(t *testing.T) {
	if os.Getenv("SMP_SCALE_FULL") != "1" {
		t.Skip("set SMP_SCALE_FULL=1 for the full-size run (1M files, 20 GiB sparse file)")
	}
	files := 1_000_000
	if v := os.Getenv("SMP_SCALE_FILES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("SMP_SCALE_FILES=%q: %v", v, err)
		}
		files = n
	}
	sparse := envSize(t, "SMP_SCALE_SPARSE", 20<<30)
	work := os.Getenv("SMP_SCALE_WORK")
	if work == "" {
		work = t.TempDir()
	}
	rep, err := RunScale(t.Context(), ScaleOptions{Bin: buildSMP(t), Work: work, Files: files, SparseBytes: sparse, Log: t.Output()})
	js, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("report:\n%s", js)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Verified {
		t.Error("restore not verified")
	}
	if rep.RestoredAllocatedBytes >= sparse/100 {
		t.Errorf("restored sparse file allocates %s of %s: holes not kept", humanize.IBytes(uint64(rep.RestoredAllocatedBytes)), humanize.IBytes(uint64(sparse)))
	}
}
