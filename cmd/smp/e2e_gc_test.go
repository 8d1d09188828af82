package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// gcOut is gc --json.
type gcOut struct {
	DryRun         bool     `json:"dry_run"`
	Records        int      `json:"records"`
	PacksScanned   int      `json:"packs_scanned"`
	PacksDeleted   int      `json:"packs_deleted"`
	PacksRewritten int      `json:"packs_rewritten"`
	BlobsRemoved   int      `json:"blobs_removed"`
	BytesFreed     int64    `json:"bytes_freed"`
	Problems       []string `json:"problems"`
	Seconds        float64  `json:"seconds"`
}

// TestE2EGC captures two computers sharing files, removes one and checks
// that gc frees its unique data and leaves the other restorable.
func TestE2EGC(t *testing.T) {
	t.Parallel()
	base := tmpDir(t)
	shared := rnd(100, 2<<20)
	doc := goSource(t, 1<<20)
	roots := map[string]string{}
	for i, pc := range []string{"pc1", "pc2"} {
		root := filepath.Join(base, pc)
		writeFile(t, filepath.Join(root, "home/alice/shared.bin"), shared, 0o644)
		writeFile(t, filepath.Join(root, "home/alice/docs/notes.go"), doc, 0o644)
		writeFile(t, filepath.Join(root, "home/alice/own.bin"), rnd(uint64(200+i), 4<<20), 0o600)
		stampTimes(t, root)
		roots[pc] = root
	}
	store := newStore(t)
	c1 := doCapture(t, exitOK, store, "pc1", "--root", roots["pc1"], "home")
	doCapture(t, exitOK, store, "pc2", "--root", roots["pc2"], "home")
	mustSMP(t, "rm", "--store", store, "--record", c1.Record)
	before := stats(t, store)

	var dry gcOut
	smpJSON(t, exitOK, &dry, "gc", "--store", store, "--grace", "0", "--dry-run", "--json")
	if !dry.DryRun || dry.BytesFreed < 3<<20 || dry.BlobsRemoved == 0 || dry.Records != 1 {
		t.Errorf("gc --dry-run: %+v", dry)
	}
	if s := stats(t, store); s != before {
		t.Errorf("gc --dry-run changed the store: %+v, then %+v", before, s)
	}

	var out gcOut
	smpJSON(t, exitOK, &out, "gc", "--store", store, "--grace", "0", "--json")
	if out.DryRun || out.PacksScanned == 0 || out.PacksDeleted+out.PacksRewritten == 0 || len(out.Problems) != 0 {
		t.Errorf("gc: %+v", out)
	}
	if out.BytesFreed != dry.BytesFreed || out.BlobsRemoved != dry.BlobsRemoved {
		t.Errorf("gc freed %d bytes and %d blobs, the dry run said %d and %d", out.BytesFreed, out.BlobsRemoved, dry.BytesFreed, dry.BlobsRemoved)
	}
	after := stats(t, store)
	// pc1's own 4 MiB of random data is gone; the shared data stays.
	if after.StoredBytes >= before.StoredBytes || before.StoredBytes-after.StoredBytes < 4<<20-64<<10 ||
		int64(before.StoredBytes-after.StoredBytes) != out.BytesFreed {
		t.Errorf("stored bytes %d -> %d, gc reported %d freed", before.StoredBytes, after.StoredBytes, out.BytesFreed)
	}
	if after.StoredBytes < 6<<20 || after.Records != 1 {
		t.Errorf("after gc: %+v: pc2's data must remain", after)
	}

	target := filepath.Join(tmpDir(t), "target")
	restoreJSON(t, exitOK, store, "--computer", "pc2", "--root", target)
	compareTrees(t, roots["pc2"], target, compareOpts{})
	mustSMP(t, "verify", "--store", store, "--read-data")

	// Nothing is left to do; the text output says so.
	r := mustSMP(t, "gc", "--store", store, "--grace", "0")
	if !strings.Contains(r.stdout, "0 packs deleted, 0 rewritten") {
		t.Errorf("second gc:\n%s", r)
	}
	if s := stats(t, store); s.StoredBytes != after.StoredBytes {
		t.Errorf("second gc changed stored bytes %d -> %d", after.StoredBytes, s.StoredBytes)
	}
}

func TestE2EGCUsage(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no store", []string{"gc"}, exitUsage, "--store"},
		{"threshold too big", []string{"gc", "--store", store, "--grace", "0", "--repack-below", "1.5"}, exitUsage, "--repack-below"},
		{"negative threshold", []string{"gc", "--store", store, "--grace", "0", "--repack-below=-1"}, exitUsage, "--repack-below"},
		{"stray argument", []string{"gc", "--store", store, "--grace", "0", "now"}, exitUsage, "unexpected argument"},
		{"empty store", []string{"gc", "--store", store, "--grace", "0"}, exitOK, "scanned 0 packs"},
		{"empty store dry run", []string{"gc", "--store", store, "--grace", "0", "--dry-run"}, exitOK, "dry run"},
	}
	for _, tc := range tests {
		r := smp(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("%s: want exit %d and %q\n%s", tc.name, tc.code, tc.want, r)
		}
	}
}
