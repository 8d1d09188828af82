package main

// End-to-end tests: they run the real smp binary (built once by TestMain in
// e2e_helpers_test.go) on real temporary trees and check what it writes,
// prints and exits with.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"smp/cas"
)

// profileTree describes what buildProfileTree made.
type profileTree struct {
	xattrs   bool   // user xattrs were set
	owned    bool   // entries were chowned to other users (running as root)
	bigFile  string // relative path of the sparse-ish file
	hardA    string // relative paths of the hard-link pair
	hardB    string
	symlinks int
}

// buildProfileTree makes ROOT/home/alice and ROOT/home/bob holding every
// kind of entry smp captures: nested and empty directories, names with
// spaces and non-ASCII characters, symlinks to a file, to a directory,
// dangling and absolute, a hard-link pair, a sparse-ish file of bigSize
// bytes, an empty file, assorted modes (setgid, setuid and sticky
// included), user xattrs, distinct owners (as root) and distinct past
// mtimes with nanoseconds.
func buildProfileTree(t testing.TB, root string, bigSize int64) profileTree {
	t.Helper()
	info := profileTree{
		bigFile: "home/alice/big.img",
		hardA:   "home/alice/Documents/hard1.txt",
		hardB:   "home/alice/hard2.txt",
	}
	home := filepath.Join(root, "home")
	alice := filepath.Join(home, "alice")
	bob := filepath.Join(home, "bob")
	modes := map[string]os.FileMode{}
	file := func(rel string, data string, mode os.FileMode) {
		writeFile(t, filepath.Join(root, rel), []byte(data), 0o644)
		modes[rel] = mode
	}
	dir := func(rel string, mode os.FileMode) {
		mkdirs(t, filepath.Join(root, rel))
		modes[rel] = mode
	}
	link := func(target, rel string) {
		if err := os.Symlink(target, filepath.Join(root, rel)); err != nil {
			t.Fatal(err)
		}
		info.symlinks++
	}

	dir("home/alice", 0o750)
	dir("home/bob", 0o755)
	file("home/alice/Documents/résumé final.txt", strings.Repeat("Curriculum vitae — Alice\n", 40), 0o640)
	file("home/alice/Documents/notes.txt", "remember the milk\n", 0o600)
	file("home/alice/Documents/empty.txt", "", 0o644)
	file("home/alice/Documents/deep/a/b/c/leaf.txt", "deep leaf\n", 0o644)
	file("home/alice/日本語/日本語.txt", "こんにちは世界\n", 0o644)
	file("home/alice/a b/x y.txt", "spaces everywhere\n", 0o644)
	dir("home/alice/a b/empty inner", 0o755)
	dir("home/alice/empty_dir", 0o755)
	dir("home/alice/private", 0o700)
	file("home/alice/private/secret.txt", "hunter2\n", 0o600)
	dir("home/alice/shared", 0o775|os.ModeSetgid)
	file("home/alice/shared/f.txt", "group file\n", 0o664)
	dir("home/alice/shared/sub", 0o775|os.ModeSetgid)
	dir("home/alice/sticky", 0o777|os.ModeSticky)
	file("home/alice/bin/run.sh", "#!/bin/sh\necho hello\n", 0o755)
	file("home/alice/bin/suid-tool", "#!/bin/sh\nid\n", 0o750|os.ModeSetuid)
	file("home/alice/xattr.txt", "has attributes\n", 0o644)
	file(info.hardA, "one inode, two names\n", 0o644)
	if err := os.Link(filepath.Join(root, info.hardA), filepath.Join(root, info.hardB)); err != nil {
		t.Fatal(err)
	}
	link("Documents/notes.txt", "home/alice/link_to_file")
	link("Documents", "home/alice/link_to_dir")
	link("does/not/exist", "home/alice/dangling")
	dir("home/alice/readonly", 0o555)
	file("home/alice/readonly/ro.txt", "read only\n", 0o444)
	file("home/alice/zeros.bin", string(make([]byte, 3<<20)), 0o644)
	file("home/alice/trailing-zeros.bin", string(rnd(5, 100))+string(make([]byte, 5<<20)), 0o644)
	file("home/bob/.hidden", "dot file\n", 0o600)
	// Odd but legal names: newline, backslash, leading dash, tabs, leading
	// and trailing spaces. (Names that are not UTF-8: TestE2ENonUTF8Names.)
	for _, name := range []string{"line\nbreak.txt", "back\\slash", "-dash", "tab\there", "  spaced  ", "quote\"'.txt"} {
		file("home/bob/odd/"+name, name+"\n", 0o644)
	}
	file("home/bob/.config/app/settings.json", `{"theme":"dark"}`+"\n", 0o644)
	file("home/bob/notes.txt", "bob's notes\n", 0o644)
	link("/etc/hostname", "home/bob/absolute_link")

	// The sparse-ish file: a few random regions in a sea of zeros.
	big := filepath.Join(root, info.bigFile)
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(bigSize); err != nil {
		t.Fatal(err)
	}
	region := min(int64(512<<10), bigSize/8)
	for i, off := range []int64{0, bigSize * 3 / 10, bigSize * 6 / 10, bigSize - region/2} {
		if _, err := f.WriteAt(rnd(uint64(100+i), int(min(region, bigSize-off))), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	modes[info.bigFile] = 0o644

	// Extended attributes, on a file and on a directory.
	info.xattrs = setXattr(t, filepath.Join(alice, "xattr.txt"), "user.comment", []byte("café"))
	if info.xattrs {
		setXattr(t, filepath.Join(alice, "xattr.txt"), "user.binary", []byte{0, 1, 2, 255})
		setXattr(t, filepath.Join(alice, "Documents"), "user.folder", []byte("docs"))
	} else {
		t.Log("user xattrs are not supported on this filesystem: not checking them")
	}

	// Owners (root only): alice's tree to a named user, bob's to ids that
	// have no name on this system.
	if os.Geteuid() == 0 {
		info.owned = true
		chownTree(t, alice, 1000, 1000)
		chownTree(t, bob, 4242, 4343)
	}
	// Modes last: chown clears setuid and setgid.
	for rel, m := range modes {
		if err := os.Chmod(filepath.Join(root, rel), m); err != nil {
			t.Fatal(err)
		}
	}
	stampTimes(t, home)
	return info
}

func chownTree(t testing.TB, dir string, uid, gid int) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestE2ERoundTrip captures a tree holding every kind of entry and checks
// that restore reproduces it exactly.
func TestE2ERoundTrip(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	const bigSize = 40 << 20
	info := buildProfileTree(t, root, bigSize)
	store := newStore(t)

	c := doCapture(t, exitOK, store, "pc1", "--root", root, "home")
	files := regularFiles(t, root)
	if c.Files != uint64(len(files)) || c.Errors != 0 || c.Symlinks != uint64(info.symlinks) {
		t.Errorf("capture counted %d files, %d symlinks, %d errors; want %d, %d, 0", c.Files, c.Symlinks, c.Errors, len(files), info.symlinks)
	}
	if !slices.Equal(c.Users, []string{"alice", "bob"}) {
		t.Errorf("capture users = %q, want [alice bob]", c.Users)
	}

	target := filepath.Join(tmpDir(t), "target")
	r, _ := restoreJSON(t, exitOK, store, "--computer", "pc1", "--root", target)
	if r.Files != uint64(len(files)) || r.Errors != 0 || r.Skipped != 0 {
		t.Errorf("restore: %d files, %d errors, %d skipped; want %d, 0, 0", r.Files, r.Errors, r.Skipped, len(files))
	}
	compared := compareTrees(t, root, target, compareOpts{owners: os.Geteuid() == 0, policy: true})
	if len(compared) < 40 {
		t.Errorf("compared only %d entries: %q", len(compared), compared)
	}

	// Spot checks of what compareTrees covers generically, so a helper bug
	// cannot hide a restore bug.
	a, err := os.Stat(filepath.Join(target, info.hardA))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.Stat(filepath.Join(target, info.hardB))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(a, b) {
		t.Errorf("%s and %s are not hard-linked after restore", info.hardA, info.hardB)
	}
	if st, err := os.Stat(filepath.Join(target, "home/alice/shared")); err != nil || st.Mode()&os.ModeSetgid == 0 || st.Mode().Perm() != 0o775 {
		t.Errorf("setgid directory restored as %v (%v)", st.Mode(), err)
	}
	if st, err := os.Stat(filepath.Join(target, "home/alice/private")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("private directory restored as %v (%v)", st.Mode(), err)
	}
	if tgt, err := os.Readlink(filepath.Join(target, "home/alice/dangling")); err != nil || tgt != "does/not/exist" {
		t.Errorf("dangling symlink restored as %q (%v)", tgt, err)
	}
	if info.xattrs {
		x, err := xattrs(filepath.Join(target, "home/alice/xattr.txt"))
		if err != nil || x["user.comment"] != "café" || x["user.binary"] != "\x00\x01\x02\xff" {
			t.Errorf("xattrs restored as %q (%v)", x, err)
		}
	}
	if info.owned {
		st, err := os.Lstat(filepath.Join(target, "home/bob/absolute_link"))
		if err != nil {
			t.Fatal(err)
		}
		if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 4242 || sys.Gid != 4343 {
			t.Errorf("bob's symlink restored owned by %d:%d, want 4242:4343", sys.Uid, sys.Gid)
		}
	}
	// Zero chunks are restored as holes: the big file must stay sparse.
	st, err := os.Stat(filepath.Join(target, info.bigFile))
	if err != nil {
		t.Fatal(err)
	}
	alloc := st.Sys().(*syscall.Stat_t).Blocks * 512
	if alloc > bigSize/2 {
		t.Errorf("%s: %d of %d bytes allocated after restore; zero regions should be holes", info.bigFile, alloc, bigSize)
	}
	t.Logf("compared %d entries; %s restored with %d of %d bytes allocated", len(compared), info.bigFile, alloc, bigSize)
}

// TestE2EJSONOutput checks the keys and the values of capture --json and
// stats --json.
func TestE2EJSONOutput(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	text := goSource(t, 1<<20)
	random := rnd(7, 300<<10)
	writeFile(t, filepath.Join(root, "home/alice/src.txt"), text, 0o644)
	writeFile(t, filepath.Join(root, "home/alice/random.bin"), random, 0o644)
	writeFile(t, filepath.Join(root, "home/alice/small.txt"), []byte("hello\n"), 0o644)
	writeFile(t, filepath.Join(root, "home/bob/b.txt"), []byte("bob\n"), 0o644)
	total := uint64(len(text) + len(random) + 6 + 4)
	store := newStore(t)

	res := mustSMP(t, "capture", "--store", store, "--computer", "pc1", "--hardlink", "never", "--root", root, "--json")
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(res.stdout), &raw); err != nil {
		t.Fatalf("capture --json: %v\n%s", err, res)
	}
	for _, k := range []string{"record", "files", "bytes", "new_bytes", "stored_bytes", "errors", "seconds", "unchanged_files"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("capture --json lacks %q: %s", k, res.stdout)
		}
	}
	var c captureOut
	if err := json.Unmarshal([]byte(res.stdout), &c); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(c.Record) {
		t.Errorf("record %q is not a 64-digit hex ID", c.Record)
	}
	if c.Files != 4 || c.Bytes != total || c.Errors != 0 || len(c.Problems) != 0 || c.UnchangedFiles != 0 {
		t.Errorf("capture: files %d bytes %d errors %d problems %q unchanged %d; want 4, %d, 0, none, 0",
			c.Files, c.Bytes, c.Errors, c.Problems, c.UnchangedFiles, total)
	}
	if c.NewBytes != total {
		t.Errorf("new_bytes %d, want %d (a first capture of distinct files stores everything)", c.NewBytes, total)
	}
	// Go source compresses; random bytes do not.
	if c.StoredBytes >= c.NewBytes || c.StoredBytes < uint64(len(random)) {
		t.Errorf("stored_bytes %d: want compression below new_bytes %d but at least the %d random bytes", c.StoredBytes, c.NewBytes, len(random))
	}
	if c.Seconds <= 0 || c.Seconds > 60 {
		t.Errorf("seconds = %v", c.Seconds)
	}
	if !slices.Equal(c.Users, []string{"alice", "bob"}) || c.Computer != "pc1" {
		t.Errorf("computer %q users %q", c.Computer, c.Users)
	}

	res = mustSMP(t, "stats", "--store", store, "--json")
	raw = nil
	if err := json.Unmarshal([]byte(res.stdout), &raw); err != nil {
		t.Fatalf("stats --json: %v\n%s", err, res)
	}
	for _, k := range []string{"records", "logical_bytes", "unique_bytes", "stored_bytes", "chunks", "dedupe_ratio"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("stats --json lacks %q: %s", k, res.stdout)
		}
	}
	var s statsOut
	if err := json.Unmarshal([]byte(res.stdout), &s); err != nil {
		t.Fatal(err)
	}
	if s.Records != 1 || s.LogicalBytes != c.Bytes || s.UniqueBytes != c.NewBytes {
		t.Errorf("stats: records %d logical %d unique %d; want 1, %d, %d", s.Records, s.LogicalBytes, s.UniqueBytes, c.Bytes, c.NewBytes)
	}
	if s.StoredBytes < c.StoredBytes {
		t.Errorf("stats stored_bytes %d below the capture's %d (packs also hold trees and headers)", s.StoredBytes, c.StoredBytes)
	}
	if s.Chunks < 4 || s.Chunks > 20 {
		t.Errorf("stats chunks %d: want at least one per file and few in all", s.Chunks)
	}
	if want := float64(s.LogicalBytes) / float64(s.StoredBytes); s.DedupeRatio < want*0.999 || s.DedupeRatio > want*1.001 {
		t.Errorf("dedupe_ratio %v, want logical/stored = %v", s.DedupeRatio, want)
	}
}

// TestE2EDedupe captures two users holding the same large files from two
// computers: the store keeps the shared data once.
func TestE2EDedupe(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	// 6 MiB of Go source and 14 MiB of random bytes: compression alone
	// cannot bring two copies below 0.6x, deduplication can.
	text := goSource(t, 6<<20)
	random := rnd(42, 14<<20)
	for _, u := range []string{"alice", "bob"} {
		home := filepath.Join(root, "home", u)
		writeFile(t, filepath.Join(home, "shared/go.txt"), text, 0o644)
		writeFile(t, filepath.Join(home, "shared/blob.bin"), random, 0o644)
		writeFile(t, filepath.Join(home, "own-"+u+".txt"), []byte("only "+u+"\n"), 0o644)
	}
	// bob keeps his copies somewhere else, with other times.
	if err := os.Rename(filepath.Join(root, "home/bob/shared"), filepath.Join(root, "home/bob/copy of shared")); err != nil {
		t.Fatal(err)
	}
	stampTimes(t, filepath.Join(root, "home"))
	store := newStore(t)

	ca := doCapture(t, exitOK, store, "pc-a", "--root", root, "--user", "alice")
	cb := doCapture(t, exitOK, store, "pc-b", "--root", root, "--user", "bob")
	if !slices.Equal(ca.Users, []string{"alice"}) || !slices.Equal(cb.Users, []string{"bob"}) {
		t.Errorf("users: %q and %q", ca.Users, cb.Users)
	}
	for _, p := range filePaths(t, store, ca.Record, "file") {
		if !strings.HasPrefix(p, "home/alice/") {
			t.Errorf("alice's record holds %s", p)
		}
	}
	shared := uint64(len(text) + len(random))
	if cb.Bytes < shared || cb.NewBytes > 64<<10 {
		t.Errorf("bob's capture: %d bytes, %d new; want >= %d and almost nothing new", cb.Bytes, cb.NewBytes, shared)
	}
	s := stats(t, store)
	if s.Records != 2 || s.LogicalBytes != ca.Bytes+cb.Bytes {
		t.Errorf("stats: %d records, %d logical bytes; want 2, %d", s.Records, s.LogicalBytes, ca.Bytes+cb.Bytes)
	}
	if float64(s.StoredBytes) >= 0.6*float64(s.LogicalBytes) {
		t.Errorf("stored_bytes %d is not well below logical_bytes %d (%.2fx)", s.StoredBytes, s.LogicalBytes, float64(s.StoredBytes)/float64(s.LogicalBytes))
	}
	if float64(s.UniqueBytes) > 0.55*float64(s.LogicalBytes) {
		t.Errorf("unique_bytes %d: shared data stored twice? logical %d", s.UniqueBytes, s.LogicalBytes)
	}
	if s.DedupeRatio < 1.6 {
		t.Errorf("dedupe_ratio %.2f, want > 1.6", s.DedupeRatio)
	}

	// The shared chunks restore into both profiles.
	target := filepath.Join(tmpDir(t), "target")
	mustSMP(t, "restore", "--store", store, "--computer", "pc-b", "--root", target)
	compareTrees(t, filepath.Join(root, "home/bob"), filepath.Join(target, "home/bob"), compareOpts{})
	if _, err := os.Lstat(filepath.Join(target, "home/alice")); !os.IsNotExist(err) {
		t.Errorf("restoring pc-b created home/alice (%v)", err)
	}
}

// TestE2EIncremental captures an unchanged tree again (nothing is read or
// stored) and then a changed one (the new record restores the change).
func TestE2EIncremental(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	writeFile(t, filepath.Join(root, "home/alice/a.txt"), []byte("version 1\n"), 0o644)
	writeFile(t, filepath.Join(root, "home/alice/b.bin"), rnd(3, 2<<20), 0o600)
	writeFile(t, filepath.Join(root, "home/alice/docs/c.txt"), []byte("c\n"), 0o644)
	writeFile(t, filepath.Join(root, "home/alice/docs/empty"), nil, 0o644)
	writeFile(t, filepath.Join(root, "home/bob/d.txt"), []byte("d\n"), 0o644)
	if err := os.Symlink("docs/c.txt", filepath.Join(root, "home/alice/link")); err != nil {
		t.Fatal(err)
	}
	stampTimes(t, filepath.Join(root, "home"))
	store := newStore(t)

	c1 := doCapture(t, exitOK, store, "pc1", "--root", root)
	if c1.Files != 5 || c1.NewBytes == 0 || c1.UnchangedFiles != 0 {
		t.Fatalf("first capture: %+v", c1)
	}
	c2 := doCapture(t, exitOK, store, "pc1", "--root", root)
	if c2.UnchangedFiles != c2.Files || c2.Files != c1.Files || c2.NewBytes != 0 || c2.StoredBytes != 0 || c2.Bytes != c1.Bytes {
		t.Errorf("unchanged capture: files %d unchanged %d new_bytes %d stored_bytes %d bytes %d; want %d, %d, 0, 0, %d",
			c2.Files, c2.UnchangedFiles, c2.NewBytes, c2.StoredBytes, c2.Bytes, c1.Files, c1.Files, c1.Bytes)
	}
	if c2.Record == c1.Record {
		t.Errorf("second capture reused record ID %s", c1.Record)
	}
	// --full reads every file again but still stores nothing new.
	cf := doCapture(t, exitOK, store, "pc1", "--root", root, "--full")
	if cf.UnchangedFiles != 0 || cf.NewBytes != 0 || cf.Files != c1.Files {
		t.Errorf("--full capture: files %d unchanged %d new_bytes %d; want %d, 0, 0", cf.Files, cf.UnchangedFiles, cf.NewBytes, c1.Files)
	}

	// Change one file (new size and mtime).
	changed := filepath.Join(root, "home/alice/a.txt")
	writeFile(t, changed, []byte("version 2, longer\n"), 0o644)
	c3 := doCapture(t, exitOK, store, "pc1", "--root", root)
	if c3.UnchangedFiles != c3.Files-1 || c3.NewBytes == 0 || c3.NewBytes > 64 {
		t.Errorf("capture after one change: files %d unchanged %d new_bytes %d; want %d unchanged and the few new bytes",
			c3.Files, c3.UnchangedFiles, c3.NewBytes, c3.Files-1)
	}
	target := filepath.Join(tmpDir(t), "new")
	mustSMP(t, "restore", "--store", store, "--computer", "pc1", "--root", target)
	if got := readFile(t, filepath.Join(target, "home/alice/a.txt")); got != "version 2, longer\n" {
		t.Errorf("newest record restores a.txt as %q", got)
	}
	compareTrees(t, filepath.Join(root, "home"), filepath.Join(target, "home"), compareOpts{})
	// Metadata-only changes and a deletion are captured too.
	if err := os.Chmod(filepath.Join(root, "home/alice/docs/c.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !setXattr(t, filepath.Join(root, "home/alice/b.bin"), "user.tag", []byte("v4")) {
		t.Log("no user xattrs here: only the mode change is checked")
	}
	if err := os.Remove(filepath.Join(root, "home/bob/d.txt")); err != nil {
		t.Fatal(err)
	}
	stampTimes(t, filepath.Join(root, "home"))
	c4 := doCapture(t, exitOK, store, "pc1", "--root", root)
	if c4.Files != c1.Files-1 || c4.NewBytes != 0 {
		t.Errorf("capture after metadata changes and a deletion: files %d new_bytes %d; want %d, 0", c4.Files, c4.NewBytes, c1.Files-1)
	}
	target = filepath.Join(tmpDir(t), "v4")
	mustSMP(t, "restore", "--store", store, "--record", c4.Record, "--root", target)
	compareTrees(t, filepath.Join(root, "home"), filepath.Join(target, "home"), compareOpts{})

	old := filepath.Join(tmpDir(t), "old")
	mustSMP(t, "restore", "--store", store, "--record", c1.Record, "--root", old)
	if got := readFile(t, filepath.Join(old, "home/alice/a.txt")); got != "version 1\n" {
		t.Errorf("first record restores a.txt as %q", got)
	}

	t.Run("hardlinks", func(t *testing.T) {
		root := filepath.Join(tmpDir(t), "root")
		writeFile(t, filepath.Join(root, "home/alice/h1"), []byte("linked\n"), 0o644)
		if err := os.Link(filepath.Join(root, "home/alice/h1"), filepath.Join(root, "home/alice/h2")); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, "home/alice/plain"), []byte("plain\n"), 0o644)
		store := newStore(t)
		doCapture(t, exitOK, store, "pc1", "--root", root)
		c := doCapture(t, exitOK, store, "pc1", "--root", root)
		if c.Files != 3 || c.UnchangedFiles != c.Files || c.NewBytes != 0 {
			t.Errorf("unchanged capture with a hard-link pair: files %d unchanged_files %d new_bytes %d; want 3, 3, 0", c.Files, c.UnchangedFiles, c.NewBytes)
		}
	})
}

// TestE2ERestoreOptions covers --map, --include, --exclude, --overwrite,
// record ID prefixes and files --json on one store.
func TestE2ERestoreOptions(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	buildProfileTree(t, root, 1<<20)
	store := newStore(t)
	c := doCapture(t, exitOK, store, "pc1", "--root", root, "home")
	owners := os.Geteuid() == 0
	// Subtests share the store and its lock: they run one after another.

	t.Run("map", func(t *testing.T) {
		target := tmpDir(t)
		// As root, the destination account must exist in the target's own
		// accounts (its etc/passwd, not the host's).
		writeFile(t, filepath.Join(target, "etc/passwd"), []byte("carol:x:1000:1000::/home/carol:/bin/sh\n"), 0o644)
		writeFile(t, filepath.Join(target, "etc/group"), []byte("carol:x:1000:\n"), 0o644)
		mustSMP(t, "restore", "--store", store, "--computer", "pc1", "--root", target, "--map", "home/alice=home/carol")
		if _, err := os.Lstat(filepath.Join(target, "home/alice")); !os.IsNotExist(err) {
			t.Errorf("home/alice exists after mapping it away (%v)", err)
		}
		compareTrees(t, filepath.Join(root, "home/alice"), filepath.Join(target, "home/carol"), compareOpts{owners: owners, policy: true})
		compareTrees(t, filepath.Join(root, "home/bob"), filepath.Join(target, "home/bob"), compareOpts{owners: owners, policy: true})
	})

	t.Run("include", func(t *testing.T) {
		target := tmpDir(t)
		mustSMP(t, "restore", "--store", store, "--computer", "pc1", "--root", target, "--include", "*.txt")
		var want []string
		for _, p := range regularFiles(t, root) {
			if strings.HasSuffix(p, ".txt") {
				want = append(want, p)
			}
		}
		got := regularFiles(t, target)
		if !slices.Equal(got, want) || len(want) < 5 {
			t.Errorf("--include *.txt restored files %q, want %q", got, want)
		}
		for _, p := range listTree(t, target) {
			st, _ := os.Lstat(filepath.Join(target, p))
			if st.Mode()&os.ModeSymlink != 0 {
				t.Errorf("--include *.txt restored symlink %s", p)
			}
		}
		for _, p := range want {
			if readFile(t, filepath.Join(target, p)) != readFile(t, filepath.Join(root, p)) {
				t.Errorf("%s restored with other contents", p)
			}
		}
	})

	t.Run("exclude", func(t *testing.T) {
		target := tmpDir(t)
		mustSMP(t, "restore", "--store", store, "--computer", "pc1", "--root", target, "--exclude", "*.txt", "--exclude", "home/bob")
		if _, err := os.Lstat(filepath.Join(target, "home/bob")); !os.IsNotExist(err) {
			t.Errorf("excluded home/bob was restored (%v)", err)
		}
		for _, p := range listTree(t, target) {
			if strings.HasSuffix(p, ".txt") {
				t.Errorf("excluded %s was restored", p)
			}
		}
		for _, p := range []string{"home/alice/bin/run.sh", "home/alice/big.img", "home/alice/link_to_dir", "home/alice/empty_dir"} {
			if _, err := os.Lstat(filepath.Join(target, p)); err != nil {
				t.Errorf("%s not restored: %v", p, err)
			}
		}
	})

	const local = "home/alice/Documents/notes.txt"
	prepare := func(t *testing.T) string {
		target := tmpDir(t)
		writeFile(t, filepath.Join(target, local), []byte("edited on the new machine\n"), 0o644)
		return target
	}

	t.Run("overwrite-never", func(t *testing.T) {
		target := prepare(t)
		r := smp(t, "restore", "--store", store, "--computer", "pc1", "--root", target) // never is the default
		if r.code != exitPartial || !strings.Contains(r.stderr, "1 path(s) left alone") {
			t.Fatalf("want exit 3 naming the path left alone (as loadstate)\n%s", r)
		}
		if !strings.Contains(r.stderr, filepath.Join(target, local)) || !strings.Contains(r.stderr, "left alone") {
			t.Errorf("the existing file is not reported on stderr:\n%s", r.stderr)
		}
		if got := readFile(t, filepath.Join(target, local)); got != "edited on the new machine\n" {
			t.Errorf("--overwrite never replaced the existing file: %q", got)
		}
		if got := readFile(t, filepath.Join(target, "home/alice/Documents/résumé final.txt")); !strings.HasPrefix(got, "Curriculum") {
			t.Errorf("other files were not restored: %q", got)
		}

		target = prepare(t)
		out, _ := restoreJSON(t, exitPartial, store, "--computer", "pc1", "--root", target, "--overwrite", "never")
		if out.Skipped != 1 || out.Errors != 0 || out.Files != c.Files-1 || len(out.Problems) != 1 || !strings.Contains(out.Problems[0], local) {
			t.Errorf("restore --json: skipped %d errors %d files %d problems %q; want 1, 0, %d, one naming %s", out.Skipped, out.Errors, out.Files, out.Problems, c.Files-1, local)
		}
	})

	t.Run("overwrite-always", func(t *testing.T) {
		target := prepare(t)
		out, _ := restoreJSON(t, exitOK, store, "--computer", "pc1", "--root", target, "--overwrite", "always")
		if out.Skipped != 0 || out.Errors != 0 || out.Files != c.Files {
			t.Errorf("restore: skipped %d errors %d files %d; want 0, 0, %d", out.Skipped, out.Errors, out.Files, c.Files)
		}
		compareTrees(t, root, target, compareOpts{owners: owners, policy: true})
	})

	t.Run("overwrite-older", func(t *testing.T) {
		target := tmpDir(t)
		newer := filepath.Join(target, "home/alice/Documents/notes.txt")
		older := filepath.Join(target, "home/bob/notes.txt")
		writeFile(t, newer, []byte("newer local copy\n"), 0o644)
		writeFile(t, older, []byte("older local copy\n"), 0o644)
		lchtimes(t, older, time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC))
		out, _ := restoreJSON(t, exitPartial, store, "--computer", "pc1", "--root", target, "--overwrite", "older")
		if out.Skipped != 1 || out.Errors != 0 {
			t.Errorf("restore: skipped %d errors %d; want 1, 0", out.Skipped, out.Errors)
		}
		if got := readFile(t, newer); got != "newer local copy\n" {
			t.Errorf("a newer existing file was replaced: %q", got)
		}
		if got, want := readFile(t, older), readFile(t, filepath.Join(root, "home/bob/notes.txt")); got != want {
			t.Errorf("an older existing file was left alone: %q", got)
		}
	})

	t.Run("record-prefix", func(t *testing.T) {
		for _, prefix := range []string{c.Record[:8], strings.ToUpper(c.Record[:12]), c.Record} {
			target := tmpDir(t)
			out, _ := restoreJSON(t, exitOK, store, "--record", prefix, "--root", target)
			if out.Record != c.Record {
				t.Errorf("--record %s restored %s", prefix, out.Record)
			}
			compareTrees(t, root, target, compareOpts{owners: owners, policy: true})
		}
	})

	t.Run("files-json", func(t *testing.T) {
		var f filesOut
		smpJSON(t, exitOK, &f, "files", "--store", store, "--record", c.Record[:10], "--json")
		if f.Record != c.Record {
			t.Errorf("files --json record %q, want %q", f.Record, c.Record)
		}
		want := listTree(t, root)
		var got []string
		for _, e := range f.Files {
			got = append(got, e.Path)
			st, err := os.Lstat(filepath.Join(root, e.Path))
			if err != nil {
				t.Errorf("files lists %q: %v", e.Path, err)
				continue
			}
			typ := map[bool]string{true: "dir", false: "file"}[st.IsDir()]
			if st.Mode()&os.ModeSymlink != 0 {
				typ = "symlink"
				if tgt, _ := os.Readlink(filepath.Join(root, e.Path)); e.Target != tgt {
					t.Errorf("%s: target %q, want %q", e.Path, e.Target, tgt)
				}
			}
			if e.Type != typ {
				t.Errorf("%q: type %q, want %q", e.Path, e.Type, typ)
			}
			if typ == "file" && e.Size != uint64(st.Size()) {
				t.Errorf("%q: size %d, want %d", e.Path, e.Size, st.Size())
			}
			mode := st.Mode().Perm()
			if st.Mode()&os.ModeSetgid != 0 {
				mode |= 0o2000
			}
			if typ != "symlink" && e.Mode != fmt.Sprintf("%04o", uint32(mode)) && st.Mode()&(os.ModeSetuid|os.ModeSticky) == 0 {
				t.Errorf("%q: mode %s, want %04o", e.Path, e.Mode, uint32(mode))
			}
			if mt, err := time.Parse(time.RFC3339Nano, e.MTime); err != nil || !mt.Equal(st.ModTime()) {
				t.Errorf("%q: mtime %s, want %s (%v)", e.Path, e.MTime, st.ModTime().UTC().Format(time.RFC3339Nano), err)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("files --json paths:\n got  %q\n want %q", got, want)
		}
	})

	t.Run("symlinks-in-target", func(t *testing.T) {
		// A restore never writes through a symlink it finds in the target.
		target, outside := tmpDir(t), tmpDir(t)
		victim := filepath.Join(outside, "victim.txt")
		writeFile(t, victim, []byte("victim\n"), 0o644)
		mkdirs(t, filepath.Join(target, "home/bob"))
		if err := os.Symlink(outside, filepath.Join(target, "home/alice")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(victim, filepath.Join(target, "home/bob/notes.txt")); err != nil {
			t.Fatal(err)
		}
		r := smp(t, "restore", "--store", store, "--computer", "pc1", "--root", target)
		if r.code != exitPartial || !strings.Contains(r.stderr, filepath.Join(target, "home/alice")) {
			t.Errorf("restore over a symlinked home/alice: want exit 3 naming it\n%s", r)
		}
		if got := listTree(t, outside); !slices.Equal(got, []string{"victim.txt"}) || readFile(t, victim) != "victim\n" {
			t.Fatalf("restore wrote through a symlink: %s holds %q", outside, got)
		}
		if got := readFile(t, filepath.Join(target, "home/bob/.hidden")); got != "dot file\n" {
			t.Errorf("bob's files were not restored: %q", got)
		}

		r = smp(t, "restore", "--store", store, "--computer", "pc1", "--root", target, "--overwrite", "always")
		if r.code != exitOK {
			t.Errorf("restore --overwrite always: want exit 0\n%s", r)
		}
		if got := listTree(t, outside); !slices.Equal(got, []string{"victim.txt"}) || readFile(t, victim) != "victim\n" {
			t.Fatalf("restore --overwrite always wrote through a symlink: %s holds %q", outside, got)
		}
		compareTrees(t, root, target, compareOpts{owners: owners, policy: true})
	})
}

// TestE2ECaptureFilters checks capture --exclude and --rules.
func TestE2ECaptureFilters(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	for _, p := range []string{"keep.tmp", "junk.tmp", "a.txt", "sub/x.tmp", "sub/y.txt", "sub/keep.tmp", "cache/blob.dat", "cache/keep.tmp"} {
		writeFile(t, filepath.Join(root, "home/alice", p), []byte(p+"\n"), 0o644)
	}
	store := newStore(t)
	rules := filepath.Join(tmpDir(t), "rules")
	writeFile(t, rules, []byte("# keep one kind of tmp file\n+ keep.tmp\n- *.tmp\n\n- cache/\n"), 0o644)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"none", nil, []string{"a.txt", "cache/blob.dat", "cache/keep.tmp", "junk.tmp", "keep.tmp", "sub/keep.tmp", "sub/x.tmp", "sub/y.txt"}},
		{"exclude", []string{"--exclude", "*.tmp"}, []string{"a.txt", "cache/blob.dat", "sub/y.txt"}},
		{"exclude-dir", []string{"--exclude", "cache/", "--exclude", "sub"}, []string{"a.txt", "junk.tmp", "keep.tmp"}},
		{"rules", []string{"--rules", rules}, []string{"a.txt", "keep.tmp", "sub/keep.tmp", "sub/y.txt"}},
		{"paths", []string{"home/alice/a.txt", "home/alice/sub/"}, []string{"a.txt", "sub/keep.tmp", "sub/x.tmp", "sub/y.txt"}},
		{"paths and rules", []string{"--rules", rules, "home/alice/sub", "home/alice/cache"}, []string{"sub/keep.tmp", "sub/y.txt"}},
	}
	for i, tc := range tests {
		c := doCapture(t, exitOK, store, "pc"+string(rune('a'+i)), append([]string{"--root", root}, tc.args...)...)
		var got []string
		for _, p := range filePaths(t, store, c.Record, "file") {
			got = append(got, strings.TrimPrefix(p, "home/alice/"))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: captured %q, want %q", tc.name, got, tc.want)
		}
		if c.Files != uint64(len(tc.want)) {
			t.Errorf("%s: capture reports %d files, want %d", tc.name, c.Files, len(tc.want))
		}
	}
	// A malformed rules file is bad usage.
	bad := filepath.Join(tmpDir(t), "bad")
	writeFile(t, bad, []byte("* nonsense\n"), 0o644)
	r := smp(t, "capture", "--store", store, "--computer", "pcx", "--root", root, "--rules", bad)
	if r.code != exitUsage || len(r.stderrLines()) != 1 || !strings.Contains(r.stderr, "--rules") {
		t.Errorf("bad rules file: want exit 2 and one line naming --rules\n%s", r)
	}
}

// TestE2EBadInputs checks that each kind of bad input gets one clear line
// on stderr and the right exit status.
func TestE2EBadInputs(t *testing.T) {
	t.Parallel()
	tmp := tmpDir(t)
	root := filepath.Join(tmp, "root")
	writeFile(t, filepath.Join(root, "home/alice/a.txt"), []byte("a\n"), 0o644)
	store := newStore(t)
	c := doCapture(t, exitOK, store, "pc1", "--root", root)
	empty := filepath.Join(tmp, "empty")
	mkdirs(t, empty)
	missing := filepath.Join(tmp, "missing")
	target := filepath.Join(tmp, "target")

	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no command", nil, exitUsage, "Usage"},
		{"missing store", []string{"records"}, exitUsage, "--store DIR is required"},
		{"store does not exist", []string{"records", "--store", missing}, exitError, "smp init"},
		{"uninitialised store", []string{"records", "--store", empty}, exitError, "not initialised"},
		{"init existing store", []string{"init", "--store", store}, exitError, "already holds an smp store"},
		{"init bad chunk size", []string{"init", "--store", filepath.Join(tmp, "s2"), "--chunk-avg", "3MiB"}, exitUsage, "--chunk-avg"},
		{"missing source path", []string{"capture", "--store", store, "--computer", "pc1", "--root", root, "no/such/dir"}, exitError, "does not exist"},
		{"missing computer", []string{"capture", "--store", store, "--root", root}, exitUsage, "--computer"},
		{"root not a dir", []string{"capture", "--store", store, "--computer", "pc1", "--root", missing}, exitUsage, "not a directory"},
		{"unknown flag", []string{"records", "--store", store, "--bogus"}, exitUsage, "unknown flag: --bogus"},
		{"unknown command", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"unknown record", []string{"restore", "--store", store, "--record", "deadbeef", "--root", target}, exitError, "no such record"},
		{"unknown computer", []string{"restore", "--store", store, "--computer", "nope", "--root", target}, exitError, "no record"},
		{"short prefix", []string{"restore", "--store", store, "--record", c.Record[:3], "--root", target}, exitError, "too short"},
		{"no record or computer", []string{"restore", "--store", store, "--root", target}, exitUsage, "--record"},
		{"bad overwrite", []string{"restore", "--store", store, "--computer", "pc1", "--root", target, "--overwrite", "sometimes"}, exitUsage, "--overwrite"},
		{"bad map", []string{"restore", "--store", store, "--computer", "pc1", "--root", target, "--map", "home/alice"}, exitUsage, "--map"},
		{"bad map from", []string{"restore", "--store", store, "--computer", "pc1", "--root", target, "--map", "=home/x"}, exitUsage, "--map"},
		{"restore extra argument", []string{"restore", "--store", store, "--computer", "pc1", "--root", target, "extra"}, exitUsage, "unexpected argument"},
		{"files unknown record", []string{"files", "--store", store, "--record", "ffffffff"}, exitError, "no such record"},
		{"rm without record", []string{"rm", "--store", store}, exitUsage, "--record"},
		{"rm unknown record", []string{"rm", "--store", store, "--record", "ffffffff"}, exitError, "no such record"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := smp(t, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\n%s", r.code, tc.code, r)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr lacks %q\n%s", tc.want, r)
			}
			if tc.args == nil {
				return // the usage text
			}
			if lines := r.stderrLines(); len(lines) != 1 || !strings.HasPrefix(lines[0], "smp") {
				t.Errorf("want one line on stderr starting with smp, got %q", lines)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty: %q", r.stdout)
			}
		})
	}
	// None of that harmed the store.
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Errorf("a failed restore created %s (%v)", target, err)
	}
	var recs recordsOut
	smpJSON(t, exitOK, &recs, "records", "--store", store, "--json")
	if !slices.Equal(recs.ids(), []string{c.Record}) {
		t.Errorf("records after bad inputs: %q, want [%s]", recs.ids(), c.Record)
	}
}

// TestE2ECorruptPack flips one byte of stored file data: verify --read-data
// and restore report exactly the damaged file, and restore still restores
// the others.
func TestE2ECorruptPack(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	writeFile(t, filepath.Join(root, "home/alice/big.bin"), rnd(9, 3<<20), 0o644)
	writeFile(t, filepath.Join(root, "home/alice/ok1.txt"), []byte("first intact file\n"), 0o644)
	writeFile(t, filepath.Join(root, "home/alice/sub/ok2.txt"), []byte("second intact file\n"), 0o644)
	writeFile(t, filepath.Join(root, "home/bob/ok3.txt"), []byte("third intact file\n"), 0o644)
	stampTimes(t, filepath.Join(root, "home"))
	store := newStore(t)
	doCapture(t, exitOK, store, "pc1", "--root", root)
	mustSMP(t, "verify", "--store", store, "--read-data")

	// Flip the middle byte of the largest data blob, a chunk of big.bin:
	// a byte of its ciphertext, the store being encrypted by default.
	if !storeEncrypted(t, store) {
		t.Fatal("smp init made a store in clear")
	}
	packs, _ := storePacks(t, store)
	var victim string
	var best cas.PackEntry
	err := packs.Walk(func(id cas.ID, _ int64) error {
		entries, err := packs.ReadTrailer(id)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Type == cas.BlobData && e.StoredLen > best.StoredLen {
				best, victim = e, packs.Path(id)
			}
		}
		return nil
	})
	packs.Close()
	if err != nil || victim == "" {
		t.Fatalf("no data pack found (%v)", err)
	}
	if !strings.HasPrefix(victim, filepath.Join(store, "packs")+"/") || !strings.HasSuffix(victim, ".pack") {
		t.Fatalf("unexpected pack path %s", victim)
	}
	flipByte(t, victim, int64(best.Offset)+int64(best.StoredLen)/2)

	// verify without --read-data checks presence only.
	mustSMP(t, "verify", "--store", store)
	r := smp(t, "verify", "--store", store, "--read-data")
	if r.code != exitPartial || !strings.Contains(r.stdout, "home/alice/big.bin") {
		t.Errorf("verify --read-data: want exit 3 naming home/alice/big.bin\n%s", r)
	}
	for _, p := range []string{"ok1.txt", "ok2.txt", "ok3.txt"} {
		if strings.Contains(r.stdout, p) {
			t.Errorf("verify names intact file %s\n%s", p, r)
		}
	}
	var v struct {
		OK     bool `json:"ok"`
		Report struct {
			DamagedFiles int `json:"damaged_files"`
			Damaged      []struct {
				Type    string   `json:"type"`
				Affects []string `json:"affects"`
			} `json:"damaged"`
		} `json:"report"`
	}
	smpJSON(t, exitPartial, &v, "verify", "--store", store, "--read-data", "--json")
	if v.OK || v.Report.DamagedFiles != 1 || len(v.Report.Damaged) != 1 || v.Report.Damaged[0].Type != "data" {
		t.Errorf("verify --json: %+v; want one damaged data blob affecting one file", v)
	}

	target := filepath.Join(tmpDir(t), "target")
	r = smp(t, "restore", "--store", store, "--computer", "pc1", "--root", target)
	if r.code != exitPartial {
		t.Errorf("restore: want exit 3\n%s", r)
	}
	if !strings.Contains(r.stderr, filepath.Join(target, "home/alice/big.bin")) {
		t.Errorf("restore does not name the damaged file\n%s", r)
	}
	if _, err := os.Lstat(filepath.Join(target, "home/alice/big.bin")); !os.IsNotExist(err) {
		t.Errorf("the damaged file was restored anyway (%v)", err)
	}
	for _, p := range []string{"home/alice/ok1.txt", "home/alice/sub/ok2.txt", "home/bob/ok3.txt"} {
		if got, want := readFile(t, filepath.Join(target, p)), readFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("%s restored as %q, want %q", p, got, want)
		}
	}
	// Nothing else (no half-written temporary file) is left behind.
	if err := os.Remove(filepath.Join(root, "home/alice/big.bin")); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, filepath.Join(root, "home/bob"), filepath.Join(target, "home/bob"), compareOpts{})
	compareTrees(t, filepath.Join(root, "home/alice/sub"), filepath.Join(target, "home/alice/sub"), compareOpts{})
	if got := listTree(t, filepath.Join(target, "home/alice")); !slices.Equal(got, []string{"ok1.txt", "sub", "sub/ok2.txt"}) {
		t.Errorf("home/alice restored as %q", got)
	}
}

func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestE2EUnreadableFile captures a tree holding a file smp cannot read: the
// capture exits 3 naming it, and its record holds everything else.
func TestE2EUnreadableFile(t *testing.T) {
	t.Parallel()
	var run runOpts
	dir := tmpDir(t)
	if os.Geteuid() == 0 {
		// root reads any file: run smp as nobody instead, in a directory
		// nobody can reach.
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Skipf("running as root and no user nobody to drop to (%v): unreadable files cannot be tested", err)
		}
		if dir, err = os.MkdirTemp("", "smp-e2e-nobody-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		run.credential = &syscall.Credential{Uid: uint32(atoi(t, u.Uid)), Gid: uint32(atoi(t, u.Gid))}
		t.Logf("running as root: smp runs as nobody (uid %s) for this test", u.Uid)
	}
	root := filepath.Join(dir, "root")
	store := filepath.Join(dir, "store")
	writeFile(t, filepath.Join(root, "home/alice/readable.txt"), []byte("fine\n"), 0o644)
	writeFile(t, filepath.Join(root, "home/alice/locked.txt"), []byte("secret\n"), 0o644)
	writeFile(t, filepath.Join(root, "home/alice/docs/more.txt"), []byte("also fine\n"), 0o644)
	mkdirs(t, store)
	if c := run.credential; c != nil {
		// nobody keeps the store's key file in a config directory of its own.
		cfg := filepath.Join(dir, "config")
		mkdirs(t, cfg)
		run.env = []string{"XDG_CONFIG_HOME=" + cfg}
		chownTree(t, dir, int(c.Uid), int(c.Gid))
	}
	locked := filepath.Join(root, "home/alice/locked.txt")
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(locked, 0o644) })

	if r := smpWith(t, run, "init", "--store", store); r.code != exitOK {
		t.Fatalf("init: %s", r)
	}
	r := smpWith(t, run, "capture", "--store", store, "--computer", "pc1", "--hardlink", "never", "--root", root)
	if r.code != exitPartial || !strings.Contains(r.stderr, locked) || !strings.Contains(r.stderr, "completed with errors") {
		t.Fatalf("capture: want exit 3 naming %s\n%s", locked, r)
	}
	r = smpWith(t, run, "capture", "--store", store, "--computer", "pc1", "--hardlink", "never", "--root", root, "--json")
	var c captureOut
	if err := json.Unmarshal([]byte(r.stdout), &c); r.code != exitPartial || err != nil {
		t.Fatalf("capture --json: want exit 3 and JSON (%v)\n%s", err, r)
	}
	if c.Errors != 1 || c.Files != 2 || len(c.Problems) != 1 || !strings.Contains(c.Problems[0], locked) {
		t.Errorf("capture --json: errors %d files %d problems %q; want 1, 2, one naming %s", c.Errors, c.Files, c.Problems, locked)
	}
	var f filesOut
	if r := smpWith(t, run, "files", "--store", store, "--record", c.Record, "--json"); r.code != exitOK || json.Unmarshal([]byte(r.stdout), &f) != nil {
		t.Fatalf("files: %s", r)
	}
	var got []string
	for _, e := range f.Files {
		if e.Type == "file" {
			got = append(got, e.Path)
		}
	}
	if want := []string{"home/alice/docs/more.txt", "home/alice/readable.txt"}; !slices.Equal(got, want) {
		t.Errorf("the record holds %q, want %q", got, want)
	}
	target := filepath.Join(dir, "target")
	if r := smpWith(t, run, "restore", "--store", store, "--record", c.Record, "--root", target); r.code != exitOK {
		t.Fatalf("restore: %s", r)
	}
	if got := readFile(t, filepath.Join(target, "home/alice/docs/more.txt")); got != "also fine\n" {
		t.Errorf("more.txt restored as %q", got)
	}
	if _, err := os.Lstat(filepath.Join(target, "home/alice/locked.txt")); !os.IsNotExist(err) {
		t.Errorf("locked.txt appeared in the restore (%v)", err)
	}
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestE2ELock holds the store's lock as another smp process would: every
// command fails at once with a clear message, and works once it is freed.
func TestE2ELock(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	writeFile(t, filepath.Join(root, "home/alice/a.txt"), []byte("a\n"), 0o644)
	store := newStore(t)
	lock, err := os.OpenFile(filepath.Join(store, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"records", "--store", store},
		{"capture", "--store", store, "--computer", "pc1", "--hardlink", "never", "--root", root},
		{"stats", "--store", store},
	} {
		r := smp(t, args...)
		if r.code != exitError || !strings.Contains(r.stderr, "store is in use by another smp process") || len(r.stderrLines()) != 1 {
			t.Errorf("with the store locked: want exit 1 and one line saying it is in use\n%s", r)
		}
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	var recs recordsOut
	smpJSON(t, exitOK, &recs, "records", "--store", store, "--json")
	if len(recs.Records) != 0 {
		t.Errorf("a capture refused by the lock left records %q", recs.ids())
	}
	doCapture(t, exitOK, store, "pc1", "--root", root)
}

// TestE2ERm removes a record.
func TestE2ERm(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	writeFile(t, filepath.Join(root, "home/alice/a.txt"), []byte("a\n"), 0o644)
	store := newStore(t)
	c1 := doCapture(t, exitOK, store, "pc1", "--root", root)
	c2 := doCapture(t, exitOK, store, "pc2", "--root", root)
	var recs recordsOut
	smpJSON(t, exitOK, &recs, "records", "--store", store, "--json")
	if got := recs.ids(); len(got) != 2 || !slices.Contains(got, c1.Record) || !slices.Contains(got, c2.Record) {
		t.Fatalf("records %q, want %s and %s", got, c1.Record, c2.Record)
	}
	r := mustSMP(t, "rm", "--store", store, "--record", c1.Record[:8])
	if !strings.Contains(r.stdout, c1.Record[:12]) {
		t.Errorf("rm does not name the record it removed: %s", r)
	}
	recs = recordsOut{}
	smpJSON(t, exitOK, &recs, "records", "--store", store, "--json")
	if got := recs.ids(); !slices.Equal(got, []string{c2.Record}) {
		t.Errorf("after rm: records %q, want [%s]", got, c2.Record)
	}
	if r := mustSMP(t, "records", "--store", store); strings.Contains(r.stdout, c1.Record[:12]) || !strings.Contains(r.stdout, c2.Record[:12]) {
		t.Errorf("records table after rm:\n%s", r.stdout)
	}
	if r := smp(t, "restore", "--store", store, "--record", c1.Record, "--root", tmpDir(t)); r.code != exitError || !strings.Contains(r.stderr, "no such record") {
		t.Errorf("restoring a removed record: %s", r)
	}
	if r := smp(t, "rm", "--store", store, "--record", c1.Record); r.code != exitError {
		t.Errorf("removing a record twice: %s", r)
	}
	// The remaining record is intact.
	target := tmpDir(t)
	mustSMP(t, "restore", "--store", store, "--computer", "pc2", "--root", target)
	if got := readFile(t, filepath.Join(target, "home/alice/a.txt")); got != "a\n" {
		t.Errorf("a.txt restored as %q", got)
	}
}

// TestE2EStoreEnv checks that SMP_STORE replaces --store and that --store
// wins over it.
func TestE2EStoreEnv(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	writeFile(t, filepath.Join(root, "home/alice/a.txt"), []byte("a\n"), 0o644)
	store := filepath.Join(tmpDir(t), "store")
	env := runOpts{env: []string{"SMP_STORE=" + store}}
	must := func(args ...string) result {
		t.Helper()
		r := smpWith(t, env, args...)
		if r.code != exitOK {
			t.Fatalf("want exit 0\n%s", r)
		}
		return r
	}
	must("init")
	if _, err := os.Stat(filepath.Join(store, "config.json")); err != nil {
		t.Fatalf("init with SMP_STORE made no store: %v", err)
	}
	var c captureOut
	if err := json.Unmarshal([]byte(must("capture", "--computer", "pc1", "--hardlink", "never", "--root", root, "--json").stdout), &c); err != nil {
		t.Fatal(err)
	}
	var recs recordsOut
	if err := json.Unmarshal([]byte(must("records", "--json").stdout), &recs); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recs.ids(), []string{c.Record}) {
		t.Errorf("records via SMP_STORE: %q, want [%s]", recs.ids(), c.Record)
	}
	target := tmpDir(t)
	must("restore", "--computer", "pc1", "--root", target)
	if got := readFile(t, filepath.Join(target, "home/alice/a.txt")); got != "a\n" {
		t.Errorf("a.txt restored as %q", got)
	}
	// An explicit --store wins over SMP_STORE.
	other := newStore(t)
	recs = recordsOut{}
	if err := json.Unmarshal([]byte(must("records", "--store", other, "--json").stdout), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs.Records) != 0 {
		t.Errorf("--store %s listed SMP_STORE's records %q", other, recs.ids())
	}
}

// TestE2ENonUTF8Names captures names and a symlink target that are not
// valid UTF-8, which Linux allows.
func TestE2ENonUTF8Names(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	writeFile(t, filepath.Join(root, "home/u/a\xff"), []byte("one\n"), 0o644)
	writeFile(t, filepath.Join(root, "home/u/a\xfe"), []byte("two\n"), 0o644)
	writeFile(t, filepath.Join(root, "home/u/ok.txt"), []byte("ok\n"), 0o644)
	writeFile(t, filepath.Join(root, "home/v/latin1-caf\xe9.txt"), []byte("café\n"), 0o644)
	if err := os.Symlink("target-\xff", filepath.Join(root, "home/v/link")); err != nil {
		t.Fatal(err)
	}
	stampTimes(t, filepath.Join(root, "home"))
	store := newStore(t)
	doCapture(t, exitOK, store, "pc1", "--root", root)
	target := filepath.Join(tmpDir(t), "target")
	if r := smp(t, "restore", "--store", store, "--computer", "pc1", "--root", target); r.code != exitOK {
		t.Errorf("restore: want exit 0\n%s", r)
	}
	compareTrees(t, root, target, compareOpts{})
}

// TestE2EStoreInsideRoot captures a tree that holds the store itself: the
// store is left out.
func TestE2EStoreInsideRoot(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	writeFile(t, filepath.Join(root, "home/alice/a.txt"), []byte("a\n"), 0o644)
	store := filepath.Join(root, "home/alice/smp-store")
	mustSMP(t, "init", "--store", store)
	c := doCapture(t, exitOK, store, "pc1", "--root", root)
	if got := filePaths(t, store, c.Record, ""); !slices.Equal(got, []string{"home", "home/alice", "home/alice/a.txt"}) {
		t.Errorf("record holds %q, want the profile without the store", got)
	}
}
