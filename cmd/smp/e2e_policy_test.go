package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// restorePolicyOut is restore --json with the policy's fields.
type restorePolicyOut struct {
	restoreOut
	Dropped        uint64   `json:"dropped"`
	DroppedOutside uint64   `json:"dropped_outside"`
	DroppedPaths   []string `json:"dropped_paths"`
	Released       bool     `json:"released"`
}

func ownerOf(t *testing.T, p string) (uint32, uint32, os.FileMode) {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sys().(*syscall.Stat_t)
	return s.Uid, s.Gid, st.Mode()
}

// targetRoot makes a restore target holding its own etc/passwd and
// etc/group, with ids no host gives these names.
func targetRoot(t *testing.T, passwd, group string) string {
	t.Helper()
	target := filepath.Join(tmpDir(t), "target")
	writeFile(t, filepath.Join(target, "etc/passwd"), []byte(passwd), 0o644)
	writeFile(t, filepath.Join(target, "etc/group"), []byte(group), 0o644)
	return target
}

// TestE2ERestorePolicy: a record is hostile input. Captured here as a
// compromised source would commit it (a cron job, a setuid root file in
// alice's profile), restored as root: nothing outside home/ and root/ is
// written, setuid is dropped, root's ownership goes to alice as the
// target's etc/passwd knows her, and the summary says so. --allow-system
// restores it all.
func TestE2ERestorePolicy(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: setuid root files and owners")
	}
	src := filepath.Join(tmpDir(t), "src")
	writeFile(t, filepath.Join(src, "etc/cron.d/x"), []byte("* * * * * root id\n"), 0o644)
	writeFile(t, filepath.Join(src, "home/alice/bin/su"), []byte("#!/bin/sh\nid\n"), 0o755)
	writeFile(t, filepath.Join(src, "home/alice/notes.txt"), []byte("mine\n"), 0o644)
	writeFile(t, filepath.Join(src, "root/.profile"), []byte("PS1=#\n"), 0o644)
	if err := os.Chmod(filepath.Join(src, "home/alice/bin/su"), 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	store := newStore(t)
	c := doCapture(t, exitOK, store, "pc1", "--root", src, "etc", "home", "root")

	const passwd = "root:x:0:0::/root:/bin/sh\nalice:x:2001:2100::/home/alice:/bin/sh\n"
	const group = "root:x:0:\nalice:x:2100:\n"
	target := targetRoot(t, passwd, group)
	var out restorePolicyOut
	r := smpJSON(t, exitPartial, &out, "restore", "--store", store, "--json", "--computer", "pc1", "--root", target)
	if got := listTree(t, filepath.Join(target, "etc")); !slices.Equal(got, []string{"group", "passwd"}) {
		t.Errorf("restore wrote below etc/: %q", got)
	}
	if uid, gid, mode := ownerOf(t, filepath.Join(target, "home/alice/bin/su")); uid != 2001 || gid != 2100 || mode&os.ModeSetuid != 0 {
		t.Errorf("setuid root file restored as %d:%d %v; want 2001:2100 (the target's alice) without setuid", uid, gid, mode)
	}
	if uid, gid, _ := ownerOf(t, filepath.Join(target, "home/alice/notes.txt")); uid != 2001 || gid != 2100 {
		t.Errorf("root-owned file in alice's profile restored as %d:%d, want 2001:2100", uid, gid)
	}
	if uid, _, _ := ownerOf(t, filepath.Join(target, "root/.profile")); uid != 0 || readFile(t, filepath.Join(target, "root/.profile")) != "PS1=#\n" {
		t.Errorf("root's profile not restored as root's (uid %d)", uid)
	}
	if out.DroppedOutside != 1 || out.Dropped < 2 || !slices.Contains(out.DroppedPaths, "etc (outside the profile paths)") ||
		!slices.Contains(out.DroppedPaths, "home/alice/bin/su (setuid/setgid bits, root ownership)") {
		t.Errorf("restore --json: dropped %d (%d outside) %q; want etc and home/alice/bin/su named", out.Dropped, out.DroppedOutside, out.DroppedPaths)
	}
	if out.Released {
		t.Error("a restore that left paths out released the record")
	}
	if !strings.Contains(r.stderr, "--allow-system") || len(r.stderrLines()) != 1 {
		t.Errorf("want one stderr line naming --allow-system:\n%s", r)
	}

	// The text summary names what was dropped.
	target2 := targetRoot(t, passwd, group)
	r = smp(t, "restore", "--store", store, "--computer", "pc1", "--root", target2)
	if r.code != exitPartial || !strings.Contains(r.stdout, "dropped by the restore policy") || !strings.Contains(r.stdout, "home/alice/bin/su (setuid") {
		t.Errorf("text summary does not name what was dropped:\n%s", r)
	}

	// --allow-system: the record as it is.
	target3 := targetRoot(t, passwd, group)
	out = restorePolicyOut{}
	smpJSON(t, exitOK, &out, "restore", "--store", store, "--json", "--computer", "pc1", "--root", target3, "--allow-system")
	if readFile(t, filepath.Join(target3, "etc/cron.d/x")) != "* * * * * root id\n" {
		t.Error("--allow-system: etc/cron.d/x not restored")
	}
	if uid, _, mode := ownerOf(t, filepath.Join(target3, "home/alice/bin/su")); uid != 0 || mode&os.ModeSetuid == 0 {
		t.Errorf("--allow-system: su restored as uid %d %v, want root and setuid", uid, mode)
	}
	if out.Dropped != 0 || out.Files != c.Files {
		t.Errorf("--allow-system: dropped %d %q, files %d of %d", out.Dropped, out.DroppedPaths, out.Files, c.Files)
	}
}

// TestE2ERestoreMapTargetAccounts: --map home/daemon=home/nobody gives the
// files to nobody and nobody's group as the target's own etc/passwd and
// etc/group say (not the host's), and a destination account the target
// lacks is refused before anything is written.
func TestE2ERestoreMapTargetAccounts(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: owners")
	}
	src := filepath.Join(tmpDir(t), "src")
	writeFile(t, filepath.Join(src, "home/daemon/a.txt"), []byte("a\n"), 0o644)
	writeFile(t, filepath.Join(src, "home/daemon/sub/b.txt"), []byte("b\n"), 0o644)
	// uid/gid 1 is daemon on every Linux host: captured by that name.
	chownTreeTo(t, filepath.Join(src, "home/daemon"), 1, 1)
	store := newStore(t)
	doCapture(t, exitOK, store, "pc1", "--root", src, "home")

	target := targetRoot(t, "root:x:0:0::/root:/bin/sh\nnobody:x:7001:7002::/nonexistent:/bin/false\n",
		"root:x:0:\nnobody:x:7005:\nnogroup:x:7002:\n")
	mustSMP(t, "restore", "--store", store, "--computer", "pc1", "--root", target, "--map", "home/daemon=home/nobody", "--keep")
	for _, p := range []string{"", "a.txt", "sub", "sub/b.txt"} {
		if uid, gid, _ := ownerOf(t, filepath.Join(target, "home/nobody", p)); uid != 7001 || gid != 7005 {
			t.Errorf("home/nobody/%s owned by %d:%d, want 7001:7005 (the target's nobody and its group)", p, uid, gid)
		}
	}

	// A destination account the target lacks: one line naming it, nothing written.
	target = targetRoot(t, "root:x:0:0::/root:/bin/sh\n", "root:x:0:\n")
	r := smp(t, "restore", "--store", store, "--computer", "pc1", "--root", target, "--map", "home/daemon=home/ghost", "--keep")
	if r.code != exitError || !strings.Contains(r.stderr, `"ghost"`) || !strings.Contains(r.stderr, filepath.Join(target, "etc/passwd")) || len(r.stderrLines()) != 1 {
		t.Errorf("--map to a missing account: want exit 1 and one line naming ghost and the target's passwd\n%s", r)
	}
	if got := listTree(t, target); !slices.Equal(got, []string{"etc", "etc/group", "etc/passwd"}) {
		t.Errorf("a refused restore wrote %q", got)
	}

	// An empty destination is a usage error, before any store is opened.
	r = smp(t, "restore", "--store", store, "--computer", "pc1", "--root", target, "--map", "home/daemon=")
	if r.code != exitUsage || !strings.Contains(r.stderr, "TO must name a path") {
		t.Errorf("--map home/daemon=: want exit 2\n%s", r)
	}
}

func chownTreeTo(t *testing.T, dir string, uid, gid int) {
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

// TestE2EHardlinkRestoreMapCopies: a hard-link record restored with --map
// must not hand the user's own inode to the new owner. The store object is
// the captured file itself, so linking it into place and chowning it would
// change the original file's owner too: a file whose owner or mode must
// differ is copied, and one whose metadata already matches is still linked.
func TestE2EHardlinkRestoreMapCopies(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: owners")
	}
	src := filepath.Join(tmpDir(t), "src")
	writeFile(t, filepath.Join(src, "home/daemon/a.txt"), []byte("a\n"), 0o644)
	writeFile(t, filepath.Join(src, "home/daemon/sub/b.txt"), []byte("b\n"), 0o640)
	chownTreeTo(t, filepath.Join(src, "home/daemon"), 1, 1)
	store := newStore(t)
	var c hardlinkCapture
	smpJSON(t, exitOK, &c, "capture", "--store", store, "--computer", "pc1", "--root", src, "--json", "--hardlink", "always", "home")
	if c.Linked != 2 {
		t.Skipf("capture linked %d of 2 files (store and source on different filesystems?)", c.Linked)
	}

	target := targetRoot(t, "root:x:0:0::/root:/bin/sh\nnobody:x:7001:7002::/nonexistent:/bin/false\n",
		"root:x:0:\nnogroup:x:7002:\n")
	mustSMP(t, "restore", "--store", store, "--computer", "pc1", "--root", target, "--map", "home/daemon=home/nobody", "--keep")
	for _, p := range []string{"a.txt", "sub/b.txt"} {
		orig, got := filepath.Join(src, "home/daemon", p), filepath.Join(target, "home/nobody", p)
		if uid, gid, _ := ownerOf(t, orig); uid != 1 || gid != 1 {
			t.Errorf("the captured %s now belongs to %d:%d, want 1:1 (the restore changed the user's own inode)", p, uid, gid)
		}
		if uid, gid, _ := ownerOf(t, got); uid != 7001 || gid != 7002 {
			t.Errorf("restored %s owned by %d:%d, want 7001:7002", p, uid, gid)
		}
		if inode(t, orig) == inode(t, got) {
			t.Errorf("restored %s shares the captured inode although its owner differs", p)
		}
		if readFile(t, got) != readFile(t, orig) {
			t.Errorf("restored %s differs from the captured file", p)
		}
	}

	// Without --map the owner matches: the fast path still links.
	target2 := filepath.Join(tmpDir(t), "same")
	mustSMP(t, "restore", "--store", store, "--computer", "pc1", "--root", target2, "--allow-system")
	if a, b := inode(t, filepath.Join(src, "home/daemon/a.txt")), inode(t, filepath.Join(target2, "home/daemon/a.txt")); a != b {
		t.Errorf("a.txt restored as inode %d, want the captured inode %d (linked into place)", b, a)
	}

	// An xattr set on the user's file since capture (an ACL, say) is not
	// the record's: that file is copied without it, the original keeps it.
	orig := filepath.Join(src, "home/daemon/sub/b.txt")
	if err := unix.Lsetxattr(orig, "user.added", []byte("later"), 0); err != nil {
		t.Logf("no user xattrs here (%v): the xattr case is not run", err)
		return
	}
	target3 := filepath.Join(tmpDir(t), "xattr")
	mustSMP(t, "restore", "--store", store, "--computer", "pc1", "--root", target3, "--allow-system")
	got := filepath.Join(target3, "home/daemon/sub/b.txt")
	if inode(t, orig) == inode(t, got) {
		t.Error("sub/b.txt linked into place although it has an xattr the record lacks")
	}
	if _, err := unix.Lgetxattr(got, "user.added", make([]byte, 16)); err == nil {
		t.Error("restored sub/b.txt carries the xattr set after capture")
	}
	if n, err := unix.Lgetxattr(orig, "user.added", make([]byte, 16)); err != nil || n != 5 {
		t.Errorf("the captured sub/b.txt lost its xattr: %v", err)
	}
	if inode(t, filepath.Join(src, "home/daemon/a.txt")) != inode(t, filepath.Join(target3, "home/daemon/a.txt")) {
		t.Error("a.txt, unchanged, was not linked into place")
	}
}
