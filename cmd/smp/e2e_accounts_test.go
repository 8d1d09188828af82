package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// targetSystem writes a temporary target root with its own passwd, group
// and shadow (root only): the host's accounts are never touched.
func targetSystem(t *testing.T) string {
	t.Helper()
	target := filepath.Join(tmpDir(t), "target")
	writeFile(t, filepath.Join(target, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	writeFile(t, filepath.Join(target, "etc", "group"), []byte("root:x:0:\n"), 0o644)
	writeFile(t, filepath.Join(target, "etc", "shadow"), []byte("root:*:19000:0:99999:7:::\n"), 0o600)
	return target
}

// targetAccount returns name's passwd fields in the target, or nil.
func targetAccount(t *testing.T, target, file, name string) []string {
	t.Helper()
	for _, l := range strings.Split(readFile(t, filepath.Join(target, "etc", file)), "\n") {
		if f := strings.Split(l, ":"); f[0] == name {
			return f
		}
	}
	return nil
}

// listTarget lists every path under target.
func listTarget(t *testing.T, target string) []string {
	t.Helper()
	var out []string
	filepath.Walk(target, func(p string, _ os.FileInfo, err error) error {
		out = append(out, strings.TrimPrefix(p, target))
		return err
	})
	return out
}

// TestE2ECreateUsers: as root, against a temporary target root with its
// own account files. Mapping to a user the target lacks fails before
// anything is written; --create-users creates the account in the target
// (useradd --root), and the files are restored as it, in place for
// --map-user and under the mapped path for --map; --create-users-disabled
// creates it expired. The host's passwd is unchanged.
func TestE2ECreateUsers(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates accounts and chowns")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("no useradd")
	}
	host := readFile(t, "/etc/passwd")
	man, err := user.Lookup("man") // a host account, so the record names its owner
	if err != nil {
		t.Skip("no host account man")
	}
	uid, _ := strconv.Atoi(man.Uid)
	src := tmpDir(t)
	writeFile(t, filepath.Join(src, "home", "man", "Documents", "a.txt"), []byte("hello\n"), 0o644)
	for _, p := range []string{"home/man", "home/man/Documents", "home/man/Documents/a.txt"} {
		if err := os.Lchown(filepath.Join(src, p), uid, 12); err != nil {
			t.Fatal(err)
		}
	}
	st := newStore(t)
	c := doCapture(t, exitOK, st, "pc", "--root", src)

	// A missing destination, without --create-users: nothing written.
	target := targetSystem(t)
	before := listTarget(t, target)
	for _, m := range [][]string{{"--map-user", "man=carol"}, {"--map", "home/man=home/dave"}} {
		r := smp(t, append([]string{"restore", "--store", st, "--record", c.Record, "--root", target, "--keep"}, m...)...)
		if r.code != exitError || !strings.Contains(r.stderr, "no user") || !strings.Contains(r.stderr, "--create-users") {
			t.Errorf("%v to a missing user: %s", m, r)
		}
		if after := listTarget(t, target); !slices.Equal(before, after) {
			t.Errorf("%v wrote %v", m, after)
		}
	}

	// --map-user with --create-users: carol is created, files stay in
	// home/man and are hers.
	if out, _ := restoreJSON(t, exitOK, st, "--record", c.Record, "--root", target, "--keep", "--map-user", "man=carol", "--create-users"); out.Files != 1 || out.Errors != 0 {
		t.Fatalf("restore with --create-users: %+v", out)
	}
	carol := targetAccount(t, target, "passwd", "carol")
	if carol == nil || carol[5] != "/home/man" {
		t.Fatalf("carol in the target: %v\n%s", carol, readFile(t, filepath.Join(target, "etc", "passwd")))
	}
	cuid, _ := strconv.Atoi(carol[2])
	cgid, _ := strconv.Atoi(carol[3])
	fi, err := os.Lstat(filepath.Join(target, "home", "man", "Documents", "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if s := fi.Sys().(*syscall.Stat_t); int(s.Uid) != cuid || int(s.Gid) != cgid || cuid == uid {
		t.Errorf("a.txt owned by %d:%d, want carol's %d:%d", s.Uid, s.Gid, cuid, cgid)
	}
	if targetAccount(t, target, "group", "carol") == nil {
		t.Errorf("no group carol in the target")
	}

	// --map with --create-users-disabled: dave, home /home/dave, expired.
	target2 := targetSystem(t)
	r := mustSMP(t, "restore", "--store", st, "--record", c.Record, "--root", target2, "--keep", "--map", "home/man=home/dave", "--create-users-disabled")
	if !strings.Contains(r.stdout, "created account dave") || !strings.Contains(r.stdout, "disabled") {
		t.Errorf("restore output:\n%s", r.stdout)
	}
	dave := targetAccount(t, target2, "passwd", "dave")
	shadow := targetAccount(t, target2, "shadow", "dave")
	if dave == nil || dave[5] != "/home/dave" || shadow == nil || shadow[7] != "1" {
		t.Fatalf("dave: %v, shadow %v", dave, shadow)
	}
	if got := readFile(t, filepath.Join(target2, "home", "dave", "Documents", "a.txt")); got != "hello\n" {
		t.Errorf("dave's a.txt: %q", got)
	}
	if readFile(t, "/etc/passwd") != host {
		t.Fatal("the host's /etc/passwd changed")
	}
}

// TestE2ERestoreNonRoot: --create-users is refused without root, and a
// restore as another user says once that the files are that user's.
func TestE2ERestoreNonRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the binary as another user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	dir, err := os.MkdirTemp("", "smp-e2e-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	id, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	// nobody keeps the store's key file in a config directory of its own.
	run := runOpts{credential: &syscall.Credential{Uid: uint32(id), Gid: uint32(gid)}, env: []string{"XDG_CONFIG_HOME=" + filepath.Join(dir, "config")}}
	src, st, target := filepath.Join(dir, "src"), filepath.Join(dir, "store"), filepath.Join(dir, "target")
	writeFile(t, filepath.Join(src, "home", "alice", "a.txt"), []byte("a\n"), 0o644)
	writeFile(t, filepath.Join(src, "home", "alice", "b.txt"), []byte("b\n"), 0o644)
	mkdirs(t, st, target)
	chownTree(t, dir, id, gid)
	if r := smpWith(t, run, "init", "--store", st); r.code != exitOK {
		t.Fatalf("init: %s", r)
	}
	r := smpWith(t, run, "capture", "--store", st, "--computer", "pc", "--root", src, "--json")
	if r.code != exitOK {
		t.Fatalf("capture: %s", r)
	}
	var c captureOut
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		t.Fatal(err)
	}
	r = smpWith(t, run, "restore", "--store", st, "--record", c.Record, "--root", target, "--keep", "--create-users")
	if r.code != exitUsage || !strings.Contains(r.stderr, "needs root") {
		t.Errorf("--create-users as nobody: %s", r)
	}
	r = smpWith(t, run, "restore", "--store", st, "--record", c.Record, "--root", target, "--keep")
	if r.code != exitOK || strings.Count(r.stderr, "not root") != 1 || !strings.Contains(r.stderr, "owned by you") {
		t.Fatalf("restore as nobody: %s", r)
	}
	fi, err := os.Lstat(filepath.Join(target, "home", "alice", "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if s := fi.Sys().(*syscall.Stat_t); int(s.Uid) != id {
		t.Errorf("a.txt owned by %d, want nobody's %d", s.Uid, id)
	}
}

// TestE2ERestoreNotRestoredSummary: like loadstate, a restore ends with
// every path it did not write and why, in its text, its JSON and its
// progress log: a file the target already has (exists), and the files
// below a directory the target has as a file (error).
func TestE2ERestoreNotRestoredSummary(t *testing.T) {
	t.Parallel()
	src := tmpDir(t)
	writeFile(t, filepath.Join(src, "home", "alice", "keep.txt"), []byte("record\n"), 0o644)
	writeFile(t, filepath.Join(src, "home", "alice", "docs", "a.txt"), []byte("a\n"), 0o644)
	writeFile(t, filepath.Join(src, "home", "alice", "new.txt"), []byte("new\n"), 0o644)
	st := newStore(t)
	c := doCapture(t, exitOK, st, "pc", "--root", src)
	prepare := func() string {
		target := tmpDir(t)
		writeFile(t, filepath.Join(target, "home", "alice", "keep.txt"), []byte("local\n"), 0o644)
		writeFile(t, filepath.Join(target, "home", "alice", "docs"), []byte("a file in the way\n"), 0o644)
		return target
	}
	target := prepare()
	var out struct {
		NotRestored []struct{ Path, Reason string } `json:"not_restored"`
	}
	smpJSON(t, exitPartial, &out, "restore", "--store", st, "--record", c.Record, "--root", target, "--keep", "--json")
	got := map[string]string{}
	for _, m := range out.NotRestored {
		got[strings.TrimPrefix(m.Path, target+"/")] = m.Reason
	}
	if got["home/alice/keep.txt"] != "exists" || got["home/alice/docs"] == "" || got["home/alice/new.txt"] != "" {
		t.Errorf("not_restored %+v", out.NotRestored)
	}
	target = prepare()
	log := filepath.Join(tmpDir(t), "progress.log")
	r := smp(t, "restore", "--store", st, "--record", c.Record, "--root", target, "--keep", "--progress-log", log)
	if r.code != exitPartial || !strings.Contains(r.stdout, "not restored: ") || !strings.Contains(r.stdout, "  exists: "+filepath.Join(target, "home/alice/keep.txt")) {
		t.Errorf("text summary:\n%s", r)
	}
	if l := readFile(t, log); !strings.Contains(l, "[0x080000] notRestored, exists, 1") {
		t.Errorf("progress log:\n%s", l)
	}
}
