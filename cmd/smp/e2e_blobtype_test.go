package main

import (
	"path/filepath"
	"testing"

	"smp/cas/manifest"
)

// collidingFile returns file contents whose data chunk ID is the ID of the
// empty tree (the tree domain prefix, then the empty tree's encoding): the
// tree every empty directory is stored as.
func collidingFile(t *testing.T) []byte {
	t.Helper()
	enc, err := (&manifest.Tree{Entries: []manifest.Entry{}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte("smp blob type \x02"), enc...)
}

// writeCollidingProfile writes home/mallory with the colliding file and an
// empty directory (captured together, the file's chunk and the directory's
// tree have the same ID), and home/alice with an empty directory of her
// own.
func writeCollidingProfile(t *testing.T, root string) {
	t.Helper()
	writeFile(t, filepath.Join(root, "home/mallory/forged.bin"), collidingFile(t), 0o644)
	writeFile(t, filepath.Join(root, "home/mallory/note.txt"), []byte("hello\n"), 0o644)
	mkdirs(t, filepath.Join(root, "home/mallory/empty"))
	stampTimes(t, root)
}

func writeEmptyDirProfile(t *testing.T, root string) {
	t.Helper()
	writeFile(t, filepath.Join(root, "home/alice/a.txt"), goSource(t, 4000), 0o600)
	mkdirs(t, filepath.Join(root, "home/alice/Downloads"), filepath.Join(root, "home/alice/.cache/x"))
	stampTimes(t, root)
}

// TestE2EBlobTypeCollision: a file whose bytes are the empty tree's
// prefixed encoding has the empty tree's ID. A store keeps both: verify is
// clean, and the capture holding them and a later capture of another
// computer with empty directories restore byte-identical, from a local
// store and through smp serve.
func TestE2EBlobTypeCollision(t *testing.T) {
	t.Parallel()
	dir := tmpDir(t)
	evil, other := filepath.Join(dir, "evil"), filepath.Join(dir, "other")
	writeCollidingProfile(t, evil)
	writeEmptyDirProfile(t, other)

	t.Run("local", func(t *testing.T) {
		store := newStore(t)
		a := doCapture(t, exitOK, store, "pc-a", "--root", evil)
		b := doCapture(t, exitOK, store, "pc-b", "--root", other)
		checkCollides(t, store, a.Record)
		mustSMP(t, "verify", "--store", store, "--read-data")
		for _, c := range []struct {
			rec, src, user string
		}{{a.Record, evil, "mallory"}, {b.Record, other, "alice"}} {
			dst := filepath.Join(tmpDir(t), "out")
			res, _ := restoreJSON(t, exitOK, store, "--record", c.rec, "--root", dst)
			if res.Errors != 0 {
				t.Fatalf("restore of %s: %+v", c.user, res)
			}
			compareTrees(t, filepath.Join(c.src, "home", c.user), filepath.Join(dst, "home", c.user), compareOpts{})
		}
		mustSMP(t, "gc", "--store", store)
		mustSMP(t, "verify", "--store", store, "--read-data")
	})

	t.Run("serve", func(t *testing.T) {
		store := newStore(t)
		srv := startServer(t, store)
		tokA := newToken(t, store, "--computer", "PC-A")
		tokB := newToken(t, store, "--computer", "PC-B")
		remoteCapture(t, exitOK, srv.url, tokA, "PC-A", "--root", evil)
		remoteCapture(t, exitOK, srv.url, tokB, "PC-B", "--root", other)
		for _, c := range []struct {
			tok, computer, src, user string
		}{{tokA, "PC-A", evil, "mallory"}, {tokB, "PC-B", other, "alice"}} {
			dst := filepath.Join(tmpDir(t), "out")
			res, _ := restoreJSON(t, exitOK, srv.url, "--token", c.tok, "--computer", c.computer, "--root", dst)
			if res.Errors != 0 {
				t.Fatalf("restore of %s: %+v", c.computer, res)
			}
			compareTrees(t, filepath.Join(c.src, "home", c.user), filepath.Join(dst, "home", c.user), compareOpts{})
		}
		srv.stop(t)
		mustSMP(t, "verify", "--store", store, "--read-data")
	})
}

// checkCollides makes sure the capture did store a data chunk and a tree
// with the same ID: home/mallory/forged.bin's chunk and home/mallory/empty.
func checkCollides(t *testing.T, store, record string) {
	t.Helper()
	r := openRepo(t, store, true)
	defer r.Close()
	rec, err := r.FindRecord(record, "")
	if err != nil {
		t.Fatal(err)
	}
	tree := rec.Tree
	for _, name := range []string{"home", "mallory"} {
		tr, err := r.LoadTree(tree)
		if err != nil {
			t.Fatal(err)
		}
		e := findEntry(tr, name)
		if e == nil {
			t.Fatalf("no %s in the record", name)
		}
		tree = e.Subtree
	}
	tr, err := r.LoadTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	forged, empty := findEntry(tr, "forged.bin"), findEntry(tr, "empty")
	if forged == nil || empty == nil || len(forged.Chunks) != 1 || forged.Chunks[0].ID != empty.Subtree {
		t.Fatalf("forged.bin %+v and empty %+v: want the file's one chunk to have the empty tree's ID", forged, empty)
	}
}

func findEntry(tr *manifest.Tree, name string) *manifest.Entry {
	for i := range tr.Entries {
		if tr.Entries[i].Name == name {
			return &tr.Entries[i]
		}
	}
	return nil
}
