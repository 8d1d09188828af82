package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestE2ERestoreParallelWalk: a tree of many directories, with files
// hard-linked across directories walked by different walkers, restores
// identical (link groups included) whether chunked or hard-link captured,
// and again over itself.
func TestE2ERestoreParallelWalk(t *testing.T) {
	t.Parallel()
	dir := tmpDir(t)
	root := filepath.Join(dir, "root")
	home := filepath.Join(root, "home", "bob")
	const dirs = 40
	for d := range dirs {
		sub := filepath.Join(home, fmt.Sprintf("d%02d", d), "inner", fmt.Sprintf("e%d", d%3))
		mkdirs(t, sub)
		for f := range 5 {
			writeFile(t, filepath.Join(sub, fmt.Sprintf("f%d", f)), rnd(uint64(d*10+f), 500+d*f), 0o644)
		}
		if d > 0 {
			// A name in this directory for a file of the previous one.
			prev := filepath.Join(home, fmt.Sprintf("d%02d", d-1), "inner", fmt.Sprintf("e%d", (d-1)%3), "f0")
			if err := os.Link(prev, filepath.Join(sub, "link-to-prev")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if os.Geteuid() == 0 {
		// A profile is its user's: restore gives root-owned files in one
		// to the profile's owner unless --allow-system.
		chownTree(t, home, 4242, 4343)
	}
	stampTimes(t, root)
	for _, mode := range []string{"never", "always"} {
		t.Run("hardlink-"+mode, func(t *testing.T) {
			store := newStore(t)
			doCapture(t, exitOK, store, "pc-"+mode, "--root", root, "--hardlink", mode)
			target := filepath.Join(dir, "restored-"+mode)
			for range 2 { // the second time over the first restore
				out, _ := restoreJSON(t, exitOK, store, "--computer", "pc-"+mode, "--root", target, "--keep", "--overwrite", "always")
				if want := uint64(dirs*6 - 1); out.Files != want {
					t.Fatalf("restored %d files, want %d", out.Files, want)
				}
				compareTrees(t, root, target, compareOpts{owners: true})
			}
		})
	}
}
