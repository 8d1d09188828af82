package main

import (
	"context"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"smp/internal/seaweedtest"
)

// s3Env is the environment of an smp process using the shared SeaweedFS:
// its identity's keys, as a user gives them.
func s3Env(srv *seaweedtest.Server) []string {
	return []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey, "SMP_CACHE="}
}

// TestE2ES3Store runs the real binary against a real SeaweedFS: init a
// store in a bucket, capture, list, restore byte-identical, verify with
// the data; then a second smp with an empty cache directory (another
// machine) rebuilds its index from the bucket alone and restores the same
// record; a capture through the second cache is seen by the first after
// its refresh; smp index rebuild works from the bucket; what is in the
// bucket is config, packs and nothing of the local cache.
func TestE2ES3Store(t *testing.T) {
	t.Parallel()
	srv := seaweedtest.Shared(t)
	setChildEnv(t, "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey) // for every smp the test starts
	dir := tmpDir(t)
	bucket := srv.NewBucket(t)
	loc := "s3://" + srv.Endpoint + "/" + bucket + "/stores/e2e"
	cacheA, cacheB := filepath.Join(dir, "cache-a"), filepath.Join(dir, "cache-b")
	env := s3Env(srv)
	run := func(want int, args ...string) result {
		t.Helper()
		r := smpWith(t, runOpts{env: env}, args...)
		if r.code != want {
			t.Fatalf("want exit %d:\n%v", want, r)
		}
		return r
	}
	root := filepath.Join(dir, "root")
	writeFile(t, filepath.Join(root, "home/alice/a.bin"), rnd(1, 3<<20), 0o644)
	writeFile(t, filepath.Join(root, "home/alice/src.go"), goSource(t, 300<<10), 0o644)
	writeFile(t, filepath.Join(root, "home/alice/Docs/note.txt"), []byte("hello from s3\n"), 0o600)
	if os.Geteuid() == 0 {
		chownTree(t, filepath.Join(root, "home/alice"), 1000, 1000)
	}
	stampTimes(t, root)

	// Plain http to a non-loopback endpoint is refused before any request.
	r := run(exitUsage, "init", "--store", "s3://192.0.2.1:8333/bkt/x", "--s3-insecure", "--cache", filepath.Join(dir, "nope"))
	if !strings.Contains(r.stderr, "loopback") {
		t.Fatalf("--s3-insecure to a remote host: %v", r)
	}
	run(exitOK, "init", "--store", loc, "--s3-insecure", "--cache", cacheA)
	r = run(exitError, "init", "--store", loc, "--s3-insecure", "--cache", filepath.Join(dir, "other"))
	if !strings.Contains(r.stderr, "already holds an smp store") {
		t.Fatalf("second init: %v", r)
	}
	var c captureOut
	smpJSON(t, 0, &c, "capture", "--store", loc, "--s3-insecure", "--cache", cacheA, "--computer", "pc-1", "--root", root, "--user", "alice", "--json")
	r = run(exitUsage, "capture", "--store", loc, "--s3-insecure", "--cache", cacheA, "--computer", "pc-1", "--root", root, "--user", "alice", "--hardlink", "auto")
	if !strings.Contains(r.stderr, "S3") {
		t.Fatalf("--hardlink on S3: %v", r)
	}
	target := filepath.Join(dir, "restored-a")
	run(exitOK, "restore", "--store", loc, "--s3-insecure", "--cache", cacheA, "--record", c.Record, "--root", target)
	compareTrees(t, filepath.Join(root, "home/alice"), filepath.Join(target, "home/alice"), compareOpts{owners: true})
	run(exitOK, "verify", "--store", loc, "--s3-insecure", "--cache", cacheA, "--read-data")
	// gc deletes in two phases there (TestE2ES3GCRace): with the
	// default grace it runs and frees nothing of a live record.
	run(exitOK, "gc", "--store", loc, "--s3-insecure", "--cache", cacheA)
	run(exitOK, "gc", "--store", loc, "--s3-insecure", "--cache", cacheA, "--dry-run")

	// Another machine: an empty cache, built from the bucket alone.
	r = run(exitOK, "records", "--store", loc, "--s3-insecure", "--cache", cacheB)
	if !strings.Contains(r.stdout, c.Record[:8]) {
		t.Fatalf("records through a new cache do not list %s:\n%v", c.Record, r)
	}
	targetB := filepath.Join(dir, "restored-b")
	run(exitOK, "restore", "--store", loc, "--s3-insecure", "--cache", cacheB, "--record", c.Record, "--root", targetB)
	compareTrees(t, filepath.Join(root, "home/alice"), filepath.Join(targetB, "home/alice"), compareOpts{owners: true})

	// A capture through B is seen through A's existing cache (refresh).
	writeFile(t, filepath.Join(root, "home/alice/Docs/new.txt"), []byte("written on B\n"), 0o600)
	if os.Geteuid() == 0 {
		chownTree(t, filepath.Join(root, "home/alice"), 1000, 1000)
	}
	var c2 captureOut
	smpJSON(t, 0, &c2, "capture", "--store", loc, "--s3-insecure", "--cache", cacheB, "--computer", "pc-2", "--root", root, "--user", "alice", "--json")
	r = run(exitOK, "records", "--store", loc, "--s3-insecure", "--cache", cacheA)
	if !strings.Contains(r.stdout, c2.Record[:8]) {
		t.Fatalf("A's cache does not list B's record %s after a refresh:\n%v", c2.Record, r)
	}
	run(exitOK, "rm", "--store", loc, "--s3-insecure", "--cache", cacheA, "--record", c.Record)
	r = run(exitOK, "records", "--store", loc, "--s3-insecure", "--cache", cacheB)
	if strings.Contains(r.stdout, c.Record[:8]) {
		t.Fatalf("B still lists the record A removed (tombstone not applied):\n%v", r)
	}

	// smp index rebuild from the bucket.
	if err := os.RemoveAll(filepath.Join(cacheA, "index")); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Packs        int `json:"packs"`
		FromSegments int `json:"packs_from_segments"`
		Records      int `json:"records"`
		Removed      int `json:"removed_records"`
	}
	smpJSON(t, 0, &rep, "index", "rebuild", "--store", loc, "--s3-insecure", "--cache", cacheA, "--json")
	if rep.Records != 1 || rep.Removed != 1 {
		t.Fatalf("rebuild from the bucket: %+v, want 1 record live and 1 removed", rep)
	}
	// Every writer listed its packs in index segments: the rebuild read
	// no trailer.
	if rep.Packs == 0 || rep.FromSegments != rep.Packs {
		t.Fatalf("rebuild from the bucket: %+v, want every pack from an index segment", rep)
	}
	targetC := filepath.Join(dir, "restored-c")
	run(exitOK, "restore", "--store", loc, "--s3-insecure", "--cache", cacheA, "--record", c2.Record, "--root", targetC)
	compareTrees(t, filepath.Join(root, "home/alice"), filepath.Join(targetC, "home/alice"), compareOpts{owners: true})

	// The bucket holds the store's objects under the prefix, and no local
	// part (index, lock, location file).
	cl, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	var packs, segments int
	for o := range cl.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		name, ok := strings.CutPrefix(o.Key, "stores/e2e/")
		switch {
		case !ok:
			t.Errorf("object outside the prefix: %s", o.Key)
		case strings.HasPrefix(name, "packs/") && strings.HasSuffix(name, ".pack"):
			packs++
		case strings.HasPrefix(name, "segments/") && strings.HasSuffix(name, ".seg"):
			segments++
		case name == "config.json", name == "keys.json": // keys.json: the key slots (sealed)
		default:
			t.Errorf("unexpected object in the bucket: %s", o.Key)
		}
	}
	if packs == 0 || segments == 0 {
		t.Errorf("%d packs and %d index segments in the bucket", packs, segments)
	}

	// A damaged index segment costs only trailer reads: the rebuild
	// names it, indexes every pack and succeeds.
	segKey := s3Keys(t, cl, bucket, "stores/e2e/segments/")[0]
	if _, err := cl.PutObject(context.Background(), bucket, segKey, strings.NewReader("SMPSEGMT damaged"), 16, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	cacheD := filepath.Join(dir, "cache-d")
	r = run(exitOK, "index", "rebuild", "--store", loc, "--s3-insecure", "--cache", cacheD)
	if !strings.Contains(r.stdout, "damaged index segment") || !strings.Contains(r.stdout, "1 records live") {
		t.Fatalf("rebuild with a damaged segment:\n%v", r)
	}
	if r = run(exitOK, "records", "--store", loc, "--s3-insecure", "--cache", cacheD); !strings.Contains(r.stdout, c2.Record[:8]) {
		t.Fatalf("records after a rebuild with a damaged segment:\n%v", r)
	}
}

// TestE2ES3TwoServers: two smp serve share one store on S3, each with its
// own cache directory (the access file is shared in the bucket). A record
// captured through A is listed through B within the refresh bound
// (store.S3RefreshEvery, 2 s, plus slack for a loaded machine) and
// restores byte-identical through B; a second computer capturing the same
// files through B sends only what A did not store.
func TestE2ES3TwoServers(t *testing.T) {
	t.Parallel()
	srv := seaweedtest.Shared(t)
	setChildEnv(t, "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey, "SMP_CACHE=") // for every smp the test starts
	dir := tmpDir(t)
	loc := "s3://" + srv.Endpoint + "/" + srv.NewBucket(t) + "/two"
	cacheA, cacheB := filepath.Join(dir, "cache-a"), filepath.Join(dir, "cache-b")
	mustSMP(t, "init", "--store", loc, "--s3-insecure", "--cache", cacheA)
	token := func(cache, computer string) string {
		t.Helper()
		r := mustSMP(t, "token", "create", "--store", loc, "--s3-insecure", "--cache", cache, "--computer", computer)
		return strings.TrimSpace(r.stdout)
	}
	tokA1, tokB1, tokB2 := token(cacheA, "PC01"), token(cacheB, "PC01"), token(cacheB, "PC02")
	a := startServer(t, loc, "--insecure", "--s3-insecure", "--cache", cacheA)
	b := startServer(t, loc, "--insecure", "--s3-insecure", "--cache", cacheB)

	src1, src2 := tmpDir(t), tmpDir(t)
	serveProfile(t, src1, 11, 4)
	serveProfile(t, src2, 11, 4)
	writeFile(t, filepath.Join(src2, "home", "alice", "mine"), rnd(98, 1<<20), 0o644)
	first := remoteCapture(t, exitOK, a.url, tokA1, "PC01", "--root", src1)
	committed := time.Now()
	var seenAfter time.Duration
	for {
		var recs recordsOut
		smpJSON(t, exitOK, &recs, "records", "--store", b.url, "--token", tokB1, "--json")
		if slices.Contains(recs.ids(), first.Record) {
			seenAfter = time.Since(committed)
			break
		}
		if time.Since(committed) > 20*time.Second {
			t.Fatalf("B does not list A's record %s after 20 s", first.Record)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("A's record listed on B after %v", seenAfter)
	if seenAfter > 8*time.Second {
		t.Errorf("A's record took %v to be listed on B; the bound is 2 s", seenAfter)
	}
	// B took A's packs from A's (sealed) index segments, reading no trailer.
	// The refresh's log line can reach the test after the listing that
	// showed its record: wait for it.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if packs, _ := refreshTotals(b); packs > 0 {
			break
		}
	}
	if packs, fromSegments := refreshTotals(b); packs == 0 || fromSegments != packs {
		t.Errorf("B indexed %d packs, %d of them from index segments: want all from segments\n%s", packs, fromSegments, b.logText())
	}
	dst := tmpDir(t)
	restoreJSON(t, exitOK, b.url, "--token", tokB1, "--computer", "PC01", "--root", dst)
	compareTrees(t, src1, dst, compareOpts{})

	second := remoteCapture(t, exitOK, b.url, tokB2, "PC02", "--root", src2)
	if second.Uploaded > 1<<20+64<<10 || second.Held < 4 {
		t.Fatalf("PC02 through B sent %d bytes (held %d chunks); want about its own 1 MiB", second.Uploaded, second.Held)
	}
}

// refreshedPacks matches the log line of smp serve's refresh.
var refreshedPacks = regexp.MustCompile(`refreshed the cache from the bucket.* packs=(\d+) from_segments=(\d+)`)

// refreshTotals sums what a server's refreshes logged: the packs it
// indexed, and of them those an index segment listed.
func refreshTotals(s *testServer) (packs, fromSegments int) {
	for _, m := range refreshedPacks.FindAllStringSubmatch(s.logText(), -1) {
		p, _ := strconv.Atoi(m[1])
		f, _ := strconv.Atoi(m[2])
		packs, fromSegments = packs+p, fromSegments+f
	}
	return packs, fromSegments
}

// waitIndexed waits until server s has logged refreshes that indexed n
// packs in all.
func waitIndexed(t *testing.T, s *testServer, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if got, _ := refreshTotals(s); got >= n {
			return
		}
		if time.Now().After(deadline) {
			got, _ := refreshTotals(s)
			t.Fatalf("the server indexed %d of %d packs within %v:\n%s", got, n, timeout, s.logText())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// s3Keys lists the keys under prefix in bucket.
func s3Keys(t *testing.T, cl *minio.Client, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	for o := range cl.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

// TestE2ES3FaultProxy: the real binary reaches the real SeaweedFS through
// a fault-injecting proxy. With 5% of requests answered 503 SlowDown,
// some delayed and some GET bodies cut halfway, a capture, a restore
// (byte-identical) and verify --read-data complete. With every PUT then
// failing, a capture fails with one clear error and commits nothing: the
// records are as before and verify --read-data is clean.
func TestE2ES3FaultProxy(t *testing.T) {
	t.Parallel()
	srv := seaweedtest.Shared(t)
	setChildEnv(t, "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey) // for every smp the test starts
	p, err := seaweedtest.NewFaultProxy(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dir := tmpDir(t)
	loc := "s3://" + p.Addr + "/" + srv.NewBucket(t) + "/faults"
	s3 := []string{"--store", loc, "--s3-insecure", "--cache", filepath.Join(dir, "cache")}
	mustSMP(t, append([]string{"init"}, s3...)...)

	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	p.SetDecide(func(r *http.Request) seaweedtest.Fault {
		mu.Lock()
		x := rng.Float64()
		mu.Unlock()
		switch {
		case x < 0.05:
			return seaweedtest.Fault{Status: http.StatusServiceUnavailable, Code: "SlowDown"}
		case x < 0.10:
			return seaweedtest.Fault{Delay: 200 * time.Millisecond}
		case x < 0.13 && r.Method == http.MethodGet:
			return seaweedtest.Fault{Reset: true}
		}
		return seaweedtest.Fault{}
	})
	src := tmpDir(t)
	serveProfile(t, src, 21, 6)
	var c captureOut
	smpJSON(t, exitOK, &c, append([]string{"capture", "--computer", "PC01", "--root", src, "--json"}, s3...)...)
	dst := tmpDir(t)
	restoreJSON(t, exitOK, loc, append([]string{"--record", c.Record, "--root", dst}, s3[2:]...)...)
	compareTrees(t, src, dst, compareOpts{})
	mustSMP(t, append([]string{"verify", "--read-data"}, s3...)...)
	if p.Faults.Load() == 0 {
		t.Fatal("no fault injected")
	}
	t.Logf("%d requests, %d faults", p.Requests.Load(), p.Faults.Load())

	// Every PUT fails: the capture fails and commits nothing.
	p.SetDecide(func(r *http.Request) seaweedtest.Fault {
		if r.Method == http.MethodPut {
			return seaweedtest.Fault{Status: http.StatusServiceUnavailable}
		}
		return seaweedtest.Fault{}
	})
	src2 := tmpDir(t)
	serveProfile(t, src2, 77, 2)
	r := smp(t, append([]string{"capture", "--computer", "PC02", "--root", src2}, s3...)...)
	if r.code != exitError || !strings.Contains(r.stderr, "503") {
		t.Fatalf("capture with every PUT failing: want exit 1 and the 503 named\n%v", r)
	}
	p.SetDecide(nil)
	var recs recordsOut
	smpJSON(t, exitOK, &recs, append([]string{"records", "--json"}, s3...)...)
	if got := recs.ids(); len(got) != 1 || got[0] != c.Record {
		t.Fatalf("records after a failed capture: %v, want only %s", got, c.Record)
	}
	mustSMP(t, append([]string{"verify", "--read-data"}, s3...)...)
}

// TestE2ES3KillServer: two smp serve share a store on S3; the one taking a
// capture is killed (SIGKILL) once it has stored a pack. The other goes on
// serving; the capture run again through it sends only what the killed
// server had not stored (its packs are whole objects in the bucket, found
// by the survivor's refresh), restores byte-identical, and verify
// --read-data of the bucket is clean.
func TestE2ES3KillServer(t *testing.T) {
	t.Parallel()
	srv := seaweedtest.Shared(t)
	setChildEnv(t, "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey, "SMP_CACHE=") // for every smp the test starts
	dir := tmpDir(t)
	bucket := srv.NewBucket(t)
	loc := "s3://" + srv.Endpoint + "/" + bucket + "/kill"
	cacheA, cacheB := filepath.Join(dir, "cache-a"), filepath.Join(dir, "cache-b")
	mustSMP(t, "init", "--store", loc, "--s3-insecure", "--cache", cacheA)
	token := func(cache string) string {
		r := mustSMP(t, "token", "create", "--store", loc, "--s3-insecure", "--cache", cache, "--computer", "PC01")
		return strings.TrimSpace(r.stdout)
	}
	tokA, tokB := token(cacheA), token(cacheB)
	a := launchServer(t, loc, "--insecure", "--s3-insecure", "--cache", cacheA)
	a.stopped = true // killed below
	defer a.cmd.Process.Kill()
	b := startServer(t, loc, "--insecure", "--s3-insecure", "--cache", cacheB)

	src := tmpDir(t)
	const mib = 48
	serveProfile(t, src, 31, mib)
	client := exec.Command(smpPath(t), "capture", "--store", a.url, "--token", tokA, "--computer", "PC01", "--root", src, "--json")
	client.Env = childEnv(t)
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	defer client.Process.Kill()
	cl, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for packs := 0; packs == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("server A stored no pack within 2 minutes:\n%s", a.logText())
		}
		for o := range cl.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: "kill/packs/", Recursive: true}) {
			if o.Err == nil && strings.HasSuffix(o.Key, ".pack") {
				packs++
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.cmd.Wait()
	client.Process.Kill()
	client.Wait()
	if strings.Contains(a.logText(), "/commit") {
		t.Skip("the capture committed before server A could be killed; machine too fast for this test")
	}
	var stored int64 // what A stored: its data is incompressible
	for o := range cl.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: "kill/packs/", Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		stored += o.Size
	}
	// B's refresh finds A's packs: those A listed in a segment at once,
	// the others (stored after A's last flush) from their trailers once
	// they are older than repo.SegmentGrace.
	waitIndexed(t, b, len(s3Keys(t, cl, bucket, "kill/packs/")), time.Minute)
	out := remoteCapture(t, exitOK, b.url, tokB, "PC01", "--root", src)
	total := int64(mib<<20) + 64<<10
	if out.Held == 0 || out.Uploaded > total-stored+256<<10 {
		t.Fatalf("re-run through B sent %d bytes of about %d, with %d stored by A; B held %d chunks: want only what A had not stored", out.Uploaded, total, stored, out.Held)
	}
	t.Logf("A stored %d KiB before it was killed; the re-run through B sent %d KiB of %d KiB, %d chunks already held", stored>>10, out.Uploaded>>10, total>>10, out.Held)
	dst := tmpDir(t)
	restoreJSON(t, exitOK, b.url, "--token", tokB, "--computer", "PC01", "--root", dst)
	compareTrees(t, src, dst, compareOpts{})
	mustSMP(t, "verify", "--store", loc, "--s3-insecure", "--cache", filepath.Join(dir, "cache-c"), "--read-data")
}
