package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"smp/cas/manifest"
)

// symlinkVariant plants symlinks in a target so that dest (a --map
// destination) runs through one; restore must never write through them.
type symlinkVariant struct {
	name  string
	links map[string]string // target-relative symlink -> its target ("OUT" is the outside dir)
	dirs  []string          // real directories to create first
	dest  string            // the --map destination
	bad   string            // the symlink the error must name
}

func symlinkVariants() []symlinkVariant {
	return []symlinkVariant{
		{name: "intermediate", dirs: []string{"etc/cron.d", "home/bob"},
			links: map[string]string{"home/bob/Documents": "../../etc"},
			dest:  "home/bob/Documents/cron.d/alice", bad: "home/bob/Documents"},
		{name: "destination itself", dirs: []string{"etc/cron.d/alice", "home/bob"},
			links: map[string]string{"home/bob/alice": "../../etc/cron.d/alice"},
			dest:  "home/bob/alice", bad: "home/bob/alice"},
		{name: "chain of two", dirs: []string{"etc/cron.d", "home/bob"},
			links: map[string]string{"home/bob/Documents": "docs2", "home/bob/docs2": "../../etc"},
			dest:  "home/bob/Documents/cron.d/alice", bad: "home/bob/Documents"},
		{name: "outside the root", dirs: []string{"home/bob"},
			links: map[string]string{"home/bob/Documents": "OUT"},
			dest:  "home/bob/Documents/alice", bad: "home/bob/Documents"},
		{name: "top level", dirs: []string{"etc"},
			links: map[string]string{"home": "etc"},
			dest:  "home/alice", bad: "home"},
	}
}

// plant builds v in a fresh target and returns it, the outside directory
// and the real directories a write through the symlinks would land in.
func (v symlinkVariant) plant(t *testing.T) (target, outside string) {
	t.Helper()
	target, outside = t.TempDir(), t.TempDir()
	for _, d := range v.dirs {
		if err := os.MkdirAll(filepath.Join(target, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, to := range v.links {
		if to == "OUT" {
			to = outside
		}
		if err := os.Symlink(to, filepath.Join(target, link)); err != nil {
			t.Fatal(err)
		}
	}
	return target, outside
}

// regularFilesBelow lists the regular files below dir, not following
// symlinks.
func regularFilesBelow(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRestoreMapDestinationSymlinkRefused(t *testing.T) {
	m := newMemStore()
	root := m.tree(dir("home", m.tree(dir("alice", m.tree(m.file("job", "* * * * * root evil\n"))))))
	for _, v := range symlinkVariants() {
		t.Run(v.name, func(t *testing.T) {
			target, outside := v.plant(t)
			_, err := Run(context.Background(), m, &manifest.Record{Computer: "pc", Tree: root},
				Options{Target: target, Maps: []Mapping{{"home/alice", v.dest}}})
			if err == nil || !strings.Contains(err.Error(), v.bad+" is a symlink") || strings.Contains(err.Error(), "\n") {
				t.Errorf("Run: %v; want one line naming %s as a symlink", err, v.bad)
			}
			if files := regularFilesBelow(t, target); len(files) != 0 {
				t.Errorf("files written: %q", files)
			}
			if files := regularFilesBelow(t, outside); len(files) != 0 {
				t.Errorf("files written outside the target: %q", files)
			}
		})
	}
}

// testRestorer is a restorer on target as Run sets it up, for tests of
// the directory code on its own.
func testRestorer(t *testing.T, target string, ow Overwrite) *restorer {
	t.Helper()
	fd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := &restorer{opts: Options{Target: target, Overwrite: ow, Report: func(Problem) {}, Progress: &Progress{}},
		dirStates: map[dirKey]*dirState{}, fds: fdCache{max: 4}}
	if r.top, err = r.newHandle(fd, nil, "", "", nil, false); err != nil {
		t.Fatal(err)
	}
	if err := r.top.pin(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.top.unpin()
		r.top.release()
	})
	return r
}

// TestOpenPathNeverFollowsSymlinks checks the mechanism under the check
// Run makes first: a symlink that appears on a --map destination after it
// (or one the record itself restores) is not followed either.
func TestOpenPathNeverFollowsSymlinks(t *testing.T) {
	for _, v := range symlinkVariants() {
		t.Run(v.name, func(t *testing.T) {
			target, outside := v.plant(t)
			r := testRestorer(t, target, OverwriteNever)
			h, err := r.openPath(v.dest)
			if err == nil {
				h.release()
				t.Fatalf("openPath(%s) through a symlink succeeded", v.dest)
			}
			if !strings.HasPrefix(err.Error(), v.bad+": exists as a symlink") {
				t.Errorf("openPath: %v; want it to name %s as a symlink", err, v.bad)
			}
			// --overwrite always replaces the symlink with a real directory.
			r = testRestorer(t, target, OverwriteAlways)
			h, err = r.openPath(v.dest)
			if err != nil {
				t.Fatalf("openPath with --overwrite always: %v", err)
			}
			if err := h.pin(); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mkdirat(h.fd, "probe", 0o700); err != nil {
				t.Fatal(err)
			}
			h.unpin()
			h.release()
			if st, err := os.Lstat(filepath.Join(target, v.bad)); err != nil || !st.IsDir() {
				t.Errorf("%s is not a real directory after --overwrite always: %v", v.bad, err)
			}
			if _, err := os.Lstat(filepath.Join(target, v.dest, "probe")); err != nil {
				t.Errorf("probe not under %s: %v", v.dest, err)
			}
			if n, _ := os.ReadDir(outside); len(n) != 0 {
				t.Errorf("wrote outside the target")
			}
			for _, d := range v.dirs {
				if _, err := os.Lstat(filepath.Join(target, d, "probe")); err == nil {
					t.Errorf("probe written through a symlink into %s", d)
				}
			}
		})
	}
}

func statT(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func TestRestoreExistingDirsKeepMetadata(t *testing.T) {
	m := newMemStore()
	alice := dir("alice", m.tree(m.file("notes", "hello")))
	alice.Mode, alice.User, alice.UID, alice.GID = 0o755, "", 4321, 4321
	home := dir("home", m.tree(alice))
	home.Mode, home.MTimeNs = 0o777, time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	root := m.tree(home)
	owners := os.Geteuid() == 0
	for _, ow := range []Overwrite{OverwriteNever, OverwriteOlder, OverwriteAlways} {
		t.Run(string(ow), func(t *testing.T) {
			target := t.TempDir()
			for _, d := range []struct {
				rel  string
				mode os.FileMode
			}{{"home", 0o755}, {"home/alice", 0o700}} {
				p := filepath.Join(target, d.rel)
				if err := os.Mkdir(p, d.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, d.mode); err != nil {
					t.Fatal(err)
				}
			}
			alicePath, homePath := filepath.Join(target, "home/alice"), filepath.Join(target, "home")
			if owners {
				if err := os.Chown(alicePath, 1234, 1235); err != nil {
					t.Fatal(err)
				}
			}
			haveXattr := unix.Setxattr(alicePath, "user.keep", []byte("mine"), 0) == nil
			old := time.Date(2020, 5, 6, 7, 8, 9, 123456789, time.UTC)
			for _, p := range []string{alicePath, homePath} {
				if err := os.Chtimes(p, old, old); err != nil {
					t.Fatal(err)
				}
			}
			res := run(t, m, root, Options{Target: target, Overwrite: ow, Owners: owners})
			if got, err := os.ReadFile(filepath.Join(alicePath, "notes")); err != nil || string(got) != "hello" {
				t.Fatalf("file not restored into the existing directory: %q, %v", got, err)
			}
			hs, as := statT(t, homePath), statT(t, alicePath)
			if ow == OverwriteAlways {
				if hs.Mode&0o7777 != 0o777 || hs.Mtim.Nano() != home.MTimeNs || res.DirsKept != 0 || res.Dirs != 2 {
					t.Errorf("always: home mode %o mtime %d, dirs %d kept %d; want the record's and 2, 0", hs.Mode&0o7777, hs.Mtim.Nano(), res.Dirs, res.DirsKept)
				}
				if owners && as.Uid != 4321 {
					t.Errorf("always: alice owner %d, want the record's 4321", as.Uid)
				}
				return
			}
			if hs.Mode&0o7777 != 0o755 || as.Mode&0o7777 != 0o700 {
				t.Errorf("modes home %o alice %o; want 755 and 700 kept", hs.Mode&0o7777, as.Mode&0o7777)
			}
			if hs.Mtim.Nano() != old.UnixNano() || as.Mtim.Nano() != old.UnixNano() {
				t.Errorf("mtimes home %v alice %v; want %v kept", time.Unix(0, hs.Mtim.Nano()), time.Unix(0, as.Mtim.Nano()), old)
			}
			if owners && (as.Uid != 1234 || as.Gid != 1235) {
				t.Errorf("alice owner %d:%d; want 1234:1235 kept", as.Uid, as.Gid)
			}
			if haveXattr {
				buf := make([]byte, 16)
				if n, err := unix.Getxattr(alicePath, "user.keep", buf); err != nil || string(buf[:n]) != "mine" {
					t.Errorf("xattr lost: %q, %v", buf[:n], err)
				}
			}
			if res.DirsKept != 2 || res.Dirs != 0 {
				t.Errorf("dirs %d kept %d; want 0 and 2", res.Dirs, res.DirsKept)
			}
		})
	}
}

func TestRestoreRemovesPartialFiles(t *testing.T) {
	m := newMemStore()
	root := m.tree(dir("home", m.tree(dir("alice", m.tree(m.file("a", "A"))))))
	target := t.TempDir()
	if err := os.MkdirAll(filepath.Join(target, "home/alice/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	partials := []string{".smp-0123456789ab.tmp", "home/alice/.smp-ffffffffffff.tmp", "home/.smp-a1b2c3d4e5f6.tmp"}
	for _, p := range partials {
		if err := os.WriteFile(filepath.Join(target, p), []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(target, "home/alice/.smp-000000000000.tmp")); err != nil {
		t.Fatal(err)
	}
	partials = append(partials, "home/alice/.smp-000000000000.tmp")
	keep := []string{"home/alice/.smp-0123456789AB.tmp", "home/alice/.smp-0123.tmp", "home/alice/x.smp-0123456789ab.tmp",
		"home/alice/sub/.smp-0123456789ab.tmp"} // sub: not restored into
	for _, p := range keep {
		if err := os.WriteFile(filepath.Join(target, p), []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(target, "home/alice/.smp-abcdefabcdef.tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, "home/alice/.smp-abcdefabcdef.tmp")
	res := run(t, m, root, Options{Target: target})
	if res.Files != 1 || res.Errors != 0 {
		t.Fatalf("restore: %+v", res)
	}
	for _, p := range partials {
		if _, err := os.Lstat(filepath.Join(target, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("partial %s still there (%v)", p, err)
		}
	}
	for _, p := range keep {
		if _, err := os.Lstat(filepath.Join(target, p)); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Errorf("symlink target touched: %v", err)
	}
}

func TestPartialName(t *testing.T) {
	for range 100 {
		if n := tempName(); !partialName(n) {
			t.Fatalf("partialName(%q) = false for a name tempName made", n)
		}
	}
	for _, n := range []string{".smp-.tmp", ".smp-0123456789ab.tmpx", "smp-0123456789ab.tmp", ".smp-0123456789ag.tmp", ".smp-0123456789abc.tmp"} {
		if partialName(n) {
			t.Errorf("partialName(%q) = true", n)
		}
	}
}

// TestRestoreDeepTreeBoundedFDs restores a tree far deeper than the
// descriptor limit allows directories: restore must not hold one
// descriptor per level.
func TestRestoreDeepTreeBoundedFDs(t *testing.T) {
	const depth = 1000
	m := newMemStore()
	sub := m.tree(m.file("leaf", "bottom"))
	for i := depth - 1; i >= 0; i-- {
		d := dir("d", sub)
		d.MTimeNs += int64(i)
		sub = m.tree(d, m.file(fmt.Sprintf("f%d", i), fmt.Sprint(i)))
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = 128
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	res, err := Run(context.Background(), m, &manifest.Record{Computer: "pc", Tree: sub}, Options{Target: target, AllowSystem: true})
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Errors != 0 || res.Files != depth+1 || res.Dirs != depth {
		t.Fatalf("restore of a %d-deep tree: %+v", depth, res)
	}
	fd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	for i := 0; i <= depth; i++ {
		name, want := fmt.Sprintf("f%d", i), fmt.Sprint(i)
		if i == depth {
			name, want = "leaf", "bottom"
		}
		f, err := unix.Openat(fd, name, unix.O_RDONLY, 0)
		if err != nil {
			t.Fatalf("level %d: %v", i, err)
		}
		n, _ := unix.Read(f, buf)
		unix.Close(f)
		if string(buf[:n]) != want {
			t.Fatalf("level %d: %s holds %q, want %q", i, name, buf[:n], want)
		}
		if i == depth {
			break
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, "d", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
		if want := int64(1_500_000_000_000_000_000 + i); st.Mtim.Nano() != want || st.Mode&0o777 != 0o755 {
			t.Fatalf("level %d: dir mtime %d mode %o, want %d and 755", i, st.Mtim.Nano(), st.Mode&0o777, want)
		}
		next, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("level %d: %v", i, err)
		}
		fd = next
	}
	unix.Close(fd)
}

// TestReopenChecksIdentity: a directory whose descriptor the cache closed
// is reopened only if it is still the same directory; one moved into its
// place, or a symlink, is not written into.
func TestReopenChecksIdentity(t *testing.T) {
	for _, swap := range []string{"directory", "symlink"} {
		t.Run(swap, func(t *testing.T) {
			target, outside := t.TempDir(), t.TempDir()
			r := testRestorer(t, target, OverwriteNever)
			h, err := r.openPath("a/b")
			if err != nil {
				t.Fatal(err)
			}
			defer h.release()
			// Fill the cache so h's descriptor is closed.
			var others []*dirHandle
			for i := range 2 * r.fds.max {
				o, err := r.openPath(fmt.Sprintf("o%d", i))
				if err != nil {
					t.Fatal(err)
				}
				others = append(others, o)
			}
			for _, o := range others {
				o.release()
			}
			if h.fd >= 0 {
				t.Fatal("descriptor still open: the cache does not bound them")
			}
			if err := os.Rename(filepath.Join(target, "a/b"), filepath.Join(target, "moved")); err != nil {
				t.Fatal(err)
			}
			if swap == "directory" {
				err = os.Mkdir(filepath.Join(target, "a/b"), 0o700)
			} else {
				err = os.Symlink(outside, filepath.Join(target, "a/b"))
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := h.pin(); err == nil {
				h.unpin()
				t.Fatalf("pin reopened a %s put in the directory's place", swap)
			}
			// Put back, it reopens.
			if err := os.Remove(filepath.Join(target, "a/b")); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(target, "moved"), filepath.Join(target, "a/b")); err != nil {
				t.Fatal(err)
			}
			if err := h.pin(); err != nil {
				t.Fatalf("pin of the directory back in place: %v", err)
			}
			h.unpin()
		})
	}
}
