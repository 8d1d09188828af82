package restore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"smp/cas/manifest"
)

func TestParsePasswd(t *testing.T) {
	in := strings.Join([]string{
		"root:x:0:0:root:/root:/bin/bash",
		"# a comment:x:1:1",
		"",
		"alice:x:2001:2100:Alice:/home/alice:/bin/sh\r", // CRLF file
		"alice:x:9999:9999:second alice:/:/bin/false",   // first line of a name wins
		"+nis::::::",
		"-bad::::::",
		"short:x:5",
		"neg:x:-1:5:::",
		"big:x:4294967296:5:::", // above uint32
		"nouid:x:4294967295:5:::",
		"sp ace:x:7:7:::",
		":x:8:8:::",
		"bob:x:3000:3000", // four fields are enough
	}, "\n")
	got := parsePasswd([]byte(in))
	want := map[string]passwdEntry{"root": {0, 0}, "alice": {2001, 2100}, "bob": {3000, 3000}}
	if len(got) != len(want) {
		t.Errorf("parsePasswd = %v, want %v", got, want)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %v, want %v", name, got[name], w)
		}
	}
}

func TestParseGroup(t *testing.T) {
	in := "root:x:0:\nwheel:x:10:alice,bob\nalice:x:2100:\nalice:x:1:\nbroken:x:\nusers:x:100"
	got := parseGroup([]byte(in))
	want := map[string]int{"root": 0, "wheel": 10, "alice": 2100, "users": 100}
	if len(got) != len(want) {
		t.Errorf("parseGroup = %v, want %v", got, want)
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("%s: %d (%v), want %d", name, g, ok, w)
		}
	}
}

// FuzzParseAccounts: the files come from a disk the restore does not
// trust; parsing must never panic and must only return well-formed names
// and ids.
func FuzzParseAccounts(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n"))
	f.Add([]byte("wheel:x:10:alice\n+::::\n\r\n:::\n"))
	f.Add([]byte("a:b:99999999999999999999:1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for name, e := range parsePasswd(b) {
			if name == "" || strings.ContainsAny(name, ":\n \t\x00") || e.uid < 0 || e.gid < 0 || e.uid >= 1<<32-1 || e.gid >= 1<<32-1 {
				t.Fatalf("parsePasswd returned %q %v", name, e)
			}
		}
		for name, g := range parseGroup(b) {
			if name == "" || strings.ContainsAny(name, ":\n \t\x00") || g < 0 || g >= 1<<32-1 {
				t.Fatalf("parseGroup returned %q %d", name, g)
			}
		}
	})
}

func writeAccounts(t *testing.T, root, passwd, group string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/group"), []byte(group), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadAccountsReadsTheTargetsFiles(t *testing.T) {
	root := t.TempDir()
	// Names the host surely has, with ids the host surely does not give them.
	writeAccounts(t, root, "root:x:0:0::/root:/bin/sh\nnobody:x:7001:7002::/:/bin/false\n", "nogroup:x:7003:\n")
	acc, err := loadAccounts(root)
	if err != nil {
		t.Fatal(err)
	}
	if uid, gid, ok := acc.user("nobody"); !ok || uid != 7001 || gid != 7002 {
		t.Errorf("user nobody = %d:%d %v, want the target's 7001:7002", uid, gid, ok)
	}
	if g, ok := acc.group("nogroup"); !ok || g != 7003 {
		t.Errorf("group nogroup = %d %v, want the target's 7003", g, ok)
	}
	// The host has a "daemon" user; the target does not: never the host's.
	if _, _, ok := acc.user("daemon"); ok {
		t.Error("user daemon resolved although the target's etc/passwd lacks it (host NSS used?)")
	}

	// No etc/passwd: no named accounts at all.
	acc, err = loadAccounts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := acc.user("root"); ok {
		t.Error("user root resolved for a target without etc/passwd")
	}
	// A target that does not exist yet has none either.
	if acc, err = loadAccounts(filepath.Join(t.TempDir(), "new")); err != nil {
		t.Fatal(err)
	}
	if _, ok := acc.group("root"); ok {
		t.Error("group root resolved for a missing target")
	}
}

func TestLoadAccountsRefusesHostileFiles(t *testing.T) {
	// A symlink to the host's file is not followed out of the target.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	if acc, err := loadAccounts(root); err == nil {
		if _, _, ok := acc.user("root"); ok {
			t.Error("the host's /etc/passwd was read through a symlink in the target")
		}
	}
	// A FIFO must not hang the restore.
	root = t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadAccounts(root); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("FIFO etc/passwd: err = %v, want not a regular file", err)
	}
}

func TestLoadAccountsOfSlashUsesTheHost(t *testing.T) {
	acc, err := loadAccounts("/")
	if err != nil {
		t.Fatal(err)
	}
	if uid, _, ok := acc.user("root"); !ok || uid != 0 {
		t.Errorf("host user root = %d %v", uid, ok)
	}
	if _, _, ok := acc.user("no-such-user-smp-test"); ok {
		t.Error("a missing host user resolved")
	}
}

func TestParseUserMapping(t *testing.T) {
	if f, to, err := ParseUserMapping("alice=alice.smith"); err != nil || f != "alice" || to != "alice.smith" {
		t.Fatalf("%q %q %v", f, to, err)
	}
	for _, bad := range []string{"alice", "=bob", "alice=", "alice=alice", "alice=-o", "alice=a/b", "alice=a b", "alice=" + strings.Repeat("x", 33), "alice=ro$ot"} {
		if _, _, err := ParseUserMapping(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := CheckAccountName("pc01$"); err != nil {
		t.Errorf("machine account: %v", err)
	}
}

func TestAccountsToCreate(t *testing.T) {
	target := t.TempDir()
	os.MkdirAll(filepath.Join(target, "etc"), 0o755)
	os.WriteFile(filepath.Join(target, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(target, "etc", "group"), []byte("root:x:0:\n"), 0o644)
	rec := &manifest.Record{Users: []string{"alice", "bob", "carol", "root"}}
	got, err := AccountsToCreate(rec, Options{Target: target, Maps: []Mapping{{From: "home/carol", To: "home/dave"}},
		Users: map[string]string{"alice": "alice.smith"}})
	if err != nil {
		t.Fatal(err)
	}
	// alice's files go to alice.smith in place, carol's to dave under
	// home/dave; bob exists; root is never created.
	want := []NewAccount{{"alice.smith", "/home/alice"}, {"dave", "/home/dave"}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestProblemReason(t *testing.T) {
	for _, c := range []struct {
		p    Problem
		want string
	}{
		{Problem{Err: errors.New("exists"), Warning: true, Exists: true}, ReasonExists},
		{Problem{Err: errors.New("partial"), Warning: true}, ReasonWarning},
		{Problem{Err: fmt.Errorf("x: %w", ErrChangedSinceCapture)}, ReasonChanged},
		{Problem{Err: &fs.PathError{Op: "write", Err: syscall.ENOSPC}}, ReasonDiskFull},
		{Problem{Err: &fs.PathError{Op: "open", Err: syscall.EACCES}}, ReasonPermission},
		{Problem{Err: errors.New("other")}, ReasonOther},
	} {
		if got := c.p.Reason(); got != c.want {
			t.Errorf("%v: %s, want %s", c.p.Err, got, c.want)
		}
	}
}
