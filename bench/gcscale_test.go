package bench

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"smp/keys"
	"smp/repo"
)

// TestBuildGCStore checks the synthetic store's shape on a small scale:
// the chunk count, the records, and that gc then removes about half.
func TestBuildGCStore(t *testing.T) {
	dir := t.TempDir() + "/store"
	rep, err := BuildGCStore(dir, 25000, 5000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 5 || rep.Removed != 3 {
		t.Fatalf("records %d removed %d, want 5 and 3", rep.Records, rep.Removed)
	}
	r, err := openGCStore(dir, rep.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st, err := r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Chunks != 25000 || st.Records != 2 {
		t.Fatalf("store holds %d chunks in %d live records, want 25000 in 2", st.Chunks, st.Records)
	}
}

// openGCStore opens a store BuildGCStore made, with its key file, and
// checks that it is encrypted, as smp init makes stores by default.
func openGCStore(dir, keyFile string) (*repo.Repo, error) {
	src := &keys.Sources{KeyFile: keyFile}
	r, err := repo.OpenWith(dir, repo.OpenOptions{Unlock: src.Unlock})
	if err == nil && !r.Config.Encrypted {
		r.Close()
		return nil, fmt.Errorf("BuildGCStore made a store in clear")
	}
	return r, err
}

// BenchmarkGCScale times an in-process gc of a synthetic store:
// SMP_BENCH_GC_CHUNKS=1000000 go test ./bench -run XXX -bench GCScale -benchtime 1x
// (`smp bench gc` measures the same as a child process, with its peak RSS.)
func BenchmarkGCScale(b *testing.B) {
	chunks := 100000
	if v, err := strconv.Atoi(os.Getenv("SMP_BENCH_GC_CHUNKS")); err == nil && v > 0 {
		chunks = v
	}
	b.StopTimer()
	for range b.N {
		dir := b.TempDir() + "/store"
		rep, err := BuildGCStore(dir, chunks, 10000, nil)
		if err != nil {
			b.Fatal(err)
		}
		r, err := openGCStore(dir, rep.KeyFile)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		gc, err := r.GC(b.Context(), repo.GCOptions{RepackBelow: 0.5})
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		r.Close()
		b.ReportMetric(float64(rep.Chunks), "chunks")
		b.ReportMetric(float64(gc.BlobsRemoved), "removed")
	}
}
