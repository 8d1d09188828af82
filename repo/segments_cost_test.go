package repo_test

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"smp/cas"
	"smp/repo"
	"smp/storage"
)

// requestCounter counts the reads a storage answers (every Get, Stat and
// List is one request to an object store).
type requestCounter struct {
	storage.Storage
	n *atomic.Int64
}

func (c requestCounter) Get(ctx context.Context, name string, offset, length int64, buf []byte) ([]byte, error) {
	c.n.Add(1)
	return c.Storage.Get(ctx, name, offset, length, buf)
}

func (c requestCounter) Stat(ctx context.Context, name string) (storage.Info, error) {
	c.n.Add(1)
	return c.Storage.Stat(ctx, name)
}

func (c requestCounter) List(ctx context.Context, prefix, cursor string, limit int) ([]storage.Info, string, error) {
	c.n.Add(1)
	return c.Storage.List(ctx, prefix, cursor, limit)
}

// TestSegmentsRefreshCost measures an index rebuild of a store on a real
// SeaweedFS (loopback) holding SMP_SEGMENT_COST_PACKS packs of 1 MiB
// (default 64), from the index segments and then, the segments deleted,
// from the trailers: requests and time (docs/BENCHMARKS.md). It runs only
// with SMP_SEGMENT_COST=1.
func TestSegmentsRefreshCost(t *testing.T) {
	if os.Getenv("SMP_SEGMENT_COST") == "" {
		t.Skip("a measurement: set SMP_SEGMENT_COST=1")
	}
	n := 64
	if v := os.Getenv("SMP_SEGMENT_COST_PACKS"); v != "" {
		if err := json.Unmarshal([]byte(v), &n); err != nil {
			t.Fatal(err)
		}
	}
	srv := startS3(t)
	cl, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	bucket := srv.NewBucket(t)
	l := repo.Location{URL: "s3://" + srv.Endpoint + "/" + bucket + "/cost", Insecure: true}
	var requests atomic.Int64
	defer repo.SetStorage(func(st storage.Storage) storage.Storage { return requestCounter{st, &requests} })()
	cacheA := cacheOf(t, l)
	if _, err := repo.InitWith(cacheA, repo.InitOptions{Params: cas.DefaultChunkerParams()}); err != nil {
		t.Fatal(err)
	}
	// 1 MiB packs: one per blob below.
	ctx := context.Background()
	obj, err := cl.GetObject(ctx, bucket, "cost/config.json", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["pack_size"] = 1 << 20
	b, _ = json.Marshal(m)
	if _, err := cl.PutObject(ctx, bucket, "cost/config.json", strings.NewReader(string(b)), int64(len(b)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	a := openStore(t, cacheA)
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	blob := make([]byte, 1<<20)
	for range n {
		for i := range blob {
			blob[i] = byte(rng.Uint32())
		}
		if _, _, err := a.PutBlob(cas.BlobData, blob); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	closeStore(t, a)
	packs := len(s3Keys(t, cl, bucket, "cost/packs/"))
	segs := s3Keys(t, cl, bucket, "cost/segments/")
	rebuild := func(what string) *repo.RebuildReport {
		requests.Store(0)
		start := time.Now()
		rep, err := repo.RebuildIndex(cacheOf(t, l))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("rebuild of %d packs %s: %d requests, %v (%d packs from segments)", packs, what, requests.Load(), time.Since(start).Round(time.Millisecond), rep.FromSegments)
		return rep
	}
	if rep := rebuild("from " + itoa(len(segs)) + " segments"); rep.FromSegments != packs {
		t.Fatalf("%+v", rep)
	}
	fromSegments := requests.Load()
	for _, k := range segs {
		if err := cl.RemoveObject(ctx, bucket, k, minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if rep := rebuild("from trailers"); rep.FromSegments != 0 || rep.Packs != packs {
		t.Fatalf("%+v", rep)
	}
	if fromTrailers := requests.Load(); fromSegments*4 > fromTrailers {
		t.Fatalf("from segments %d requests, from trailers %d", fromSegments, fromTrailers)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
