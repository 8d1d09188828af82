package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"smp/internal/leaktest"
)

// TestE2EEncryptNoPlaintext is issue 16's sentinel test with the real
// binary: a store made by smp init (encrypted by default; its key file in
// the user config directory, outside the store) captures a profile holding
// sentinels in file contents, file and directory names, a symlink target,
// an xattr and the computer name, and random blocks; no file under the
// store then holds any sentinel or any 64-byte window of the random
// blocks, nor after gc repacks and the index is rebuilt, and the profile
// restores identical.
func TestE2EEncryptNoPlaintext(t *testing.T) {
	t.Parallel()
	e := newEncStore(t)
	sec := &leaktest.Secrets{}
	src := tmpDir(t)
	pc := leaktest.Tree(t, src, sec)
	capture := func(computer, root string) captureOut {
		t.Helper()
		r := e.run(t, "capture", "--store", e.dir, "--computer", computer, "--root", root, "--hardlink", "never", "--json")
		var out captureOut
		if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &out) != nil || out.Record == "" {
			t.Fatalf("capture %s:\n%s", computer, r)
		}
		return out
	}
	first := capture(pc, src)
	leaktest.CheckNoPlaintext(t, "after a capture", e.dir, sec)

	// A second capture after a file was deleted, then the first record
	// removed: the first capture's data pack holds the deleted file's
	// chunk, now dead, beside chunks the second record still uses, so gc
	// --repack-below 1 rewrites it.
	gone, err := filepath.Glob(filepath.Join(src, "home", "alice", "dir-*", "blob2.bin"))
	if err != nil || len(gone) != 1 {
		t.Fatalf("blob2.bin of the profile: %q %v", gone, err)
	}
	if err := os.Remove(gone[0]); err != nil {
		t.Fatal(err)
	}
	capture(pc, src)
	if r := e.run(t, "rm", "--store", e.dir, "--record", first.Record); r.code != exitOK {
		t.Fatalf("rm:\n%s", r)
	}
	r := e.run(t, "gc", "--store", e.dir, "--grace", "0", "--repack-below", "1", "--json")
	var gc struct {
		PacksRewritten int      `json:"packs_rewritten"`
		Problems       []string `json:"problems"`
	}
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &gc) != nil || gc.PacksRewritten == 0 || len(gc.Problems) != 0 {
		t.Fatalf("gc --repack-below 1: %+v\n%s", gc, r)
	}
	leaktest.CheckNoPlaintext(t, "after gc --repack-below 1", e.dir, sec)

	if r := e.run(t, "index", "rebuild", "--store", e.dir); r.code != exitOK {
		t.Fatalf("index rebuild:\n%s", r)
	}
	leaktest.CheckNoPlaintext(t, "after index rebuild", e.dir, sec)

	if r := e.run(t, "verify", "--store", e.dir, "--read-data"); r.code != exitOK {
		t.Fatalf("verify --read-data:\n%s", r)
	}
	dst := filepath.Join(tmpDir(t), "dst")
	if r := e.run(t, "restore", "--store", e.dir, "--computer", pc, "--root", dst); r.code != exitOK {
		t.Fatalf("restore:\n%s", r)
	}
	compareTrees(t, src, dst, compareOpts{})
	leaktest.CheckNoPlaintext(t, "after a restore", e.dir, sec)
}
