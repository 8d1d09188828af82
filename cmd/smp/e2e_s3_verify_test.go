package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"smp/internal/seaweedtest"
)

// TestE2ES3VerifyReadsByPack: smp verify --read-data on a store on S3
// (SeaweedFS) reads each pack's chunks by a few ranged GETs of
// neighbouring blobs, not one GET per chunk (counted by a proxy that
// injects nothing): 600 small files and 6 MiB of larger ones take no more
// GETs of packs than one per pack plus one per 8 MiB read (and the trees
// and records). A byte flipped inside one pack in the bucket is still
// found: verify names the damaged chunk and the file it breaks.
func TestE2ES3VerifyReadsByPack(t *testing.T) {
	srv := seaweedtest.Shared(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("SMP_CACHE", "")
	p, err := seaweedtest.NewFaultProxy(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dir := tmpDir(t)
	bucket := srv.NewBucket(t)
	loc := "s3://" + p.Addr + "/" + bucket + "/vr"
	s3 := []string{"--store", loc, "--s3-insecure", "--cache", filepath.Join(dir, "cache")}
	mustSMP(t, append([]string{"init", "--no-encrypt"}, s3...)...)
	src := tmpDir(t)
	const files = 600
	for i := range files {
		writeFile(t, filepath.Join(src, "home/alice/docs", "f"+strconv.Itoa(i)), rnd(uint64(700+i), 5<<10), 0o644)
	}
	for i := range 3 {
		writeFile(t, filepath.Join(src, "home/alice/big", "b"+strconv.Itoa(i)), rnd(uint64(800+i), 2<<20), 0o644)
	}
	mustSMP(t, append([]string{"capture", "--computer", "PC01", "--root", src}, s3...)...)

	cl, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	var packs []minio.ObjectInfo
	var packBytes int64
	for o := range cl.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: "vr/packs/", Recursive: true}) {
		if o.Err == nil && strings.HasSuffix(o.Key, ".pack") {
			packs = append(packs, o)
			packBytes += o.Size
		}
	}
	if len(packs) == 0 {
		t.Fatal("no pack in the bucket")
	}
	var gets atomic.Int64
	p.SetDecide(func(r *http.Request) seaweedtest.Fault {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/packs/") {
			gets.Add(1)
		}
		return seaweedtest.Fault{}
	})
	var v struct {
		OK     bool `json:"ok"`
		Report struct {
			Chunks    int    `json:"chunks"`
			BytesRead uint64 `json:"bytes_read"`
		} `json:"report"`
	}
	smpJSON(t, exitOK, &v, append([]string{"verify", "--read-data", "--json"}, s3...)...)
	// One GET per pack and per 8 MiB span, and one per tree and record
	// blob (read as the walk needs them), a few dozen here.
	limit := int64(len(packs)) + packBytes/(8<<20) + 40
	t.Logf("verify --read-data: %d chunks in %d packs (%d bytes) read by %d GETs of packs", v.Report.Chunks, len(packs), packBytes, gets.Load())
	if !v.OK || v.Report.Chunks < files || gets.Load() > limit {
		t.Fatalf("verify --read-data: %+v with %d GETs of packs, want every chunk read by at most %d", v, gets.Load(), limit)
	}

	// Flip a byte in the middle of the largest pack (inside a chunk's
	// data), as a disk of the object store might.
	big := packs[0]
	for _, o := range packs {
		if o.Size > big.Size {
			big = o
		}
	}
	obj, err := cl.GetObject(context.Background(), bucket, big.Key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(obj); err != nil {
		t.Fatal(err)
	}
	obj.Close()
	data := b.Bytes()
	data[len(data)/3] ^= 0x40
	if _, err := cl.PutObject(context.Background(), bucket, big.Key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	r := smp(t, append([]string{"verify", "--read-data"}, s3...)...)
	if r.code != exitPartial || !strings.Contains(r.stdout, "DAMAGED data") || !strings.Contains(r.stdout, "home/alice/") {
		t.Fatalf("verify --read-data over a flipped byte: want exit 3 naming the damaged chunk and its file\n%v", r)
	}
}

// TestE2ES3ServeRetryMetrics: smp serve on a store on S3 exports its
// retries on /metrics: with a fault proxy answering every third request
// 503, the server's own requests (its refresh every 2 s) are retried
// through, and smp_s3_retries_total{class="5xx"} counts them while no
// request is given up.
func TestE2ES3ServeRetryMetrics(t *testing.T) {
	srv := seaweedtest.Shared(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("SMP_CACHE", "")
	p, err := seaweedtest.NewFaultProxy(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dir := tmpDir(t)
	loc := "s3://" + p.Addr + "/" + srv.NewBucket(t) + "/sm"
	cache := filepath.Join(dir, "cache")
	mustSMP(t, "init", "--store", loc, "--s3-insecure", "--cache", cache, "--no-encrypt")
	var n atomic.Int64
	p.SetDecide(func(*http.Request) seaweedtest.Fault {
		if n.Add(1)%3 == 0 {
			return seaweedtest.Fault{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable"}
		}
		return seaweedtest.Fault{}
	})
	s := startServer(t, loc, "--insecure", "--s3-insecure", "--cache", cache, "--metrics-listen", "127.0.0.1:0")
	m := regexp.MustCompile(`metrics on (http://\S+)`).FindStringSubmatch(s.stdout())
	if m == nil {
		t.Fatal("no metrics address printed")
	}
	retried := regexp.MustCompile(`(?m)^smp_s3_retries_total\{class="5xx"\} (\d+)$`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(m[1])
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := retried.FindSubmatch(body)
		if got != nil && string(got[1]) != "0" {
			if !strings.Contains(string(body), `smp_s3_failed_requests_total{class="5xx"} 0`) || !strings.Contains(string(body), "smp_s3_longest_retry_seconds") {
				t.Fatalf("metrics with retries:\n%s", body)
			}
			t.Logf("%s after %d requests, %d answered 503", got[0], p.Requests.Load(), p.Faults.Load())
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 5xx retry counted in 30 s (%d requests, %d faults):\n%s", p.Requests.Load(), p.Faults.Load(), body)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
