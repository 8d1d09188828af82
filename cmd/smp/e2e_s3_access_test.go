package main

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smp/internal/seaweedtest"
)

// sharedBound is the documented bound on how long a change of the access
// file takes to reach every server of a store on S3 (access.RefreshBound,
// 2 s), with slack for a loaded machine and the smp process each poll
// starts.
const sharedBound = 2*time.Second + 3*time.Second

// TestE2ES3SharedAccess: two smp serve (the real binary) share one store
// on a real SeaweedFS, each with its own cache directory; the access file
// is the bucket's, so what smp token/associate/admin do through A's cache
// directory (while both serve) applies on B:
//   - a token made through A captures through B at once (B re-reads the
//     bucket on an unknown token);
//   - the token revoked through A is refused by B within the bound;
//   - the same the other way: made and revoked through B, used on A;
//   - restore-only switched on through A refuses captures on B within the
//     bound, and off again lets them through;
//   - an association made through A lets PC02 restore PC01's record on B;
//   - a capacity limit set through A (smp admin limits --max-store-bytes)
//     refuses captures on B, as a server's own --max-store-bytes does;
//   - --min-free on an s3:// store and --hardlink on one are refused with
//     one line.
func TestE2ES3SharedAccess(t *testing.T) {
	t.Parallel()
	srv := seaweedtest.Shared(t)
	setChildEnv(t, "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey, "SMP_CACHE=") // for every smp the test starts
	dir := tmpDir(t)
	loc := "s3://" + srv.Endpoint + "/" + srv.NewBucket(t) + "/acc"
	cacheA, cacheB, cacheC := filepath.Join(dir, "cache-a"), filepath.Join(dir, "cache-b"), filepath.Join(dir, "cache-c")
	viaA := []string{"--store", loc, "--s3-insecure", "--cache", cacheA}
	mustSMP(t, append([]string{"init"}, viaA...)...)
	admin := strings.TrimSpace(mustSMP(t, append([]string{"token", "create", "--role", "admin"}, viaA...)...).stdout)
	a := startServer(t, loc, "--insecure", "--s3-insecure", "--cache", cacheA)
	b := startServer(t, loc, "--insecure", "--s3-insecure", "--cache", cacheB)
	// B has read the access file (it holds a fresh copy) before the token
	// below exists.
	smpJSON(t, exitOK, &recordsOut{}, "records", "--store", b.url, "--token", admin, "--json")

	tok1 := strings.TrimSpace(mustSMP(t, append([]string{"token", "create", "--computer", "PC01"}, viaA...)...).stdout)
	src := tmpDir(t)
	serveProfile(t, src, 31, 1)
	rec := remoteCapture(t, exitOK, b.url, tok1, "PC01", "--root", src)

	// Revoked through A: refused by B within the bound.
	sum := sha256.Sum256([]byte(tok1))
	mustSMP(t, append([]string{"token", "revoke", "--id", hex.EncodeToString(sum[:])[:12]}, viaA...)...)
	revoked := time.Now()
	refused := pollUntil(t, "B refuses the token revoked through A", func() bool {
		r := smp(t, "records", "--store", b.url, "--token", tok1)
		return r.code != exitOK && strings.Contains(r.stderr, "revoked")
	})
	t.Logf("B refused the revoked token %v after the revoke", refused.Sub(revoked))
	if d := refused.Sub(revoked); d > sharedBound {
		t.Errorf("B refused the revoked token %v after the revoke; the bound is 2 s", d)
	}

	// The other way: made through B's cache directory, the token works on
	// A at once; revoked through B, A refuses it within the bound.
	viaB := []string{"--store", loc, "--s3-insecure", "--cache", cacheB}
	tok3 := strings.TrimSpace(mustSMP(t, append([]string{"token", "create", "--computer", "PC03"}, viaB...)...).stdout)
	smpJSON(t, exitOK, &recordsOut{}, "records", "--store", a.url, "--token", tok3, "--json")
	sum = sha256.Sum256([]byte(tok3))
	mustSMP(t, append([]string{"token", "revoke", "--id", hex.EncodeToString(sum[:])[:12]}, viaB...)...)
	revoked = time.Now()
	refused = pollUntil(t, "A refuses the token revoked through B", func() bool {
		r := smp(t, "records", "--store", a.url, "--token", tok3)
		return r.code != exitOK && strings.Contains(r.stderr, "revoked")
	})
	if d := refused.Sub(revoked); d > sharedBound {
		t.Errorf("A refused the token revoked through B %v after the revoke; the bound is 2 s", d)
	}

	// Restore-only through A applies on B, both ways.
	tok1b := strings.TrimSpace(mustSMP(t, append([]string{"token", "create", "--computer", "PC01"}, viaA...)...).stdout)
	small := tmpDir(t)
	writeFile(t, filepath.Join(small, "home", "alice", "note.txt"), []byte("small\n"), 0o644)
	mustSMP(t, append([]string{"admin", "restore-only", "on"}, viaA...)...)
	on := time.Now()
	pollUntil(t, "B refuses captures after restore-only on through A", func() bool {
		r := smp(t, "capture", "--store", b.url, "--token", tok1b, "--computer", "PC01", "--root", small)
		return r.code == exitError && strings.Contains(r.stderr, "restore-only mode")
	})
	if d := time.Since(on); d > sharedBound {
		t.Errorf("restore-only reached B after %v; the bound is 2 s", d)
	}
	mustSMP(t, append([]string{"admin", "restore-only", "off"}, viaA...)...)
	pollUntil(t, "B captures again after restore-only off through A", func() bool {
		return smp(t, "capture", "--store", b.url, "--token", tok1b, "--computer", "PC01", "--root", small).code == exitOK
	})

	// An association made through A lets PC02 restore PC01's record on B.
	tok2 := strings.TrimSpace(mustSMP(t, append([]string{"token", "create", "--computer", "PC02"}, viaA...)...).stdout)
	r := smp(t, "restore", "--store", b.url, "--token", tok2, "--record", rec.Record, "--root", tmpDir(t))
	if r.code == exitOK {
		t.Fatalf("PC02 restored PC01's record without an association:\n%v", r)
	}
	mustSMP(t, append([]string{"associate", "--source", "PC01", "--dest", "PC02"}, viaA...)...)
	var dst string
	pollUntil(t, "PC02 restores PC01's record on B after the association through A", func() bool {
		dst = tmpDir(t)
		return smp(t, "restore", "--store", b.url, "--token", tok2, "--record", rec.Record, "--root", dst).code == exitOK
	})
	compareTrees(t, src, dst, compareOpts{})

	// Capacity: a limit set through A applies on B; a server's own
	// --max-store-bytes too. Both refuse before anything is uploaded.
	mustSMP(t, append([]string{"admin", "limits", "--max-store-bytes", "64KiB"}, viaA...)...)
	src3 := tmpDir(t)
	serveProfile(t, src3, 77, 1)
	pollUntil(t, "B refuses a capture over the shared --max-store-bytes", func() bool {
		r := smp(t, "capture", "--store", b.url, "--token", tok1b, "--computer", "PC01", "--root", src3)
		return r.code != exitOK && strings.Contains(r.stderr, "--max-store-bytes")
	})
	mustSMP(t, append([]string{"admin", "limits", "--max-store-bytes", "none"}, viaA...)...)
	c := startServer(t, loc, "--insecure", "--s3-insecure", "--cache", cacheC, "--max-store-bytes", "64KiB")
	r = smp(t, "capture", "--store", c.url, "--token", tok1b, "--computer", "PC01", "--root", src3)
	if r.code != exitError || !strings.Contains(r.stderr, "--max-store-bytes") {
		t.Fatalf("capture through a server with --max-store-bytes 64KiB:\n%v", r)
	}
	pollUntil(t, "A captures once the shared limit is removed", func() bool {
		return smp(t, "capture", "--store", a.url, "--token", tok1b, "--computer", "PC01", "--root", src3).code == exitOK
	})

	// One-line refusals of what has no meaning on a bucket.
	r = smp(t, "serve", "--store", loc, "--s3-insecure", "--cache", cacheC, "--insecure", "--listen", "127.0.0.1:0", "--min-free", "1GiB")
	if r.code != exitUsage || len(r.stderrLines()) != 1 || !strings.Contains(r.stderr, "--max-store-bytes") {
		t.Errorf("serve --min-free on s3://: want one line naming --max-store-bytes, exit %d\n%v", exitUsage, r)
	}
	r = smp(t, append([]string{"capture", "--computer", "PC09", "--root", small, "--hardlink", "always"}, viaA...)...)
	if r.code != exitUsage || len(r.stderrLines()) != 1 || !strings.Contains(r.stderr, "S3") {
		t.Errorf("capture --hardlink always on s3://: want one line, exit %d\n%v", exitUsage, r)
	}
}

// pollUntil calls cond until it holds (at most 30 s) and returns when.
func pollUntil(t *testing.T, what string, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30 s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Now()
}
