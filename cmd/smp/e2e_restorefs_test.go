package main

// End-to-end tests of how restore treats what is already in the target:
// symlinks (never followed), existing directories (left as they were unless
// --overwrite always), partial files of a killed restore, and trees deeper
// than the descriptor limit.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestE2ERestoreMapSymlinkDestination plants symlink chains in the target
// of a --map restore: nothing may be written through them, and the
// restore fails with one line naming the symlink.
func TestE2ERestoreMapSymlinkDestination(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	writeFile(t, filepath.Join(root, "home/alice/job"), []byte("* * * * * root evil\n"), 0o644)
	writeFile(t, filepath.Join(root, "home/alice/sub/x"), []byte("x\n"), 0o600)
	store := newStore(t)
	doCapture(t, exitOK, store, "pc1", "--root", root, "home")

	variants := []struct {
		name  string
		dirs  []string
		links map[string]string // target-relative symlink -> its target ("OUT": the outside dir)
		dest  string
		bad   string
	}{
		{"intermediate", []string{"etc/cron.d", "home/bob"}, map[string]string{"home/bob/Documents": "../../etc"},
			"home/bob/Documents/cron.d/alice", "home/bob/Documents"},
		{"destination itself", []string{"etc/cron.d/alice", "home/bob"}, map[string]string{"home/bob/alice": "../../etc/cron.d/alice"},
			"home/bob/alice", "home/bob/alice"},
		{"chain of two", []string{"etc/cron.d", "home/bob"}, map[string]string{"home/bob/Documents": "docs", "home/bob/docs": "../../etc"},
			"home/bob/Documents/cron.d/alice", "home/bob/Documents"},
		{"absolute outside the root", []string{"home/bob"}, map[string]string{"home/bob/Documents": "OUT"},
			"home/bob/Documents/alice", "home/bob/Documents"},
		{"absolute chain", []string{"home/bob", "etc/cron.d"}, map[string]string{"home/bob/Documents": "ROOT/home/bob/d2", "home/bob/d2": "ROOT/etc"},
			"home/bob/Documents/cron.d/alice", "home/bob/Documents"},
	}
	plant := func(t *testing.T, dirs []string, links map[string]string) (target, outside string) {
		target, outside = tmpDir(t), tmpDir(t)
		for _, d := range dirs {
			mkdirs(t, filepath.Join(target, d))
		}
		for link, to := range links {
			to = strings.Replace(strings.Replace(to, "OUT", outside, 1), "ROOT", target, 1)
			if err := os.Symlink(to, filepath.Join(target, link)); err != nil {
				t.Fatal(err)
			}
		}
		return target, outside
	}
	noFiles := func(t *testing.T, dirs ...string) {
		t.Helper()
		for _, d := range dirs {
			for _, p := range regularFiles(t, d) {
				t.Errorf("%s written (through a symlink)", filepath.Join(d, p))
			}
		}
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			target, outside := plant(t, v.dirs, v.links)
			r := smp(t, "restore", "--store", store, "--computer", "pc1", "--root", target, "--map", "home/alice="+v.dest)
			if r.code == exitOK || len(r.stderrLines()) != 1 || !strings.Contains(r.stderr, v.bad+" is a symlink") {
				t.Errorf("want a failure with one line naming %s as a symlink\n%s", v.bad, r)
			}
			noFiles(t, target, outside)

			// --overwrite always replaces the symlink with a real directory.
			r = smp(t, "restore", "--store", store, "--computer", "pc1", "--root", target, "--map", "home/alice="+v.dest, "--overwrite", "always")
			if r.code != exitOK {
				t.Fatalf("--overwrite always: want exit 0\n%s", r)
			}
			if st, err := os.Lstat(filepath.Join(target, v.bad)); err != nil || !st.IsDir() {
				t.Errorf("%s is not a real directory after --overwrite always (%v)", v.bad, err)
			}
			if got := readFile(t, filepath.Join(target, v.dest, "job")); got != "* * * * * root evil\n" {
				t.Errorf("job restored as %q", got)
			}
			noFiles(t, outside)
			for _, d := range v.dirs {
				if d != "home/bob" && !strings.HasPrefix(v.dest, d) {
					noFiles(t, filepath.Join(target, d))
				}
			}
		})
	}

	// Unmapped: a symlink on a path of the record is not followed either.
	t.Run("unmapped", func(t *testing.T) {
		target, outside := plant(t, []string{"etc"}, map[string]string{"home": "etc", "etc/alice": "OUT"})
		r := smp(t, "restore", "--store", store, "--computer", "pc1", "--root", target)
		if r.code == exitOK || !strings.Contains(r.stderr, filepath.Join(target, "home")+": exists as a symlink") {
			t.Errorf("want a failure naming %s as a symlink\n%s", filepath.Join(target, "home"), r)
		}
		noFiles(t, target, outside)
	})
}

// keptOut is the part of restore --json these tests read.
type keptOut struct {
	Files    uint64   `json:"files"`
	Dirs     uint64   `json:"dirs"`
	DirsKept uint64   `json:"dirs_kept"`
	Skipped  uint64   `json:"skipped"`
	Errors   uint64   `json:"errors"`
	Problems []string `json:"problems"`
}

// TestE2ERestoreExistingDirsKeepMetadata: with --overwrite never (and
// older) a restore writes into existing directories but leaves their mode,
// owner and mtime alone, and counts them as left alone.
func TestE2ERestoreExistingDirsKeepMetadata(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	writeFile(t, filepath.Join(root, "home/alice/notes.txt"), []byte("notes\n"), 0o644)
	if err := os.Chmod(filepath.Join(root, "home"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "home/alice"), 0o755); err != nil {
		t.Fatal(err)
	}
	lchtimes(t, filepath.Join(root, "home/alice"), time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC))
	lchtimes(t, filepath.Join(root, "home"), time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC))
	owners := os.Geteuid() == 0
	if owners {
		if err := os.Chown(filepath.Join(root, "home/alice"), 4321, 4321); err != nil {
			t.Fatal(err)
		}
	}
	store := newStore(t)
	doCapture(t, exitOK, store, "pc1", "--root", root, "home")

	kept := time.Date(2024, 2, 3, 4, 5, 6, 789, time.UTC)
	prepare := func(t *testing.T) string {
		target := tmpDir(t)
		for _, d := range []struct {
			rel  string
			mode os.FileMode
		}{{"home", 0o755}, {"home/alice", 0o700}} {
			p := filepath.Join(target, d.rel)
			mkdirs(t, p)
			if err := os.Chmod(p, d.mode); err != nil {
				t.Fatal(err)
			}
		}
		if owners {
			if err := os.Chown(filepath.Join(target, "home/alice"), 0, 0); err != nil {
				t.Fatal(err)
			}
		}
		lchtimes(t, filepath.Join(target, "home/alice"), kept)
		lchtimes(t, filepath.Join(target, "home"), kept)
		return target
	}
	check := func(t *testing.T, target string) {
		t.Helper()
		if got := readFile(t, filepath.Join(target, "home/alice/notes.txt")); got != "notes\n" {
			t.Errorf("notes.txt restored as %q", got)
		}
		for _, d := range []struct {
			rel  string
			mode uint32
		}{{"home", 0o755}, {"home/alice", 0o700}} {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(target, d.rel), &st); err != nil {
				t.Fatal(err)
			}
			if st.Mode&0o7777 != d.mode || st.Mtim.Nano() != kept.UnixNano() {
				t.Errorf("%s: mode %o mtime %v; want %o and %v kept", d.rel, st.Mode&0o7777, time.Unix(0, st.Mtim.Nano()).UTC(), d.mode, kept)
			}
			if owners && (st.Uid != 0 || st.Gid != 0) {
				t.Errorf("%s: owner %d:%d; want 0:0 kept", d.rel, st.Uid, st.Gid)
			}
		}
	}
	for _, ow := range []string{"never", "older"} {
		t.Run(ow, func(t *testing.T) {
			target := prepare(t)
			r := mustSMP(t, "restore", "--store", store, "--computer", "pc1", "--root", target, "--overwrite", ow)
			check(t, target)
			if !strings.Contains(r.stdout, "; 2 existing left alone") {
				t.Errorf("summary does not count the two existing directories as left alone:\n%s", r)
			}
			target = prepare(t)
			var out keptOut
			smpJSON(t, exitOK, &out, "restore", "--store", store, "--computer", "pc1", "--root", target, "--overwrite", ow, "--json")
			check(t, target)
			if out.DirsKept != 2 || out.Dirs != 0 || out.Files != 1 || out.Skipped != 0 || out.Errors != 0 {
				t.Errorf("restore --json: %+v; want dirs_kept 2, dirs 0, files 1", out)
			}
		})
	}
	t.Run("always", func(t *testing.T) {
		target := prepare(t)
		// --allow-system: the record's own mode for home and root ownership
		// in alice's profile are what --overwrite always must put back.
		mustSMP(t, "restore", "--store", store, "--computer", "pc1", "--root", target, "--overwrite", "always", "--allow-system")
		compareTrees(t, root, target, compareOpts{owners: owners})
	})
}

// TestE2ERestoreRemovesPartials: a re-run removes the temporary files an
// interrupted restore left in the directories it restores into.
func TestE2ERestoreRemovesPartials(t *testing.T) {
	t.Parallel()
	root := filepath.Join(tmpDir(t), "root")
	writeFile(t, filepath.Join(root, "home/alice/big"), rnd(7, 8<<20), 0o644)
	writeFile(t, filepath.Join(root, "home/alice/d/small"), []byte("small\n"), 0o644)
	store := newStore(t)
	doCapture(t, exitOK, store, "pc1", "--root", root, "home")
	target := tmpDir(t)

	// Kill a restore while it writes: whatever temporary names it left are
	// partials (planted ones make sure there are some).
	cmd := exec.Command(smpPath(t), "restore", "--store", store, "--computer", "pc1", "--root", target, "--workers", "1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once a temporary name shows (or at the deadline): a fixed
	// sleep can outlast the whole restore.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if m, _ := filepath.Glob(filepath.Join(target, "home/alice/.smp-*.tmp")); len(m) > 0 {
			break
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	mkdirs(t, filepath.Join(target, "home/alice/d"))
	partials := []string{"home/alice/.smp-0123456789ab.tmp", "home/alice/d/.smp-abcdef012345.tmp", ".smp-00000000beef.tmp"}
	for _, p := range partials {
		writeFile(t, filepath.Join(target, p), []byte("half a file"), 0o600)
	}
	writeFile(t, filepath.Join(target, "home/alice/.smp-notmine.tmp"), []byte("a user's file"), 0o600)
	// --overwrite always: the killed restore may have finished a file.
	r := smp(t, "restore", "--store", store, "--computer", "pc1", "--root", target, "--overwrite", "always")
	if r.code != exitOK {
		t.Fatalf("re-run: want exit 0\n%s", r)
	}
	var left []string
	for _, p := range listTree(t, target) {
		if strings.HasPrefix(filepath.Base(p), ".smp-") && p != "home/alice/.smp-notmine.tmp" {
			left = append(left, p)
		}
	}
	if len(left) != 0 {
		t.Errorf("partial files left after the re-run: %q", left)
	}
	if got := readFile(t, filepath.Join(target, "home/alice/.smp-notmine.tmp")); got != "a user's file" {
		t.Errorf("a file not matching the temporary pattern was touched: %q", got)
	}
	if got := readFile(t, filepath.Join(target, "home/alice/d/small")); got != "small\n" {
		t.Errorf("small restored as %q", got)
	}
}

// TestE2ERestoreDeepTreeLowFDLimit restores a tree 2000 directories deep
// with a descriptor limit of 1024.
func TestE2ERestoreDeepTreeLowFDLimit(t *testing.T) {
	t.Parallel()
	const depth = 2000
	root := filepath.Join(tmpDir(t), "root")
	mkdirs(t, filepath.Join(root, "home/alice"))
	// Paths this deep pass PATH_MAX: build and check them one name at a
	// time.
	walkDeep := func(base string, each func(fd, level int)) {
		t.Helper()
		fd, err := unix.Open(base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		for level := range depth {
			each(fd, level)
			next, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			unix.Close(fd)
			if err != nil {
				t.Fatalf("level %d: %v", level, err)
			}
			fd = next
		}
		each(fd, depth)
		unix.Close(fd)
	}
	walkDeep(filepath.Join(root, "home/alice"), func(fd, level int) {
		if level%100 == 0 {
			f, err := unix.Openat(fd, fmt.Sprintf("f%d", level), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			unix.Write(f, []byte(fmt.Sprint(level)))
			unix.Close(f)
		}
		if level < depth {
			if err := unix.Mkdirat(fd, "d", 0o755); err != nil {
				t.Fatal(err)
			}
		}
	})
	store := newStore(t)
	c := doCapture(t, exitOK, store, "pc1", "--root", root, "home")
	if c.Errors != 0 || c.Dirs < depth {
		t.Fatalf("capture of the deep tree: %+v", c)
	}
	target := tmpDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", `ulimit -n 1024 && exec "$0" "$@"`, smpPath(t),
		"restore", "--store", store, "--computer", "pc1", "--root", target)
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("restore with ulimit -n 1024: %v\n%s", err, out)
	}
	walkDeep(filepath.Join(target, "home/alice"), func(fd, level int) {
		if level%100 != 0 {
			return
		}
		buf := make([]byte, 8)
		f, err := unix.Openat(fd, fmt.Sprintf("f%d", level), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("level %d: %v", level, err)
		}
		n, _ := unix.Read(f, buf)
		unix.Close(f)
		if string(buf[:n]) != fmt.Sprint(level) {
			t.Fatalf("level %d holds %q", level, buf[:n])
		}
	})
}
