package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func inode(t testing.TB, path string) uint64 {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// hardlinkTree makes a small profile with a big file, a small one, a
// hard-linked pair and a symlink.
func hardlinkTree(t *testing.T, root string) {
	t.Helper()
	writeFile(t, filepath.Join(root, "home/alice/Documents/big.bin"), rnd(11, 3<<20), 0o640)
	writeFile(t, filepath.Join(root, "home/alice/notes.txt"), []byte("remember the milk\n"), 0o600)
	writeFile(t, filepath.Join(root, "home/alice/h1"), []byte("one inode, two names\n"), 0o644)
	if err := os.Link(filepath.Join(root, "home/alice/h1"), filepath.Join(root, "home/alice/h2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("Documents/big.bin", filepath.Join(root, "home/alice/link")); err != nil {
		t.Fatal(err)
	}
	// Linked files' xattrs are read through the store's link: a restore
	// that copies (another filesystem, an ingested record) must still
	// apply them.
	setXattr(t, filepath.Join(root, "home/alice/notes.txt"), "user.origin", []byte("kitchen"))
	setXattr(t, filepath.Join(root, "home/alice/Documents"), "user.folder", []byte("docs"))
	if os.Geteuid() == 0 {
		// A profile is its user's: restore gives root-owned files in one
		// to the profile's owner unless --allow-system.
		chownTree(t, filepath.Join(root, "home/alice"), 1000, 1000)
	}
	stampTimes(t, root)
}

type hardlinkCapture struct {
	captureOut
	Linked   uint64 `json:"linked_files"`
	Cloned   uint64 `json:"cloned_files"`
	Fallback uint64 `json:"link_fallback_files"`
}

// TestE2ECaptureChunksUnlessAskedToLink: a capture is a chunked copy unless
// the user asks for hard links, even with the store on the same filesystem
// as the data; --hardlink auto links there.
func TestE2ECaptureChunksUnlessAskedToLink(t *testing.T) {
	t.Parallel()
	dir := tmpDir(t)
	root := filepath.Join(dir, "root")
	hardlinkTree(t, root)
	store := newStore(t) // in the test's temp dir, beside the data
	var c hardlinkCapture
	smpJSON(t, 0, &c, "capture", "--store", store, "--computer", "pc1", "--root", root, "--json")
	if c.Files != 4 || c.Linked+c.Cloned != 0 || c.NewBytes == 0 {
		t.Fatalf("capture without --hardlink: %d files, %d linked, %d cloned, %d new bytes; want all 4 chunked", c.Files, c.Linked, c.Cloned, c.NewBytes)
	}
	if sets, _ := os.ReadDir(filepath.Join(store, "links")); len(sets) != 0 {
		t.Fatalf("capture without --hardlink left %d link sets", len(sets))
	}
	smpJSON(t, 0, &c, "capture", "--store", store, "--computer", "pc2", "--root", root, "--json", "--hardlink", "auto")
	if c.Files != 4 || c.Linked+c.Cloned != c.Files {
		t.Fatalf("--hardlink auto on the same filesystem: %d files, %d linked, %d cloned; want all 4 placed by link", c.Files, c.Linked, c.Cloned)
	}
	if sets, _ := os.ReadDir(filepath.Join(store, "links")); len(sets) != 1 {
		t.Fatalf("--hardlink auto made %d link sets, want 1", len(sets))
	}
	r := smp(t, "capture", "--store", store, "--computer", "pc3", "--root", root, "--hardlink-dedupe")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--hardlink auto") {
		t.Fatalf("--hardlink-dedupe without a link mode: %v", r)
	}
}

func TestE2EHardlinkCaptureRestoreRm(t *testing.T) {
	t.Parallel()
	dir := tmpDir(t)
	root := filepath.Join(dir, "root")
	hardlinkTree(t, root)
	store := newStore(t)
	// The store and the data share one filesystem (the test's temp dir).
	var c hardlinkCapture
	smpJSON(t, 0, &c, "capture", "--store", store, "--computer", "pc1", "--root", root, "--json", "--hardlink", "auto")
	if c.Linked+c.Cloned != c.Files || c.Files != 4 || c.Fallback != 0 {
		t.Fatalf("capture: %d files, %d linked, %d cloned, %d chunked; want all 4 linked or cloned", c.Files, c.Linked, c.Cloned, c.Fallback)
	}
	if c.NewBytes != 0 {
		t.Fatalf("hard-link capture read and stored %d bytes of file data", c.NewBytes)
	}
	if c.Linked > 0 {
		// Hard links: the store holds the very inodes of the user's files.
		objs := map[uint64]bool{}
		filepath.WalkDir(filepath.Join(store, "links"), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				objs[inode(t, p)] = true
			}
			return nil
		})
		for _, f := range []string{"Documents/big.bin", "notes.txt", "h1"} {
			if !objs[inode(t, filepath.Join(root, "home/alice", f))] {
				t.Errorf("%s: no store object shares its inode", f)
			}
		}
	}

	target := filepath.Join(dir, "restored")
	out, _ := restoreJSON(t, 0, store, "--computer", "pc1", "--root", target)
	if out.Files != 4 {
		t.Fatalf("restored %d files, want 4", out.Files)
	}
	compareTrees(t, root, target, compareOpts{owners: true})
	if c.Linked > 0 {
		for _, f := range []string{"Documents/big.bin", "notes.txt"} {
			if a, b := inode(t, filepath.Join(root, "home/alice", f)), inode(t, filepath.Join(target, "home/alice", f)); a != b {
				t.Errorf("%s restored as inode %d, want the captured inode %d (linked into place)", f, b, a)
			}
		}
	}

	// The OS reinstall deletes the user's names; the store's links keep the
	// data, and the record still restores.
	target2 := filepath.Join(dir, "after-wipe")
	saved := filepath.Join(dir, "saved")
	if err := exec.Command("cp", "-a", root, saved).Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "home")); err != nil {
		t.Fatal(err)
	}
	restoreJSON(t, 0, store, "--computer", "pc1", "--root", target2)
	compareTrees(t, saved, target2, compareOpts{owners: true})

	// rm removes only the store's names: the restored files stay intact.
	before := readFile(t, filepath.Join(target, "home/alice/notes.txt"))
	mustSMP(t, "rm", "--store", store, "--record", c.Record)
	if _, err := os.Stat(filepath.Join(store, "links")); !os.IsNotExist(err) {
		t.Errorf("links directory left after rm: %v", err)
	}
	if got := readFile(t, filepath.Join(target, "home/alice/notes.txt")); got != before {
		t.Errorf("rm changed a user's file: %q", got)
	}
	compareTrees(t, saved, target2, compareOpts{owners: true})
}

func TestE2EHardlinkDetectsModifiedFile(t *testing.T) {
	t.Parallel()
	dir := tmpDir(t)
	root := filepath.Join(dir, "root")
	hardlinkTree(t, root)
	store := newStore(t)
	for _, dedupe := range []bool{false, true} {
		args := []string{"capture", "--store", store, "--computer", "pc1", "--root", root, "--json", "--hardlink", "auto"}
		if dedupe {
			args = append(args, "--hardlink-dedupe")
		}
		var c hardlinkCapture
		smpJSON(t, 0, &c, args...)
		if c.Linked == 0 {
			t.Skip("filesystem clones instead of hard-linking: the user's edit cannot reach the store copy")
		}
		// The user edits a file after capture: through the shared inode the
		// store copy changes too, and restore must notice.
		p := filepath.Join(root, "home/alice/notes.txt")
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("and the eggs\n")
		f.Close()
		out, _ := restoreJSON(t, exitPartial, store, "--record", c.Record, "--root", filepath.Join(dir, "r", c.Record[:8]))
		if out.Errors != 1 || len(out.Problems) != 1 || !strings.Contains(out.Problems[0], "notes.txt") || !strings.Contains(out.Problems[0], "changed since capture") {
			t.Fatalf("dedupe=%v: modified file not reported: %+v", dedupe, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "r", c.Record[:8], "home/alice/notes.txt")); !os.IsNotExist(err) {
			t.Fatalf("modified file was restored anyway")
		}
		if out.Files != 3 {
			t.Fatalf("other files not restored: %d", out.Files)
		}
	}
}

func TestE2EHardlinkAcrossFilesystems(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs for a second filesystem")
	}
	dir := tmpDir(t)
	mnt := filepath.Join(dir, "tmpfs")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=64m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): cross-filesystem fallback not tested", err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)
	root := filepath.Join(mnt, "root")
	hardlinkTree(t, root)
	store := newStore(t) // on the test's disk, not the tmpfs

	r := smp(t, "capture", "--store", store, "--computer", "pc1", "--root", root, "--hardlink", "always")
	if r.code != exitError || !strings.Contains(r.stderr, "cannot hard-link or clone") {
		t.Fatalf("--hardlink always across filesystems: %v", r)
	}
	if recs := listRecords(t, store); len(recs) != 0 {
		t.Fatalf("failed capture left %d records", len(recs))
	}
	var c hardlinkCapture
	smpJSON(t, 0, &c, "capture", "--store", store, "--computer", "pc1", "--root", root, "--json", "--hardlink", "auto")
	if c.Linked+c.Cloned != 0 || c.Fallback != c.Files || c.NewBytes == 0 {
		t.Fatalf("auto across filesystems: %+v; want every file chunked", c)
	}
	// And a hard-link record restored onto another filesystem is copied.
	store2 := filepath.Join(dir, "store2")
	mustSMP(t, "init", "--store", store2)
	src := filepath.Join(dir, "src2")
	hardlinkTree(t, src)
	smpJSON(t, 0, &c, "capture", "--store", store2, "--computer", "pc2", "--root", src, "--json", "--hardlink", "auto")
	target := filepath.Join(mnt, "restored")
	out, _ := restoreJSON(t, 0, store2, "--computer", "pc2", "--root", target)
	if out.Files != 4 {
		t.Fatalf("restored %d files onto the tmpfs, want 4", out.Files)
	}
	compareTrees(t, src, target, compareOpts{owners: true})
}

func listRecords(t testing.TB, store string) []json.RawMessage {
	t.Helper()
	var out struct {
		Records []json.RawMessage `json:"records"`
	}
	smpJSON(t, 0, &out, "records", "--store", store, "--json")
	return out.Records
}

func TestE2EHardlinkIngest(t *testing.T) {
	t.Parallel()
	dir := tmpDir(t)
	root := filepath.Join(dir, "root")
	hardlinkTree(t, root)
	store := newStore(t)
	var c hardlinkCapture
	smpJSON(t, 0, &c, "capture", "--store", store, "--computer", "pc1", "--root", root, "--json", "--hardlink", "auto")
	var in struct {
		Record   string `json:"record"`
		Replaces string `json:"replaces"`
		Ingested uint64 `json:"ingested_files"`
		NewBytes uint64 `json:"new_bytes"`
	}
	smpJSON(t, 0, &in, "ingest", "--store", store, "--record", c.Record, "--json")
	if in.Replaces != c.Record || in.Ingested != 4 || in.NewBytes == 0 {
		t.Fatalf("ingest: %+v", in)
	}
	if recs := listRecords(t, store); len(recs) != 1 {
		t.Fatalf("%d records after ingest, want 1", len(recs))
	}
	if _, err := os.Stat(filepath.Join(store, "links")); !os.IsNotExist(err) {
		t.Errorf("links left after ingest: %v", err)
	}
	// The ingested record no longer needs the user's files.
	saved := filepath.Join(dir, "saved")
	if err := exec.Command("cp", "-a", root, saved).Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "home/alice/notes.txt"), []byte("overwritten\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "restored")
	restoreJSON(t, 0, store, "--record", in.Record, "--root", target)
	compareTrees(t, saved, target, compareOpts{owners: true})
	mustSMP(t, "verify", "--store", store, "--read-data")
	// A record without links cannot be ingested again.
	r := smp(t, "ingest", "--store", store, "--record", in.Record)
	if r.code != exitError || !strings.Contains(r.stderr, "nothing to ingest") {
		t.Fatalf("second ingest: %v", r)
	}
}

// TestE2EHardlinkClonesOnXFS: on a reflink filesystem capture clones
// instead of hard-linking, so an edit of the user's file after capture can
// no longer reach the store's copy: the record restores what was captured.
func TestE2EHardlinkClonesOnXFS(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to loop-mount an XFS image")
	}
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		t.Skip("mkfs.xfs not installed (apt-get install xfsprogs; .ci/run does): clone path not tested")
	}
	dir := tmpDir(t)
	img := filepath.Join(dir, "xfs.img")
	mnt := filepath.Join(dir, "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 512<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.xfs", "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.xfs: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount here (%v: %s): clone path not tested", err, out)
	}
	defer exec.Command("umount", "-l", mnt).Run()
	root := filepath.Join(mnt, "root")
	hardlinkTree(t, root)
	store := filepath.Join(mnt, "store")
	mustSMP(t, "init", "--store", store)
	var c hardlinkCapture
	smpJSON(t, 0, &c, "capture", "--store", store, "--computer", "pc1", "--root", root, "--json", "--hardlink", "always")
	if c.Cloned != c.Files || c.Linked != 0 {
		t.Fatalf("XFS capture: %d files, %d cloned, %d hard-linked; want all cloned", c.Files, c.Cloned, c.Linked)
	}
	saved := filepath.Join(dir, "saved")
	if err := exec.Command("cp", "-a", root, saved).Run(); err != nil {
		t.Fatal(err)
	}
	// Same size, new bytes and mtime: a hard link would make this record
	// unrestorable for that file; a clone keeps the captured bytes.
	if err := os.WriteFile(filepath.Join(root, "home/alice/notes.txt"), []byte("REMEMBER THE MILK\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(mnt, "restored")
	restoreJSON(t, 0, store, "--computer", "pc1", "--root", target)
	compareTrees(t, saved, target, compareOpts{owners: true})
}

// TestE2EGCRemovesOrphanLinkSets: a link set no record names (a capture
// killed before committing) is removed by gc; a live record's set stays.
func TestE2EGCRemovesOrphanLinkSets(t *testing.T) {
	t.Parallel()
	dir := tmpDir(t)
	root := filepath.Join(dir, "root")
	hardlinkTree(t, root)
	store := newStore(t)
	var c hardlinkCapture
	smpJSON(t, 0, &c, "capture", "--store", store, "--computer", "pc1", "--root", root, "--json", "--hardlink", "auto")
	orphan := filepath.Join(store, "links", "20260101T000000Z-0000000000000000", "0")
	if err := os.MkdirAll(orphan, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, "home/alice/notes.txt"), filepath.Join(orphan, "1")); err != nil {
		t.Fatal(err)
	}
	var gc struct {
		Orphans []string `json:"orphan_link_sets"`
	}
	smpJSON(t, 0, &gc, "gc", "--store", store, "--grace", "0", "--json")
	if len(gc.Orphans) != 1 {
		t.Fatalf("orphans %v", gc.Orphans)
	}
	if _, err := os.Stat(filepath.Dir(orphan)); !os.IsNotExist(err) {
		t.Fatalf("orphan link set still there: %v", err)
	}
	if got := readFile(t, filepath.Join(root, "home/alice/notes.txt")); got != "remember the milk\n" {
		t.Fatalf("user's file changed: %q", got)
	}
	restoreJSON(t, 0, store, "--record", c.Record, "--root", filepath.Join(dir, "out"))
}

// TestE2EHardlinkRestoreOverExisting: linking straight into place must not
// bypass the overwrite rules or follow a symlink planted at a file's name.
func TestE2EHardlinkRestoreOverExisting(t *testing.T) {
	t.Parallel()
	dir := tmpDir(t)
	root := filepath.Join(dir, "root")
	hardlinkTree(t, root)
	store := newStore(t)
	var c hardlinkCapture
	smpJSON(t, 0, &c, "capture", "--store", store, "--computer", "pc1", "--root", root, "--json", "--hardlink", "auto")
	if c.Linked == 0 {
		t.Skip("the filesystem cloned instead of linking; the link fast path is not used")
	}
	target := filepath.Join(dir, "restored")
	notes := filepath.Join(target, "home/alice/notes.txt")
	outside := filepath.Join(dir, "outside.txt")
	writeFile(t, outside, []byte("not the user's file\n"), 0o644)
	writeFile(t, filepath.Join(target, "home/alice/h1"), []byte("in the way\n"), 0o644)
	mkdirs(t, filepath.Join(target, "home/alice"))
	if err := os.Symlink(outside, notes); err != nil {
		t.Fatal(err)
	}
	// Default: existing names are left alone (exit 3: not all restored).
	out, r := restoreJSON(t, exitPartial, store, "--computer", "pc1", "--root", target, "--keep")
	if out.Skipped == 0 || readFile(t, filepath.Join(target, "home/alice/h1")) != "in the way\n" {
		t.Fatalf("existing files replaced without --overwrite: %+v\n%s", out, r)
	}
	// --overwrite always replaces them, by the captured inode, and writes
	// nothing through the symlink.
	restoreJSON(t, exitOK, store, "--computer", "pc1", "--root", target, "--overwrite", "always")
	if got := readFile(t, outside); got != "not the user's file\n" {
		t.Fatalf("restore wrote through a planted symlink: %q", got)
	}
	for _, f := range []string{"notes.txt", "h1"} {
		if a, b := inode(t, filepath.Join(root, "home/alice", f)), inode(t, filepath.Join(target, "home/alice", f)); a != b {
			t.Errorf("%s: inode %d after overwrite, want the captured %d", f, b, a)
		}
	}
	compareTrees(t, root, target, compareOpts{owners: true})
}

// TestE2EStatsHardlinkRecords: stats reports the files held by links apart
// and leaves their bytes out of the dedupe ratio, which would otherwise
// credit the packs with data they do not hold.
func TestE2EStatsHardlinkRecords(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	hardlinkTree(t, root)
	store := newStore(t)
	var linked hardlinkCapture
	smpJSON(t, 0, &linked, "capture", "--store", store, "--computer", "pc1", "--root", root, "--json", "--hardlink", "always")
	type linkStats struct {
		statsOut
		LinkRecords     int    `json:"link_records"`
		LinkedFiles     uint64 `json:"linked_files"`
		LinkRecordBytes uint64 `json:"link_record_bytes"`
	}
	var s linkStats
	smpJSON(t, 0, &s, "stats", "--store", store, "--json")
	if s.LinkRecords != 1 || s.LinkedFiles != linked.Files || s.LinkRecordBytes != linked.Bytes || s.LogicalBytes != linked.Bytes {
		t.Errorf("stats after a hard-link capture: %+v; want 1 link record of %d files, %d bytes", s, linked.Files, linked.Bytes)
	}
	if s.DedupeRatio != 0 {
		t.Errorf("dedupe_ratio %v with only a hard-link record, want 0 (nothing chunked)", s.DedupeRatio)
	}
	if out := mustSMP(t, "stats", "--store", store).stdout; !strings.Contains(out, "hard-link") || !strings.Contains(out, "dedupe ratio   -") {
		t.Errorf("stats text does not show the hard-link record apart:\n%s", out)
	}

	var chunked captureOut
	smpJSON(t, 0, &chunked, "capture", "--store", store, "--computer", "pc2", "--root", root, "--json", "--hardlink", "never")
	smpJSON(t, 0, &s, "stats", "--store", store, "--json")
	if s.Records != 2 || s.LinkRecords != 1 || s.LogicalBytes != linked.Bytes+chunked.Bytes {
		t.Fatalf("stats after a chunked capture too: %+v", s)
	}
	if want := float64(chunked.Bytes) / float64(s.StoredBytes); s.DedupeRatio < want*0.999 || s.DedupeRatio > want*1.001 {
		t.Errorf("dedupe_ratio %v, want the chunked record's bytes / stored = %v", s.DedupeRatio, want)
	}
}

// TestE2EHardlinkParent: a --hardlink always capture starts before the
// store's index is open and looks its parent record up only at commit;
// the record must still name the computer's previous record as parent.
func TestE2EHardlinkParent(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	hardlinkTree(t, root)
	store := newStore(t)
	var first, second, other hardlinkCapture
	smpJSON(t, 0, &first, "capture", "--store", store, "--computer", "pc1", "--root", root, "--json", "--hardlink", "always")
	smpJSON(t, 0, &other, "capture", "--store", store, "--computer", "pc2", "--root", root, "--json", "--hardlink", "always")
	smpJSON(t, 0, &second, "capture", "--store", store, "--computer", "pc1", "--root", root, "--json", "--hardlink", "always")
	var recs struct {
		Records []struct {
			ID     string `json:"id"`
			Parent string `json:"parent"`
		} `json:"records"`
	}
	smpJSON(t, 0, &recs, "records", "--store", store, "--json")
	parents := map[string]string{}
	for _, r := range recs.Records {
		parents[r.ID] = r.Parent
	}
	for _, tc := range []struct{ name, rec, want string }{
		{"first capture of pc1", first.Record, ""},
		{"first capture of pc2", other.Record, ""},
		{"second capture of pc1", second.Record, first.Record},
	} {
		if got, ok := parents[tc.rec]; !ok || got != tc.want {
			t.Errorf("%s: parent %q (listed %v), want %q", tc.name, got, ok, tc.want)
		}
	}
}
