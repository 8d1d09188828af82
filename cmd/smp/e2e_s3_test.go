package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	srv := seaweedtest.Shared(t)
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
	r := run(exitUsage, "init", "--store", "s3://192.0.2.1:8333/b/x", "--s3-insecure", "--cache", filepath.Join(dir, "nope"))
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
	// gc would need the two-phase deletion of several writers: refused,
	// the dry run works.
	if r := run(exitError, "gc", "--store", loc, "--s3-insecure", "--cache", cacheA); !strings.Contains(r.stderr, "not supported yet") {
		t.Fatalf("gc on S3: %v", r)
	}
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
		Records int `json:"records"`
		Removed int `json:"removed_records"`
	}
	smpJSON(t, 0, &rep, "index", "rebuild", "--store", loc, "--s3-insecure", "--cache", cacheA, "--json")
	if rep.Records != 1 || rep.Removed != 1 {
		t.Fatalf("rebuild from the bucket: %+v, want 1 record live and 1 removed", rep)
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
	var packs int
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
		case name == "config.json":
		default:
			t.Errorf("unexpected object in the bucket: %s", o.Key)
		}
	}
	if packs == 0 {
		t.Error("no pack in the bucket")
	}
}
