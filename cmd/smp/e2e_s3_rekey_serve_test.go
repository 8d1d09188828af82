package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"smp/cas"
	"smp/internal/seaweedtest"
)

// packKeyIDs returns the master key sealing each pack under prefix in the
// bucket, by object name, read from the pack's sealed trailer as smp does
// (cas.PackDir.KeyOf).
func packKeyIDs(t *testing.T, cl *minio.Client, bucket, prefix string) map[string]uint32 {
	t.Helper()
	out := map[string]uint32{}
	for _, k := range s3Keys(t, cl, bucket, prefix+"packs/") {
		obj, err := cl.GetObject(context.Background(), bucket, k, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, err = b.ReadFrom(obj)
		obj.Close()
		if err != nil {
			t.Fatal(err)
		}
		p := b.Bytes()
		if len(p) < cas.PackFooterSize {
			t.Fatalf("%s: %d bytes, shorter than a footer", k, len(p))
		}
		n, err := cas.SealedTrailerLen(p[len(p)-cas.PackFooterSize:], int64(len(p)))
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		out[k] = binary.LittleEndian.Uint32(p[int64(len(p))-n:])
	}
	return out
}

// TestE2ES3RekeyWhileServing: smp key rotate, gc --rekey and smp key
// retire on an encrypted store on S3 (SeaweedFS) while two smp serve that
// were started before the rotation keep running. Server B takes the new
// key up at its refresh, without a restart: what it stores after the
// rotation (a capture through it a few refreshes later) is sealed under
// key 2 only. gc --rekey moves the packs under key 1, a gc a grace later
// deletes them, and smp key retire 1 then succeeds (after waiting until
// the servers surely read the rotated keys). Captures through both
// servers after the retire still work, and so does one through B
// restarted (its cache's index, still under key 1, is rebuilt from the
// bucket); every record restores byte-identical through a new cache that
// holds key 2 alone, and verify --read-data is clean.
func TestE2ES3RekeyWhileServing(t *testing.T) {
	srv := seaweedtest.Shared(t)
	setChildEnv(t, "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey, "SMP_CACHE=")
	cl, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	dir := tmpDir(t)
	bucket := srv.NewBucket(t)
	loc := "s3://" + srv.Endpoint + "/" + bucket + "/rs"
	cacheOf := func(name string) []string {
		return []string{"--store", loc, "--s3-insecure", "--cache", filepath.Join(dir, name)}
	}
	admin := cacheOf("admin") // the machine that rotates, gc's and retires
	mustSMP(t, append([]string{"init"}, admin...)...)
	token := newToken(t, loc, append(admin[2:], "--computer", "PC01")...)
	servers := [2]*testServer{
		startServer(t, loc, "--insecure", "--s3-insecure", "--cache", filepath.Join(dir, "cache-a")),
		startServer(t, loc, "--insecure", "--s3-insecure", "--cache", filepath.Join(dir, "cache-b")),
	}
	a, b := servers[0], servers[1]
	roots := map[string]string{}
	records := map[string]string{}
	capture := func(s *testServer, name string, seed uint64) {
		t.Helper()
		root := tmpDir(t)
		serveProfile(t, root, seed, 3)
		out := remoteCapture(t, exitOK, s.url, token, "PC01", "--root", root)
		roots[name], records[name] = root, out.Record
	}
	capture(b, "before", 71)
	if keys := packKeyIDs(t, cl, bucket, "rs/"); len(keys) == 0 || slices.ContainsFunc(slices.Collect(maps.Values(keys)), func(k uint32) bool { return k != 1 }) {
		t.Fatalf("packs before the rotation: %v, want key 1 only", keys)
	}

	mustSMP(t, append([]string{"key", "rotate"}, admin...)...)
	// A few refreshes of B (store.S3RefreshEvery, 2 s).
	time.Sleep(6 * time.Second)
	old := packKeyIDs(t, cl, bucket, "rs/")
	capture(b, "after-b", 72)
	capture(a, "after-a", 73)
	for k, id := range packKeyIDs(t, cl, bucket, "rs/") {
		if _, was := old[k]; !was && id != 2 {
			t.Fatalf("pack %s stored after the rotation is sealed under key %d, want 2", k, id)
		}
	}

	gc := func(args ...string) rekeyGC { return shortGC(t, append(args, admin...)...) }
	// Right after the captures: their packs and gc's marks fall in the
	// same second of S3's Last-Modified unless gc waits (leaveSecondOf).
	rk := gc("--rekey")
	t.Logf("gc --rekey while both servers run: %+v", rk)
	if rk.Rekeyed == 0 || len(rk.Problems) != 0 {
		t.Fatalf("gc --rekey = %+v: want the packs under key 1 rekeyed, no problem", rk)
	}
	time.Sleep(shortGCGrace + time.Second)
	if g := gc(); g.Deleted < rk.Marked {
		t.Fatalf("gc a grace after --rekey = %+v: want the %d condemned packs deleted", g, rk.Marked)
	}
	start := time.Now()
	mustSMP(t, append([]string{"key", "retire", "1"}, admin...)...)
	t.Logf("smp key retire 1 took %v (it waits until the servers surely read the rotated keys)", time.Since(start))

	// Both servers go on, sealing under key 2.
	capture(b, "retired-b", 74)
	capture(a, "retired-a", 75)
	// B restarted: its cache's index, under key 1 still, is rebuilt
	// from the bucket under key 2.
	b.stop(t)
	b = startServer(t, loc, "--insecure", "--s3-insecure", "--cache", filepath.Join(dir, "cache-b"))
	capture(b, "restarted-b", 76)
	for k, id := range packKeyIDs(t, cl, bucket, "rs/") {
		if id != 2 {
			t.Fatalf("pack %s is sealed under key %d after key 1 was retired", k, id)
		}
	}
	fresh := []string{"--s3-insecure", "--cache", filepath.Join(dir, "fresh")}
	for name, rec := range records {
		dst := tmpDir(t)
		restoreJSON(t, exitOK, loc, append([]string{"--record", rec, "--root", dst}, fresh...)...)
		compareTrees(t, roots[name], dst, compareOpts{})
	}
	mustSMP(t, append([]string{"verify", "--read-data", "--store", loc}, fresh...)...)
}
