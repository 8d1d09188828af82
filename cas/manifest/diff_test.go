package manifest

import (
	"context"
	"slices"
	"testing"

	"smp/cas"
)

// diffFile is a one-chunk file whose contents are named by c.
func diffFile(name string, c byte, size uint32) Entry {
	e := fileEntry(name)
	e.Chunks = []Chunk{{ID: idOf(c), Size: size}}
	e.Size = uint64(size)
	return e
}

func TestDiffKinds(t *testing.T) {
	docsOld, docsNew, shared, sharedSub, rootOld, rootNew := idOf(0x10), idOf(0x11), idOf(0x20), idOf(0x21), idOf(0x30), idOf(0x31)
	gone := idOf(0x40)
	keepNew := diffFile("keep.txt", 5, 10)
	keepNew.Mode = 0o600
	touched := diffFile("touched", 8, 7)
	touched.MTimeNs++
	m := &mapLoader{trees: map[cas.ID]*Tree{
		docsOld:   {Version: TreeVersion, Entries: []Entry{diffFile("a.txt", 1, 100), diffFile("b.txt", 2, 200), diffFile("empty", 9, 0)}},
		docsNew:   {Version: TreeVersion, Entries: []Entry{diffFile("a.txt", 3, 150), diffFile("c.txt", 2, 200), diffFile("empty2", 9, 0)}},
		shared:    {Version: TreeVersion, Entries: []Entry{diffFile("x", 4, 40), dirEntry("sub", sharedSub)}},
		sharedSub: {Version: TreeVersion, Entries: []Entry{diffFile("y", 6, 60)}},
		gone:      {Version: TreeVersion, Entries: []Entry{diffFile("z", 7, 70)}},
		rootOld: {Version: TreeVersion, Entries: []Entry{dirEntry("docs", docsOld), diffFile("keep.txt", 5, 10), linkEntry("link", "a"),
			dirEntry("old", gone), dirEntry("shared", shared), diffFile("touched", 8, 7)}},
		rootNew: {Version: TreeVersion, Entries: []Entry{dirEntry("docs", docsNew), diffFile("keep.txt", 5, 10), linkEntry("link", "b"),
			diffFile("new.bin", 12, 5), dirEntry("shared", shared), touched}},
	}}
	m.trees[rootNew].Entries[1] = keepNew
	got, err := Diff(context.Background(), DiffOptions{OldLoad: m, NewLoad: m, Old: rootOld, New: rootNew})
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{Kind: ChangeModified, Path: "docs/a.txt", Type: TypeFile, Size: 150, OldSize: 100, What: []string{"content"}},
		{Kind: ChangeRenamed, Path: "docs/c.txt", From: "docs/b.txt", Type: TypeFile, Size: 200},
		// Empty files all have the same contents: never taken for a rename.
		{Kind: ChangeRemoved, Path: "docs/empty", Type: TypeFile},
		{Kind: ChangeAdded, Path: "docs/empty2", Type: TypeFile},
		{Kind: ChangeModified, Path: "keep.txt", Type: TypeFile, Size: 10, OldSize: 10, What: []string{"mode"}},
		{Kind: ChangeModified, Path: "link", Type: TypeSymlink, What: []string{"target"}},
		{Kind: ChangeAdded, Path: "new.bin", Type: TypeFile, Size: 5},
		{Kind: ChangeRemoved, Path: "old", Type: TypeDir},
		{Kind: ChangeRemoved, Path: "old/z", Type: TypeFile, Size: 70},
		{Kind: ChangeModified, Path: "touched", Type: TypeFile, Size: 7, OldSize: 7, What: []string{"mtime"}},
	}
	if !slices.EqualFunc(got, want, func(a, b Change) bool {
		return a.Kind == b.Kind && a.Path == b.Path && a.From == b.From && a.Type == b.Type && a.Size == b.Size &&
			a.OldSize == b.OldSize && slices.Equal(a.What, b.What)
	}) {
		t.Fatalf("diff:\n got %+v\nwant %+v", got, want)
	}
	// The shared directory's subtree is read once, for the old record:
	// the new walk passes over it.
	m.reads = 0
	if _, err := Diff(context.Background(), DiffOptions{OldLoad: m, NewLoad: m, Old: rootOld, New: rootNew}); err != nil {
		t.Fatal(err)
	}
	// old: root, docs, old, shared, shared/sub = 5; new: root, docs = 2.
	if m.reads != 7 {
		t.Fatalf("%d tree reads, want 7", m.reads)
	}
}

func TestDiffSameAndMissing(t *testing.T) {
	m, root := walkFixture()
	got, err := Diff(context.Background(), DiffOptions{OldLoad: m, NewLoad: m, Old: root, New: root})
	if err != nil || len(got) != 0 {
		t.Fatalf("diff of a tree with itself: %v, %v", got, err)
	}
	// A tree that cannot be read fails the diff: what it holds is unknown.
	if _, err := Diff(context.Background(), DiffOptions{OldLoad: m, NewLoad: m, Old: root, New: idOf(0xee)}); err == nil {
		t.Fatal("diff against a missing tree succeeded")
	}
}

// TestDiffRenamePrefersNearestPath: two removed copies of the same bytes,
// one added: the rename comes from the copy in the same directory.
func TestDiffRenamePrefersNearestPath(t *testing.T) {
	a, b, rootOld, rootNew := idOf(0x50), idOf(0x51), idOf(0x52), idOf(0x53)
	bNew := idOf(0x54)
	m := &mapLoader{trees: map[cas.ID]*Tree{
		a:       {Version: TreeVersion, Entries: []Entry{diffFile("x", 1, 10)}},
		b:       {Version: TreeVersion, Entries: []Entry{diffFile("x", 1, 10)}},
		bNew:    {Version: TreeVersion, Entries: []Entry{diffFile("y", 1, 10)}},
		rootOld: {Version: TreeVersion, Entries: []Entry{dirEntry("a", a), dirEntry("b", b)}},
		rootNew: {Version: TreeVersion, Entries: []Entry{dirEntry("a", bNew), dirEntry("b", bNew)}},
	}}
	m.trees[rootNew].Entries[0] = dirEntry("a", idOf(0x55))
	m.trees[idOf(0x55)] = &Tree{Version: TreeVersion}
	got, err := Diff(context.Background(), DiffOptions{OldLoad: m, NewLoad: m, Old: rootOld, New: rootNew})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Kind != ChangeRemoved || got[0].Path != "a/x" ||
		got[1].Kind != ChangeRenamed || got[1].From != "b/x" || got[1].Path != "b/y" {
		t.Fatalf("diff %+v", got)
	}
}
