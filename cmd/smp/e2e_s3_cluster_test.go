package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"smp/internal/seaweedtest"
	"smp/repo"
	s3pkg "smp/storage/s3"
)

// TestE2ES3VolumeServerKilled: a SeaweedFS of separate processes (a
// master, three volume servers, a filer, the S3 gateway) keeps every
// volume in two copies on two servers (replication 001) and grows small
// volumes (16 MiB). One volume server is killed (SIGKILL) while a capture
// runs: the capture completes, and with the server still dead every
// record restores byte-identical, a new capture completes and verify
// --read-data is clean.
//
// Killing a volume server does not make SeaweedFS's gateway answer 5xx:
// the filer writes new chunks to volumes on the live servers and reads
// from the surviving copy, so the capture over the kill needs no retry
// (the report is read and logged; any retry it shows must have ended
// within the bound). The retries are shown with a fault proxy in front of
// the same gateway, the server still dead: a restore and a capture through
// it meet 503s, 429 SlowDowns and answers slower than SMP_S3_TIMEOUT, and
// complete; smp's report counts retries of each class, none given up and
// none started later than s3.DefaultRetryFor after its request's first
// failure. A gateway that answers 503 to every pack read fails the restore
// with an error naming the 503, counted as given up, within that bound.
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
	serveProfile(t, srcB, 42, 224)
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
	t.Logf("capture of 224 MiB with volume server 1 killed after %v took %v", killed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	kr := parseRetries(t, stderr.String())
	t.Logf("retries of the capture over the kill: %+v", kr)
	if kr.gaveUp != 0 || kr.longest > s3pkg.DefaultRetryFor {
		t.Fatalf("capture over the kill: %+v, want no request given up and none retried past %v\n%s", kr, s3pkg.DefaultRetryFor, stderr.String())
	}

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

	retriesThroughProxy(t, c.Endpoint, bucket, dir, b.Record, srcB)
}

// retriesThroughProxy restores record (of src) and captures anew through a
// fault proxy in front of the gateway at endpoint (see
// TestE2ES3VolumeServerKilled), then restores with every pack read
// answered 503.
func retriesThroughProxy(t *testing.T, endpoint, bucket, dir, record, src string) {
	p, err := seaweedtest.NewFaultProxy(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// An attempt waits 1 s for an answer; a delayed one comes after 3 s.
	setChildEnv(t, repo.S3TimeoutEnv+"=1s")
	var n atomic.Int64
	p.SetDecide(func(r *http.Request) seaweedtest.Fault {
		switch i := n.Add(1); {
		case i%7 == 0:
			return seaweedtest.Fault{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable"}
		case i%11 == 0:
			return seaweedtest.Fault{Status: http.StatusTooManyRequests, Code: "SlowDown"}
		case i%13 == 0 && r.Method == http.MethodGet:
			return seaweedtest.Fault{Delay: 3 * time.Second}
		}
		return seaweedtest.Fault{}
	})
	loc := "s3://" + p.Addr + "/" + bucket + "/vk"
	s3 := []string{"--s3-insecure", "--cache", filepath.Join(dir, "cache-proxy")}
	check := func(what string, r result) {
		got := parseRetries(t, r.stderr)
		t.Logf("%s through the fault proxy: %+v (%d requests, %d faults)", what, got, p.Requests.Load(), p.Faults.Load())
		if got.fivexx == 0 || got.throttled == 0 || got.timeout == 0 {
			t.Fatalf("%s: retries %+v, want some of each injected class (5xx, throttled, timeout)\n%s", what, got, r.stderr)
		}
		if got.gaveUp != 0 || got.longest > s3pkg.DefaultRetryFor {
			t.Fatalf("%s: retries %+v, want none given up and none started past %v after its first failure\n%s", what, got, s3pkg.DefaultRetryFor, r.stderr)
		}
	}
	dst := tmpDir(t)
	_, r := restoreJSON(t, exitOK, loc, append([]string{"--record", record, "--root", dst}, s3...)...)
	compareTrees(t, src, dst, compareOpts{})
	check("restore", r)
	srcD := tmpDir(t)
	serveProfile(t, srcD, 44, 40)
	var d captureOut
	r = smpJSON(t, exitOK, &d, append([]string{"capture", "--store", loc, "--computer", "PC04", "--root", srcD, "--json"}, s3...)...)
	check("capture", r)

	// An outage of the pack reads: the restore gives up within the bound.
	p.SetDecide(func(r *http.Request) seaweedtest.Fault {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/packs/") {
			return seaweedtest.Fault{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable"}
		}
		return seaweedtest.Fault{}
	})
	began := time.Now()
	r = smp(t, append([]string{"restore", "--store", loc, "--record", d.Record, "--root", tmpDir(t)}, s3...)...)
	took := time.Since(began)
	got := parseRetries(t, r.stderr)
	t.Logf("restore against failing pack reads: exit %d after %v, %+v", r.code, took.Round(time.Millisecond), got)
	if r.code != exitError || !strings.Contains(r.stderr, "503") || got.gaveUp == 0 || got.fivexx == 0 || got.longest > s3pkg.DefaultRetryFor {
		t.Fatalf("restore against failing pack reads: want exit 1 naming the 503 after bounded retries\n%v", r)
	}
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

// s3Retries is smp's report of the retries of its requests to the object
// store (a line on stderr, absent when nothing was retried).
type s3Retries struct {
	total, gaveUp                              int
	fivexx, throttled, timeout, conn, conflict int
	longest                                    time.Duration
}

var retriesLine = regexp.MustCompile(`the S3 object store needed (\d+) retries \(5xx (\d+), throttled (\d+), timeout (\d+), connection (\d+), conflict (\d+)\), the longest ([0-9.]+)s after a request's first failure; (\d+) requests failed after retries`)

// parseRetries reads smp's retry report from stderr (zero without one).
func parseRetries(t testing.TB, stderr string) s3Retries {
	t.Helper()
	m := retriesLine.FindStringSubmatch(stderr)
	if m == nil {
		if strings.Contains(stderr, "S3 object store needed") {
			t.Fatalf("unreadable retry report:\n%s", stderr)
		}
		return s3Retries{}
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	secs, _ := strconv.ParseFloat(m[7], 64)
	return s3Retries{total: n(1), fivexx: n(2), throttled: n(3), timeout: n(4), conn: n(5), conflict: n(6),
		longest: time.Duration(secs * float64(time.Second)), gaveUp: n(8)}
}
