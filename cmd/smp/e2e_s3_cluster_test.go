package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"smp/internal/seaweedtest"
)

// TestE2ES3VolumeServerKilled: a SeaweedFS of separate processes (a
// master, three volume servers, a filer, the S3 gateway) keeps every
// volume in two copies on two servers (replication 001) and grows small
// volumes (16 MiB). One volume server is killed (SIGKILL) while a capture
// runs: the capture completes (its requests that meet the dead server are
// retried within the storage's retry bound), and with the server still
// dead every record restores byte-identical, a new capture completes and
// verify --read-data is clean.
func TestE2ES3VolumeServerKilled(t *testing.T) {
	t.Parallel()
	bin, err := seaweedtest.Binary()
	if err != nil {
		if seaweedtest.Required() {
			t.Fatalf("SMP_S3_REQUIRED is set: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	dir := tmpDir(t)
	wd, err := os.MkdirTemp("", "seaweedfs-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	c, err := seaweedtest.StartCluster(bin, wd, seaweedtest.ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	setChildEnv(t, "AWS_ACCESS_KEY_ID="+c.AccessKey, "AWS_SECRET_ACCESS_KEY="+c.SecretKey, "SMP_CACHE=") // for every smp the test starts
	bucket := c.NewBucket(t)
	loc := "s3://" + c.Endpoint + "/" + bucket + "/vk"
	// Two uploads at once and 16 MiB of read-ahead: the flags reach the
	// store (the defaults are 3 and 64 MiB).
	s3 := []string{"--store", loc, "--s3-insecure", "--cache", filepath.Join(dir, "cache"), "--s3-uploads", "2", "--s3-read-ahead", "16MiB"}
	mustSMP(t, append([]string{"init"}, s3...)...)

	srcA, srcB, srcC := tmpDir(t), tmpDir(t), tmpDir(t)
	serveProfile(t, srcA, 41, 40)
	serveProfile(t, srcB, 42, 96)
	serveProfile(t, srcC, 43, 8)
	var a captureOut
	smpJSON(t, exitOK, &a, append([]string{"capture", "--computer", "PC01", "--root", srcA, "--json"}, s3...)...)

	cl, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	packs := func() int {
		n := 0
		for o := range cl.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: "vk/packs/", Recursive: true}) {
			if o.Err == nil && strings.HasSuffix(o.Key, ".pack") {
				n++
			}
		}
		return n
	}
	before := packs()

	// B's capture runs while volume server 1 dies: killed once B has
	// stored its first pack.
	cmd := exec.Command(smpPath(t), append([]string{"capture", "--computer", "PC02", "--root", srcB, "--json"}, s3...)...)
	cmd.Env = childEnv(t)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for packs() == before {
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("capture stored no pack in 2 minutes\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.KillVolume(1); err != nil {
		t.Fatal(err)
	}
	killed := time.Since(start)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("capture while a volume server died (killed after %v): %v\n%s", killed, err, stderr.String())
	}
	var b captureOut
	if err := json.Unmarshal(stdout.Bytes(), &b); err != nil {
		t.Fatalf("capture output: %v\n%s", err, stdout.String())
	}
	if b.Record == "" || killed >= time.Since(start) {
		t.Fatalf("capture output %q", stdout.String())
	}
	t.Logf("capture of 96 MiB with volume server 1 killed after %v took %v", killed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// With the server still dead: restore both, capture anew, verify.
	for _, r := range []struct{ rec, src string }{{a.Record, srcA}, {b.Record, srcB}} {
		dst := tmpDir(t)
		began := time.Now()
		restoreJSON(t, exitOK, loc, append([]string{"--record", r.rec, "--root", dst}, s3[2:]...)...)
		t.Logf("restore of %s with a volume server dead took %v", r.rec[:8], time.Since(began).Round(time.Millisecond))
		compareTrees(t, r.src, dst, compareOpts{})
	}
	smpJSON(t, exitOK, &captureOut{}, append([]string{"capture", "--computer", "PC03", "--root", srcC, "--json"}, s3...)...)
	mustSMP(t, append([]string{"verify", "--read-data"}, s3...)...)
}

// TestE2ES3TransferFlags: --s3-read-ahead takes a size and says what it
// wants otherwise, before any request.
func TestE2ES3TransferFlags(t *testing.T) {
	t.Parallel()
	r := smp(t, "records", "--store", "s3://127.0.0.1:1/bucket/p", "--s3-insecure", "--s3-read-ahead", "lots")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--s3-read-ahead") || !strings.Contains(r.stderr, "64MiB") {
		t.Fatalf("--s3-read-ahead lots: want a usage error naming the flag\n%v", r)
	}
}

// TestE2ES3RestoreReadsAhead: smp restore from a store on S3 reads the
// chunks of many small files by a few ranged GETs of neighbouring blobs,
// not one GET each (counted by a proxy that injects nothing), and the
// tree restores byte-identical.
func TestE2ES3RestoreReadsAhead(t *testing.T) {
	t.Parallel()
	srv := seaweedtest.Shared(t)
	setChildEnv(t, "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey, "SMP_CACHE=") // for every smp the test starts
	p, err := seaweedtest.NewFaultProxy(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dir := tmpDir(t)
	loc := "s3://" + p.Addr + "/" + srv.NewBucket(t) + "/ahead"
	s3 := []string{"--store", loc, "--s3-insecure", "--cache", filepath.Join(dir, "cache")}
	mustSMP(t, append([]string{"init"}, s3...)...)
	src := tmpDir(t)
	const files = 400
	for i := range files {
		writeFile(t, filepath.Join(src, "home/alice/docs", "f"+strconv.Itoa(i)), rnd(uint64(900+i), 6<<10), 0o644)
	}
	var c captureOut
	smpJSON(t, exitOK, &c, append([]string{"capture", "--computer", "PC01", "--root", src, "--json"}, s3...)...)
	var gets atomic.Int64
	p.SetDecide(func(r *http.Request) seaweedtest.Fault {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/packs/") {
			gets.Add(1)
		}
		return seaweedtest.Fault{}
	})
	dst := tmpDir(t)
	restoreJSON(t, exitOK, loc, append([]string{"--record", c.Record, "--root", dst}, s3[2:]...)...)
	compareTrees(t, src, dst, compareOpts{})
	if n := gets.Load(); n == 0 || n > files/20 {
		t.Fatalf("restore of %d one-chunk files made %d GETs of packs, want a few ranged GETs of neighbours", files, n)
	}
	t.Logf("%d files restored with %d GETs of packs", files, gets.Load())
}
