package restore

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"smp/cas/manifest"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		rel  string
		area area
		user string
	}{
		{"home", areaAbove, ""},
		{"home/alice", areaProfile, "alice"},
		{"home/alice/.bashrc", areaInside, "alice"},
		{"home/alice/a/b", areaInside, "alice"},
		{"root", areaProfile, "root"},
		{"root/.ssh/authorized_keys", areaInside, "root"},
		{"etc", areaSystem, ""},
		{"etc/cron.d/x", areaSystem, ""},
		{"usr/bin/su", areaSystem, ""},
		{"var/home/alice", areaSystem, ""},
		{"homes/alice", areaSystem, ""},
		{"rooted", areaSystem, ""},
		{"boot", areaSystem, ""},
	}
	for _, tt := range tests {
		a, u := classify(tt.rel)
		if a != tt.area || u != tt.user {
			t.Errorf("classify(%q) = %d %q, want %d %q", tt.rel, a, u, tt.area, tt.user)
		}
	}
}

func testAccounts() *fileAccounts {
	return &fileAccounts{root: "/t",
		users:  map[string]passwdEntry{"root": {0, 0}, "alice": {2001, 2100}, "nobody": {7001, 7002}, "bob": {3000, 3000}},
		groups: map[string]int{"root": 0, "alice": 2100, "nobody": 7005, "staff": 50}}
}

func TestAdmit(t *testing.T) {
	file := func(mode uint32, user, group string, uid, gid uint32) manifest.Entry {
		return manifest.Entry{Name: "x", Type: manifest.TypeFile, Mode: mode, User: user, Group: group, UID: uid, GID: gid}
	}
	dirE := func(mode uint32, user string, uid uint32) manifest.Entry {
		return manifest.Entry{Name: "x", Type: manifest.TypeDir, Mode: mode, User: user, Group: user, UID: uid, GID: uid}
	}
	link := manifest.Entry{Name: "x", Type: manifest.TypeSymlink, Target: "/etc"}
	capFile := file(0o755, "alice", "alice", 1000, 1000)
	capFile.Xattrs = map[string][]byte{"security.capability": {1}, "trusted.x": {2}, "user.note": {3}}
	tests := []struct {
		name     string
		stored   string
		e        manifest.Entry
		maps     []Mapping
		system   bool
		want     verdict
		mode     uint32
		uid, gid uint32
		xattrs   []string
		dropped  string // "" when nothing is dropped
	}{
		{"system file", "etc/cron.d/x", file(0o644, "root", "root", 0, 0), nil, false, admitDrop, 0, 0, 0, nil, "etc/cron.d/x (outside the profile paths)"},
		{"system dir", "etc", dirE(0o755, "root", 0), nil, false, admitDrop, 0, 0, 0, nil, "etc (outside the profile paths)"},
		{"system dir mapped below", "etc", dirE(0o755, "root", 0), []Mapping{{"etc/skel", "home/alice/skel"}}, false, admitThrough, 0, 0, 0, nil, "etc (outside the profile paths)"},
		{"inside a passed-through dir", "etc/passwd", file(0o644, "root", "root", 0, 0), []Mapping{{"etc/skel", "home/alice/skel"}}, false, admitDrop, 0, 0, 0, nil, ""},
		{"mapped into a profile", "etc/skel", dirE(0o755, "root", 0), []Mapping{{"etc/skel", "home/alice/skel"}}, false, admitWrite, 0o755, 2001, 2100, nil, "home/alice/skel (root ownership)"},
		{"file directly in home", "home/x", file(0o644, "alice", "alice", 1, 1), nil, false, admitDrop, 0, 0, 0, nil, "home/x (a file where a directory is expected)"},
		{"symlink as a profile", "home/alice", link, nil, false, admitDrop, 0, 0, 0, nil, "home/alice (a symlink where a directory is expected)"},
		{"symlink as root", "root", link, nil, false, admitDrop, 0, 0, 0, nil, "root (a symlink where a directory is expected)"},
		{"home keeps no record metadata", "home", dirE(0o4777, "alice", 1000), nil, false, admitWrite, 0o755, 0, 0, nil, ""},
		{"plain profile file", "home/alice/a", file(0o640, "alice", "staff", 1000, 20), nil, false, admitWrite, 0o640, 2001, 50, nil, ""},
		{"unknown names keep numbers", "home/alice/a", file(0o640, "zed", "zgrp", 4242, 4343), nil, false, admitWrite, 0o640, 4242, 4343, nil, ""},
		{"setuid root file", "home/alice/bin/su", file(0o4755, "root", "root", 0, 0), nil, false, admitWrite, 0o755, 2001, 2100, nil, "home/alice/bin/su (setuid/setgid bits, root ownership)"},
		{"setgid file", "home/alice/f", file(0o2755, "alice", "alice", 1, 1), nil, false, admitWrite, 0o755, 2001, 2100, nil, "home/alice/f (setuid/setgid bits)"},
		{"setgid dir kept", "home/alice/shared", dirE(0o2775, "alice", 1), nil, false, admitWrite, 0o2775, 2001, 2100, nil, ""},
		{"setuid dir", "home/alice/d", dirE(0o4775, "alice", 1), nil, false, admitWrite, 0o775, 2001, 2100, nil, "home/alice/d (setuid/setgid bits)"},
		{"root group only", "home/alice/g", file(0o644, "alice", "root", 1, 0), nil, false, admitWrite, 0o644, 2001, 2100, nil, "home/alice/g (root ownership)"},
		{"capabilities", "home/alice/cap", capFile, nil, false, admitWrite, 0o755, 2001, 2100, []string{"user.note"}, "home/alice/cap (xattr security.capability, xattr trusted.x)"},
		{"root's profile keeps root", "root/.profile", file(0o644, "root", "root", 0, 0), nil, false, admitWrite, 0o644, 0, 0, nil, ""},
		{"root's profile loses setuid", "root/x", file(0o4755, "root", "root", 0, 0), nil, false, admitWrite, 0o755, 0, 0, nil, "root/x (setuid/setgid bits)"},
		{"profile without an account", "home/ghost/x", file(0o644, "root", "root", 0, 0), nil, false, admitWrite, 0o644, nobodyID, nobodyID, nil, "home/ghost/x (root ownership)"},
		{"allow-system", "etc/cron.d/x", file(0o4755, "root", "root", 0, 0), nil, true, admitWrite, 0o4755, 0, 0, nil, ""},
		{"allow-system setuid in a profile", "home/alice/su", file(0o4755, "root", "root", 0, 0), nil, true, admitWrite, 0o4755, 0, 0, nil, ""},
		// --map home/daemon=home/nobody: owner, the group named like the
		// user and the profile directory's group (its primary group) move.
		{"mapped user", "home/daemon/f", file(0o644, "daemon", "daemon", 1, 1), []Mapping{{"home/daemon", "home/nobody"}}, false, admitWrite, 0o644, 7001, 7005, nil, ""},
		{"mapped user's primary group", "home/daemon/f", file(0o644, "daemon", "dgroup", 1, 12), []Mapping{{"home/daemon", "home/nobody"}}, false, admitWrite, 0o644, 7001, 7005, nil, ""},
		{"other user's file, mapped group name", "home/daemon/f", file(0o644, "bob", "daemon", 9, 1), []Mapping{{"home/daemon", "home/nobody"}}, false, admitWrite, 0o644, 3000, 7005, nil, ""},
		{"other user's file keeps a shared group", "home/daemon/f", file(0o644, "bob", "dgroup", 9, 12), []Mapping{{"home/daemon", "home/nobody"}}, false, admitWrite, 0o644, 3000, 12, nil, ""},
		{"mapped to a user without a group of that name", "home/daemon/f", file(0o644, "daemon", "daemon", 1, 1), []Mapping{{"home/daemon", "home/bob"}}, false, admitWrite, 0o644, 3000, 3000, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &policy{allowSystem: tt.system, owners: true, acc: testAccounts(), users: userMaps(tt.maps), primary: map[string]string{"daemon": "dgroup"}}
			r := &restorer{opts: Options{Maps: tt.maps}, pol: p}
			rel, err := r.mapPath(tt.stored)
			if err != nil {
				t.Fatal(err)
			}
			e := tt.e
			before := len(e.Xattrs)
			got := r.admit(tt.stored, rel, &e)
			if got != tt.want {
				t.Fatalf("verdict %d, want %d", got, tt.want)
			}
			if drops := p.droppedPaths(); tt.dropped == "" && len(drops) > 0 || tt.dropped != "" && !slices.Equal(drops, []string{tt.dropped}) {
				t.Errorf("dropped %q, want %q", drops, tt.dropped)
			}
			if len(tt.e.Xattrs) != before {
				t.Error("admit changed the loaded tree's xattr map")
			}
			if got != admitWrite {
				return
			}
			if e.Mode != tt.mode || e.UID != tt.uid || e.GID != tt.gid {
				t.Errorf("mode %o owner %d:%d, want %o %d:%d", e.Mode, e.UID, e.GID, tt.mode, tt.uid, tt.gid)
			}
			var xs []string
			for k := range e.Xattrs {
				xs = append(xs, k)
			}
			slices.Sort(xs)
			if tt.e.Xattrs != nil && !slices.Equal(xs, tt.xattrs) {
				t.Errorf("xattrs %q, want %q", xs, tt.xattrs)
			}
		})
	}
}

func TestUserMaps(t *testing.T) {
	got := userMaps([]Mapping{{"home/a", "home/b"}, {"root", "home/admin"}, {"home/c/Docs", "home/d/Docs"}, {"home/e", "srv/e"}, {"home/f", "home/f"}, {"home/g", "root"}})
	want := map[string]string{"a": "b", "g": "root"}
	if len(got) != len(want) || got["a"] != "b" || got["g"] != "root" {
		t.Errorf("userMaps = %v, want %v", got, want)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("restoring owners needs root")
	}
}

func owner(t *testing.T, p string) (uint32, uint32, os.FileMode) {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sys().(*syscall.Stat_t)
	return s.Uid, s.Gid, st.Mode()
}

// hostileRecord is what a compromised source computer can commit: a cron
// job, a setuid root shell in alice's profile, a file directly in home, and
// alice's file hard-linked with root's authorized_keys.
func hostileRecord(m *memStore) manifest.Record {
	rootOwned := func(e manifest.Entry) manifest.Entry {
		e.User, e.Group, e.UID, e.GID = "root", "root", 0, 0
		return e
	}
	suid := rootOwned(m.file("sh", "#!/bin/sh\n"))
	suid.Mode = 0o4755
	k1 := m.file("k", "ssh-ed25519 AAAA attacker\n")
	k1.HardLink = "1"
	k1.User, k1.UID, k1.GID = "alice", 1000, 1000
	k2 := rootOwned(m.file("authorized_keys", "ssh-ed25519 AAAA attacker\n"))
	k2.HardLink = "1"
	alice := dir("alice", m.tree(dir("bin", m.tree(suid)), k1))
	alice.User, alice.Group, alice.UID, alice.GID = "alice", "alice", 1000, 1000
	root := m.tree(
		dir("etc", m.tree(dir("cron.d", m.tree(rootOwned(m.file("x", "* * * * * root sh -c id\n")))))),
		dir("home", m.tree(alice, m.file("stray", "x"))),
		dir("root", m.tree(dir(".ssh", m.tree(k2)))),
	)
	return manifest.Record{Computer: "pc", Tree: root}
}

func TestRestorePolicyHostileRecord(t *testing.T) {
	requireRoot(t)
	m := newMemStore()
	rec := hostileRecord(m)
	target := t.TempDir()
	writeAccounts(t, target, "root:x:0:0::/root:/bin/sh\nalice:x:2001:2100::/home/alice:/bin/sh\n", "root:x:0:\nalice:x:2100:\n")
	res, err := Run(context.Background(), m, &rec, Options{Target: target, Owners: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(target, "etc/cron.d")); !os.IsNotExist(err) {
		t.Errorf("etc/cron.d written (%v)", err)
	}
	if _, err := os.Lstat(filepath.Join(target, "home/stray")); !os.IsNotExist(err) {
		t.Errorf("home/stray written (%v)", err)
	}
	if uid, gid, mode := owner(t, filepath.Join(target, "home/alice/bin/sh")); uid != 2001 || gid != 2100 || mode&os.ModeSetuid != 0 {
		t.Errorf("setuid root file restored as %d:%d %v, want 2001:2100 without setuid", uid, gid, mode)
	}
	a, _ := os.Stat(filepath.Join(target, "home/alice/k"))
	b, _ := os.Stat(filepath.Join(target, "root/.ssh/authorized_keys"))
	if a == nil || b == nil || os.SameFile(a, b) {
		t.Errorf("alice's file and root's authorized_keys: %v %v, want two inodes", a, b)
	}
	if uid, _, _ := owner(t, filepath.Join(target, "root/.ssh/authorized_keys")); uid != 0 {
		t.Errorf("root's own file restored owned by %d", uid)
	}
	want := []string{"etc (outside the profile paths)", "home/alice/bin (root ownership)", "home/alice/bin/sh (setuid/setgid bits, root ownership)", "home/stray (a file where a directory is expected)"}
	if res.Dropped != uint64(len(want)) || !slices.Equal(res.DroppedPaths, want) {
		t.Errorf("dropped %d %q, want %q", res.Dropped, res.DroppedPaths, want)
	}

	// The admin who wants all of it says so.
	target = t.TempDir()
	res, err = Run(context.Background(), m, &rec, Options{Target: target, Owners: true, AllowSystem: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(target, "etc/cron.d/x")); err != nil {
		t.Errorf("--allow-system: etc/cron.d/x not restored: %v", err)
	}
	if uid, _, mode := owner(t, filepath.Join(target, "home/alice/bin/sh")); uid != 0 || mode&os.ModeSetuid == 0 {
		t.Errorf("--allow-system: setuid root file restored as %d %v", uid, mode)
	}
	if res.Dropped != 0 {
		t.Errorf("--allow-system dropped %q", res.DroppedPaths)
	}
}

func TestRestoreMapUsesTargetAccounts(t *testing.T) {
	requireRoot(t)
	m := newMemStore()
	f := m.file("f", "data")
	f.User, f.Group, f.UID, f.GID = "daemon", "daemon", 1, 1
	g := m.file("g", "data")
	g.User, g.Group, g.UID, g.GID = "daemon", "staff", 1, 50
	d := dir("daemon", m.tree(f, g))
	d.User, d.Group, d.UID, d.GID = "daemon", "daemon", 1, 1
	rec := manifest.Record{Computer: "pc", Tree: m.tree(dir("home", m.tree(d)))}
	// The target's own ids, unlike any the host gives these names.
	target := t.TempDir()
	writeAccounts(t, target, "nobody:x:7001:7002::/:/bin/false\ndaemon:x:7101:7102::/:/bin/false\n", "nobody:x:7005:\nstaff:x:7050:\n")
	if _, err := Run(context.Background(), m, &rec, Options{Target: target, Owners: true, Maps: []Mapping{{"home/daemon", "home/nobody"}}}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][2]uint32{"": {7001, 7005}, "f": {7001, 7005}, "g": {7001, 7050}} {
		if uid, gid, _ := owner(t, filepath.Join(target, "home/nobody", name)); uid != want[0] || gid != want[1] {
			t.Errorf("home/nobody/%s owned by %d:%d, want %d:%d", name, uid, gid, want[0], want[1])
		}
	}

	// A destination account the target lacks: refused, nothing written.
	target = t.TempDir()
	writeAccounts(t, target, "root:x:0:0::/root:/bin/sh\n", "")
	_, err := Run(context.Background(), m, &rec, Options{Target: target, Owners: true, Maps: []Mapping{{"home/daemon", "home/ghost"}}})
	if err == nil || !strings.Contains(err.Error(), `"ghost"`) || !strings.Contains(err.Error(), filepath.Join(target, "etc/passwd")) {
		t.Fatalf("map to a missing account: err = %v, want one naming ghost and the target's passwd", err)
	}
	if got := listAll(t, target); !slices.Equal(got, []string{"etc", "etc/group", "etc/passwd"}) {
		t.Errorf("a refused restore wrote %q", got)
	}
}

func listAll(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(root, p); rel != "." {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestRestorePolicyMapOutOfSystemPath: a --map from a path outside the
// profiles into one is honoured; the rest of that directory is not written
// and is counted once.
func TestRestorePolicyMapOutOfSystemPath(t *testing.T) {
	m := newMemStore()
	skel := dir("skel", m.tree(m.file(".bashrc", "PS1=$\n")))
	rec := manifest.Record{Computer: "pc", Tree: m.tree(dir("etc", m.tree(m.file("passwd", "x"), skel)), dir("usr", m.tree(m.file("su", "y"))))}
	target := t.TempDir()
	res, err := Run(context.Background(), m, &rec, Options{Target: target, Maps: []Mapping{{"etc/skel", "home/alice/skel"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := listAll(t, target); !slices.Equal(got, []string{"home", "home/alice", "home/alice/skel", "home/alice/skel/.bashrc"}) {
		t.Errorf("restored %q", got)
	}
	want := []string{"etc (outside the profile paths)", "usr (outside the profile paths)"}
	if res.Dropped != 2 || res.Outside != 2 || !slices.Equal(res.DroppedPaths, want) || res.Files != 1 || res.Errors != 0 {
		t.Errorf("dropped %d (%d outside) %q, files %d, errors %d; want %q and 1 file", res.Dropped, res.Outside, res.DroppedPaths, res.Files, res.Errors, want)
	}
}
