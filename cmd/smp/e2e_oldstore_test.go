package main

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"smp/index"
)

// oldStoreFixture is a store made by smp at ccd36e0, the last version
// whose index keyed blobs by ID alone (index schema 1), from the tree
// writeOldStoreSource writes. TestMakeOldStoreFixture made it.
const oldStoreFixture = "testdata/store-ccd36e0"

// writeOldStoreSource writes the tree the fixture was captured from, the
// same every time (contents, modes and mtimes).
func writeOldStoreSource(t *testing.T, root string) {
	t.Helper()
	writeFile(t, filepath.Join(root, "home/alice/docs/a.txt"), []byte("hello alice\n"), 0o644)
	writeFile(t, filepath.Join(root, "home/alice/docs/r.bin"), rnd(7, 3000), 0o600)
	writeFile(t, filepath.Join(root, "home/bob/b.txt"), []byte("bob was here\n"), 0o640)
	mkdirs(t, filepath.Join(root, "home/alice/empty"))
	if err := os.Symlink("docs/a.txt", filepath.Join(root, "home/alice/link")); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			err = os.Chmod(p, 0o755) // whatever the umask
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	stampTimes(t, root)
}

// copyDir copies the regular files and directories below src to dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMakeOldStoreFixture writes the fixture with an smp built from
// ccd36e0, named by SMP_OLD_BIN:
//
//	git worktree add --detach /tmp/smp-old ccd36e0
//	(cd /tmp/smp-old && go build -o /tmp/smp-old/smp ./cmd/smp)
//	SMP_OLD_BIN=/tmp/smp-old/smp go test ./cmd/smp -run TestMakeOldStoreFixture
func TestMakeOldStoreFixture(t *testing.T) {
	bin := os.Getenv("SMP_OLD_BIN")
	if bin == "" {
		t.Skip("SMP_OLD_BIN is not set: the fixture is committed")
	}
	dir := tmpDir(t)
	src, store := filepath.Join(dir, "src"), filepath.Join(dir, "store")
	writeOldStoreSource(t, src)
	for _, args := range [][]string{
		{"init", "--store", store},
		{"capture", "--store", store, "--computer", "pc-old", "--root", src, "--hardlink", "never"},
		{"capture", "--store", store, "--computer", "pc-bob", "--root", src, "--user", "bob", "--hardlink", "never"},
	} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
		}
	}
	// The lock and Badger's discard statistics (1 MiB of zeros for an
	// index this small) are recreated on open.
	for _, f := range []string{"lock", "index/DISCARD"} {
		if err := os.Remove(filepath.Join(store, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(oldStoreFixture); err != nil {
		t.Fatal(err)
	}
	copyDir(t, store, oldStoreFixture)
}

// TestE2EOldStoreOpens: a store made by ccd36e0 (index schema 1) opens
// with no manual step: the first command migrates its index, every record
// restores byte-identical, verify is clean, and the store then takes a
// capture whose file chunk has an empty directory's tree ID.
func TestE2EOldStoreOpens(t *testing.T) {
	t.Parallel()
	dir := tmpDir(t)
	store, src := filepath.Join(dir, "store"), filepath.Join(dir, "src")
	copyDir(t, oldStoreFixture, store)
	writeOldStoreSource(t, src)

	var recs recordsOut
	smpJSON(t, exitOK, &recs, "records", "--store", store, "--json")
	if len(recs.Records) != 2 {
		t.Fatalf("records of the old store: %+v, want 2", recs)
	}
	// That first command migrated the index: a read-only open, which
	// refuses schema 1, now succeeds.
	ix, err := index.OpenReadOnly(filepath.Join(store, "index"))
	if err != nil {
		t.Fatalf("index after the first command: %v", err)
	}
	ix.Close()
	for _, c := range []struct {
		computer string
		users    []string
	}{{"pc-old", []string{"alice", "bob"}}, {"pc-bob", []string{"bob"}}} {
		dst := filepath.Join(tmpDir(t), "out")
		res, _ := restoreJSON(t, exitOK, store, "--computer", c.computer, "--root", dst)
		if res.Errors != 0 {
			t.Fatalf("restore of %s: %+v", c.computer, res)
		}
		for _, u := range c.users {
			compareTrees(t, filepath.Join(src, "home", u), filepath.Join(dst, "home", u), compareOpts{})
		}
		if got, _ := os.ReadDir(filepath.Join(dst, "home")); len(got) != len(c.users) {
			t.Errorf("restore of %s wrote %d homes, want %d", c.computer, len(got), len(c.users))
		}
	}
	mustSMP(t, "verify", "--store", store, "--read-data")

	evil := filepath.Join(dir, "evil")
	writeCollidingProfile(t, evil)
	a := doCapture(t, exitOK, store, "pc-evil", "--root", evil)
	checkCollides(t, store, a.Record)
	mustSMP(t, "verify", "--store", store, "--read-data")
	dst := filepath.Join(tmpDir(t), "out")
	restoreJSON(t, exitOK, store, "--record", a.Record, "--root", dst)
	compareTrees(t, filepath.Join(evil, "home/mallory"), filepath.Join(dst, "home/mallory"), compareOpts{})
}
