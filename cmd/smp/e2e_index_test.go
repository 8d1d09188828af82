package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EIndexRebuild deletes the index of a store holding several records
// (one removed, one hard-link record) and rebuilds it from the packs: every
// live record comes back and restores byte-identical, the removed one does
// not, and verify --read-data is clean.
func TestE2EIndexRebuild(t *testing.T) {
	dir := tmpDir(t)
	root := filepath.Join(dir, "root")
	writeFile(t, filepath.Join(root, "home/alice/a.bin"), rnd(1, 2<<20), 0o644)
	writeFile(t, filepath.Join(root, "home/alice/shared.txt"), goSource(t, 200<<10), 0o644)
	writeFile(t, filepath.Join(root, "home/bob/b.bin"), rnd(2, 1<<20), 0o600)
	writeFile(t, filepath.Join(root, "home/bob/shared.txt"), goSource(t, 200<<10), 0o644)
	stampTimes(t, root)
	store := newStore(t)
	alice := doCapture(t, 0, store, "pc-a", "--root", root, "--user", "alice")
	bob := doCapture(t, 0, store, "pc-b", "--root", root, "--user", "bob")
	gone := doCapture(t, 0, store, "pc-c", "--root", root, "--user", "bob")
	mustSMP(t, "rm", "--store", store, "--record", gone.Record)
	before := stats(t, store)

	if err := os.RemoveAll(filepath.Join(store, "index")); err != nil {
		t.Fatal(err)
	}
	r := smp(t, "records", "--store", store)
	if r.code == 0 && strings.Contains(r.stdout, alice.Record[:12]) {
		t.Fatalf("records listed without an index: %v", r)
	}
	var rep struct {
		Packs      int      `json:"packs"`
		Records    int      `json:"records"`
		Removed    int      `json:"removed_records"`
		Incomplete []string `json:"incomplete_records"`
	}
	smpJSON(t, 0, &rep, "index", "rebuild", "--store", store, "--json")
	if rep.Records != 2 || rep.Removed != 1 || len(rep.Incomplete) != 0 || rep.Packs == 0 {
		t.Fatalf("rebuild: %+v; want 2 records live, 1 removed", rep)
	}
	after := stats(t, store)
	if after.Records != 2 || after.LogicalBytes != before.LogicalBytes || after.Chunks != before.Chunks {
		t.Fatalf("stats after rebuild %+v, before %+v", after, before)
	}
	for _, c := range []captureOut{alice, bob} {
		target := filepath.Join(dir, "restored-"+c.Computer)
		restoreJSON(t, 0, store, "--record", c.Record, "--root", target)
		user := strings.TrimPrefix(c.Users[0], "")
		compareTrees(t, filepath.Join(root, "home", user), filepath.Join(target, "home", user), compareOpts{owners: true})
	}
	mustSMP(t, "verify", "--store", store, "--read-data")
	r = smp(t, "restore", "--store", store, "--record", gone.Record, "--root", filepath.Join(dir, "nope"))
	if r.code != exitError {
		t.Fatalf("removed record came back after rebuild: %v", r)
	}
}
