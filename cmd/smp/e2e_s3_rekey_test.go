package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smp/internal/seaweedtest"
)

// TestE2ES3Rekey: smp gc --rekey on an encrypted store on S3 (SeaweedFS).
// After smp key rotate, key 1 still seals the packs, the index segments
// and the access file in the bucket, so smp key retire 1 refuses. gc
// --rekey copies the live blobs under key 2 and condemns the old packs
// (a marks object, as every gc on S3), rewrites the segments and reseals
// the access file: retire still refuses, naming the condemned packs,
// until a gc a grace later deletes them. Then key 1 is retired, and every
// record restores byte-identical through a new cache directory (which
// rebuilds its index from the bucket with key 2 alone), the token still
// lists, and verify --read-data is clean.
func TestE2ES3Rekey(t *testing.T) {
	srv := seaweedtest.Shared(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("SMP_CACHE", "")
	dir := tmpDir(t)
	loc := "s3://" + srv.Endpoint + "/" + srv.NewBucket(t) + "/rk"
	s3 := []string{"--store", loc, "--s3-insecure", "--cache", filepath.Join(dir, "cache")}
	mustSMP(t, append([]string{"init"}, s3...)...)
	srcA, srcB := tmpDir(t), tmpDir(t)
	serveProfile(t, srcA, 61, 12)
	serveProfile(t, srcB, 62, 6)
	var a, b captureOut
	smpJSON(t, exitOK, &a, append([]string{"capture", "--computer", "PC01", "--root", srcA, "--json"}, s3...)...)
	mustSMP(t, append([]string{"token", "create", "--computer", "PC01"}, s3...)...)
	mustSMP(t, append([]string{"key", "rotate"}, s3...)...)
	// Captured after the rotation: under key 2 already.
	smpJSON(t, exitOK, &b, append([]string{"capture", "--computer", "PC02", "--root", srcB, "--json"}, s3...)...)

	if r := smp(t, append([]string{"key", "retire", "1"}, s3...)...); r.code != exitError || !strings.Contains(r.stderr, "gc --rekey") {
		t.Fatalf("retire of a key that seals packs: want a refusal naming gc --rekey\n%v", r)
	}
	gc := func(args ...string) rekeyGC { return shortGC(t, append(args, s3...)...) }
	// Right after the captures: their packs and gc's marks fall in the
	// same second of S3's Last-Modified unless gc waits (leaveSecondOf).
	rk := gc("--rekey")
	t.Logf("gc --rekey: %+v", rk)
	if rk.Rekeyed == 0 || rk.Marked == 0 || rk.Condemned != rk.Marked || !rk.Indexed || len(rk.Problems) != 0 || rk.Deleted != 0 {
		t.Fatalf("gc --rekey = %+v: want the old packs rekeyed and condemned, none deleted, no problem", rk)
	}
	r := smp(t, append([]string{"key", "retire", "1"}, s3...)...)
	if r.code != exitError || !strings.Contains(r.stderr, "condemned") || strings.Contains(r.stderr, "segment") || strings.Contains(r.stderr, "access") {
		t.Fatalf("retire while the condemned packs wait: want a refusal naming only them\n%v", r)
	}
	time.Sleep(shortGCGrace + time.Second)
	if g := gc(); g.Deleted < rk.Marked {
		t.Fatalf("gc a grace after --rekey = %+v: want the %d condemned packs deleted", g, rk.Marked)
	}
	mustSMP(t, append([]string{"key", "retire", "1"}, s3...)...)

	fresh := []string{"--s3-insecure", "--cache", filepath.Join(dir, "fresh")}
	for _, c := range []struct{ rec, src string }{{a.Record, srcA}, {b.Record, srcB}} {
		dst := tmpDir(t)
		restoreJSON(t, exitOK, loc, append([]string{"--record", c.rec, "--root", dst}, fresh...)...)
		compareTrees(t, c.src, dst, compareOpts{})
	}
	if r := mustSMP(t, append([]string{"token", "list", "--store", loc}, fresh...)...); !strings.Contains(r.stdout, "PC01") {
		t.Fatalf("token list after the rekey:\n%v", r)
	}
	mustSMP(t, append([]string{"verify", "--read-data", "--store", loc}, fresh...)...)
}

// rekeyGC is what smp gc --json reports that the rekey tests check.
type rekeyGC struct {
	Rekeyed   int      `json:"packs_rekeyed"`
	Marked    int      `json:"packs_marked"`
	Deleted   int      `json:"packs_deleted"`
	Condemned int      `json:"packs_condemned_old_key"`
	Indexed   bool     `json:"index_rekeyed"`
	Problems  []string `json:"problems"`
}

// shortGCGrace is the grace shortGC passes (SMP_TEST_SHORT_GC_GRACE lets
// it be this short).
const shortGCGrace = 2 * time.Second

// shortGC runs smp gc --json with args and a grace of shortGCGrace, and
// fails t unless it succeeds.
func shortGC(t *testing.T, args ...string) rekeyGC {
	t.Helper()
	short := runOpts{env: []string{"SMP_TEST_SHORT_GC_GRACE=1"}}
	r := smpWith(t, short, append([]string{"gc", "--grace", shortGCGrace.String(), "--json"}, args...)...)
	var out rekeyGC
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &out) != nil {
		t.Fatalf("gc %v:\n%v", args, r)
	}
	return out
}
