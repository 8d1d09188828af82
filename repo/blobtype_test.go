package repo_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/repo"
)

// collidingChunk returns file bytes whose data chunk ID is the ID of tree
// tr: the tree domain prefix followed by the tree's encoding.
func collidingChunk(t *testing.T, r *repo.Repo, tr *manifest.Tree) ([]byte, cas.ID) {
	t.Helper()
	enc, err := tr.Encode()
	if err != nil {
		t.Fatal(err)
	}
	data := append([]byte("smp blob type \x02"), enc...)
	id := r.Hasher.SumBlob(cas.BlobTree, enc)
	if r.Sum(data) != id {
		t.Fatal("the file's chunk ID is not the tree's: the tree's domain prefix changed, update the test")
	}
	return data, id
}

// TestDataAndTreeShareID: a file whose bytes are the empty tree's prefixed
// encoding has the empty tree's ID. Whichever is stored first, both are
// stored, each reads back as its own type, and verify, gc and an index
// rebuild keep both.
func TestDataAndTreeShareID(t *testing.T) {
	for _, dataFirst := range []bool{true, false} {
		name := "tree first"
		if dataFirst {
			name = "data first"
		}
		t.Run(name, func(t *testing.T) {
			dir := newStore(t)
			r := openStore(t, dir)
			// The empty tree as capture stores an empty directory.
			emptyTree := func() *manifest.Tree { return &manifest.Tree{Entries: []manifest.Entry{}} }
			data, id := collidingChunk(t, r, emptyTree())
			putEmpty := func() cas.ID {
				id, err := r.PutTree(emptyTree())
				if err != nil {
					t.Fatal(err)
				}
				return id
			}
			var file manifest.Entry
			var empty cas.ID
			if dataFirst {
				file = putFile(t, r, "evil", data, len(data))
				empty = putEmpty()
			} else {
				empty = putEmpty()
				file = putFile(t, r, "evil", data, len(data))
			}
			if file.Chunks[0].ID != id || empty != id {
				t.Fatalf("chunk %s, empty tree %s: want both %s", file.Chunks[0].ID.Short(), empty.Short(), id.Short())
			}
			root := putTree(t, r, file, manifest.Entry{Name: "empty", Type: manifest.TypeDir, Mode: 0o755, Subtree: empty})
			rec, err := r.CommitRecord(&manifest.Record{Computer: "pc", Created: time.Now(), Tree: root, Files: 1, Dirs: 1})
			if err != nil {
				t.Fatal(err)
			}
			check := func(r *repo.Repo, when string) {
				t.Helper()
				if got, err := r.ReadChunk(id, nil); err != nil || !bytes.Equal(got, data) {
					t.Errorf("%s: ReadChunk = %q, %v; want the file's bytes", when, got, err)
				}
				if tr, err := r.LoadTree(id); err != nil || len(tr.Entries) != 0 {
					t.Errorf("%s: LoadTree = %v, %v; want the empty tree", when, tr, err)
				}
				recs, err := r.Records()
				if err != nil || len(recs) != 1 || recs[0].ID != rec {
					t.Fatalf("%s: Records = %v, %v", when, recs, err)
				}
				rep, err := r.Verify(recs, true, nil)
				if err != nil || len(rep.Damaged) != 0 {
					t.Errorf("%s: Verify = %+v, %v; want no damage", when, rep, err)
				}
			}
			check(r, "after commit")
			if _, err := r.GC(context.Background(), repo.GCOptions{RepackBelow: 1}); err != nil {
				t.Fatal(err)
			}
			check(r, "after gc")
			closeStore(t, r)
			rep, err := repo.RebuildIndex(dir)
			if err != nil || rep.Records != 1 || rep.Duplicates != 0 {
				t.Fatalf("RebuildIndex = %+v, %v; want the record back, no duplicates", rep, err)
			}
			check(openStore(t, dir), "after index rebuild")
		})
	}
}
