package bench

// The capture and restore benchmarks through a store on S3: the same tree
// and the same in-process pipeline as BenchmarkCaptureNew and
// BenchmarkRestore, with the store's objects in a bucket of a real
// SeaweedFS on loopback (started once per process from the binary
// .ci/seaweedfs.sh caches; skipped without it) and its index in a local
// cache directory. Run them beside the local ones at one size to get the
// ratio:
//
//	SMP_BENCH_SIZE=128MiB go test ./bench -run XXX -bench 'S3|CaptureNew$|Restore$' -benchtime 1x -count 3

import (
	"context"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"

	"smp/cas"
	"smp/internal/seaweedtest"
	"smp/repo"
	"smp/restore"
)

// initS3Store creates an empty store in a new bucket of the shared
// SeaweedFS, opened through the cache directory dir.
func initS3Store(b *testing.B, dir string) {
	srv := seaweedtest.Shared(b)
	os.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	os.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	l := repo.Location{URL: "s3://" + srv.Endpoint + "/" + srv.NewBucket(b) + "/bench", Insecure: true}
	if err := repo.WriteLocation(dir, l); err != nil {
		b.Fatal(err)
	}
	if _, err := repo.InitWith(dir, repo.InitOptions{Params: cas.DefaultChunkerParams()}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkS3CaptureNew is BenchmarkCaptureNew into a store on S3: every
// pack is uploaded by PUT before it is indexed.
func BenchmarkS3CaptureNew(b *testing.B) {
	b.StopTimer()
	t := benchTree(b, false)
	benchBytes(b, t)
	var m meter
	for i := 0; i < b.N; i++ {
		dir := freshDir(b, "s3-new")
		initS3Store(b, dir)
		res := timedCapture(b, &m, "s3-capture-new", dir, captureOptions(t, "A", "alice"))
		checkRecord(b, t, res)
	}
	m.report(b, t.size)
}

var s3StoreA = map[string]string{}

// BenchmarkS3Restore is BenchmarkRestore from a store on S3: every blob is
// read by a ranged GET (or with others of its pack in one).
func BenchmarkS3Restore(b *testing.B) {
	b.StopTimer()
	t := benchTree(b, false)
	dir, ok := s3StoreA[t.root]
	if !ok {
		dir = freshDir(b, "s3-a")
		initS3Store(b, dir)
		checkRecord(b, t, timedCapture(b, nil, "setup", dir, captureOptions(t, "A", "alice")))
		s3StoreA[t.root] = dir
	}
	benchBytes(b, t)
	var m meter
	for i := 0; i < b.N; i++ {
		target := filepath.Join(work(b), "s3-restore-"+strconv.Itoa(int(dirSeq.Add(1))))
		r, err := openStore(dir)
		if err != nil {
			b.Fatal(err)
		}
		rec, err := r.FindRecord("", "A")
		if err != nil {
			b.Fatal(err)
		}
		syscall.Sync()
		var res *restore.Result
		pprof.Do(context.Background(), pprof.Labels("bench", "s3-restore"), func(ctx context.Context) {
			m.begin()
			b.StartTimer()
			res, err = restore.Run(ctx, r, rec.Record, restore.Options{Target: target})
			b.StopTimer()
			m.end()
		})
		r.Close()
		if err != nil {
			b.Fatal(err)
		}
		if res.Errors != 0 || res.Bytes != uint64(t.size) || res.Files != uint64(t.ratio.Files) {
			b.Fatalf("restore: %d errors, %d bytes in %d files; want 0, %d in %d", res.Errors, res.Bytes, res.Files, t.size, t.ratio.Files)
		}
	}
	m.report(b, t.size)
}
