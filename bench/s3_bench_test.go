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
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"smp/cas"
	"smp/cas/manifest"
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
// pack is uploaded by PUT before it is indexed; uploads-1 uploads one pack
// at a time, uploads-3 (the default) three.
func BenchmarkS3CaptureNew(b *testing.B) {
	for _, n := range []int{1, 2, 3} {
		b.Run("uploads-"+strconv.Itoa(n), func(b *testing.B) { benchS3CaptureNew(b, repo.Transfers{Uploads: n}) })
	}
}

func benchS3CaptureNew(b *testing.B, tr repo.Transfers) {
	b.StopTimer()
	t := benchTree(b, false)
	benchBytes(b, t)
	var m meter
	var weed time.Duration // CPU time of the S3 service meanwhile
	for i := 0; i < b.N; i++ {
		dir := freshDir(b, "s3-new")
		initS3Store(b, dir)
		w := weedCPU(b)
		transfers = tr
		res := timedCapture(b, &m, "s3-capture-new", dir, captureOptions(t, "A", "alice"))
		transfers = repo.Transfers{}
		weed += weedCPU(b) - w
		checkRecord(b, t, res)
	}
	m.report(b, t.size)
	b.ReportMetric(weed.Seconds()/float64(b.N), "weed-cpu-s/op")
}

var s3StoreA = map[string]string{}

// BenchmarkS3Restore is BenchmarkRestore from a store on S3: serial reads
// every blob by a ranged GET when a worker needs it (the restore does not
// announce its chunks); read-ahead (what smp restore does) merges
// neighbouring blobs of a pack into one ranged GET, several in flight.
func BenchmarkS3Restore(b *testing.B) {
	b.Run("serial", func(b *testing.B) { benchS3Restore(b, false) })
	b.Run("read-ahead", func(b *testing.B) { benchS3Restore(b, true) })
}

// announced is a restore.Prefetcher over a store that reads ahead, as
// smp restore's reader of a store on S3 is.
type announced struct{ *repo.Repo }

func (a announced) Prefetch(chunks []manifest.Chunk) { a.ReadAhead(chunks) }

func benchS3Restore(b *testing.B, ahead bool) {
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
	var weed time.Duration
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
			w := weedCPU(b)
			m.begin()
			b.StartTimer()
			var st restore.Store = r
			if ahead {
				st = announced{r}
			}
			res, err = restore.Run(ctx, st, rec.Record, restore.Options{Target: target})
			b.StopTimer()
			m.end()
			weed += weedCPU(b) - w
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
	b.ReportMetric(weed.Seconds()/float64(b.N), "weed-cpu-s/op")
}

// weedCPU is the CPU time the shared weed server used so far (0 when it
// is not a process of this test).
func weedCPU(b *testing.B) time.Duration {
	pid := seaweedtest.Shared(b).Pid()
	if pid == 0 {
		return 0
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command's closing parenthesis: utime and stime
	// are the 12th and 13th, in clock ticks (100 per second).
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}
