package capture_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"smp/capture"
	"smp/cas"
	"smp/cas/manifest"
	"smp/repo"
)

// swapTree is a profile with a file "victim" (0644) and a directory "sub",
// and next to the source root, outside the capture, a 0600 secret file and
// a directory of secrets.
type swapTree struct {
	root, home, victim, secret, secretDir string
	secretData                            []byte
}

func newSwapTree(t *testing.T) swapTree {
	t.Helper()
	base := t.TempDir()
	s := swapTree{root: filepath.Join(base, "root"), secret: filepath.Join(base, "secret"), secretDir: filepath.Join(base, "secrets")}
	s.home = filepath.Join(s.root, "home", "mallory")
	s.victim = filepath.Join(s.home, "victim")
	s.secretData = []byte("root-only secret: the launch codes\n")
	write(t, s.root, "home/mallory/victim", []byte("harmless\n"))
	write(t, s.root, "home/mallory/sub/inner", []byte("inner\n"))
	write(t, s.root, "home/mallory/zz/last", []byte("last\n"))
	if err := os.WriteFile(s.secret, s.secretData, 0o600); err != nil {
		t.Fatal(err)
	}
	write(t, s.secretDir, "data", s.secretData)
	return s
}

// replace puts what make creates at a temporary name over name, as one
// rename where the kernel allows it.
func replace(t *testing.T, name string, make func(tmp string) error) {
	tmp := name + ".swap"
	if err := make(tmp); err != nil {
		t.Errorf("make replacement: %v", err)
		return
	}
	if err := os.Rename(tmp, name); err != nil {
		// A directory cannot be renamed over a file (nor a file over a
		// directory): remove it first.
		os.RemoveAll(name)
		if err := os.Rename(tmp, name); err != nil {
			t.Errorf("swap in: %v", err)
		}
	}
}

// swaps are what a local user may rename over a listed name before capture
// opens it.
func swaps(s swapTree) map[string]func(tmp string) error {
	return map[string]func(tmp string) error{
		"symlink":    func(tmp string) error { return os.Symlink(s.secret, tmp) },
		"fifo":       func(tmp string) error { return syscall.Mkfifo(tmp, 0o644) },
		"directory":  func(tmp string) error { return os.Mkdir(tmp, 0o755) },
		"other file": func(tmp string) error { return os.Link(s.secret, tmp) },
		"dir symlink": func(tmp string) error {
			return os.Symlink(s.secretDir, tmp)
		},
	}
}

// captureWithHook captures s.root with hook run before each open, failing
// the test if the capture does not end within a minute.
func captureWithHook(t *testing.T, r *repo.Repo, s swapTree, mode string, hook func(abs string)) (*capture.Result, []capture.Problem) {
	t.Helper()
	var mu sync.Mutex
	var problems []capture.Problem
	opts := capture.Options{Computer: "pc", Root: s.root, Report: func(p capture.Problem) {
		mu.Lock()
		problems = append(problems, p)
		mu.Unlock()
	}}
	switch mode {
	case "hardlink":
		opts.Hardlink, opts.LinkDir = capture.HardlinkAuto, r.LinkDir()
	case "hardlink-dedupe":
		opts.Hardlink, opts.LinkDir, opts.HardlinkDedupe = capture.HardlinkAuto, r.LinkDir(), true
	}
	capture.SetTestHookOpen(hook)
	defer capture.SetTestHookOpen(nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type out struct {
		res *capture.Result
		err error
	}
	done := make(chan out, 1)
	go func() { res, err := capture.Run(ctx, r, opts); done <- out{res, err} }()
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatalf("capture: %v", o.err)
		}
		mu.Lock()
		defer mu.Unlock()
		return o.res, problems
	case <-time.After(50 * time.Second):
		t.Fatal("capture hangs on the swapped-in file")
		return nil, nil
	}
}

// entryContent is a captured file's contents: its chunks, or its store object.
func entryContent(t *testing.T, r *repo.Repo, e *manifest.Entry) []byte {
	t.Helper()
	if e.Link != nil {
		b, err := os.ReadFile(filepath.Join(r.LinkDir(), filepath.FromSlash(e.Link.Object)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var out []byte
	for _, ch := range e.Chunks {
		b, err := r.ReadChunk(ch.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// checkNoSecret fails if any captured file holds the secret with metadata
// that is not the secret's own, or if anything of the secret directory was
// captured; it returns the entries by path.
func checkNoSecret(t *testing.T, r *repo.Repo, s swapTree, tree cas.ID) map[string]manifest.Entry {
	t.Helper()
	var secretSt syscall.Stat_t
	if err := syscall.Stat(s.secret, &secretSt); err != nil {
		t.Fatal(err)
	}
	byPath := map[string]manifest.Entry{}
	var walk func(id cas.ID, dir string)
	walk = func(id cas.ID, dir string) {
		tr, err := r.LoadTree(id)
		if err != nil {
			t.Fatal(err)
		}
		for i := range tr.Entries {
			e := &tr.Entries[i]
			p := dir + "/" + e.Name
			byPath[strings.TrimPrefix(p, "/")] = *e
			switch e.Type {
			case manifest.TypeDir:
				walk(e.Subtree, p)
			case manifest.TypeFile:
				if !bytes.Contains(entryContent(t, r, e), s.secretData) {
					continue
				}
				// Only the secret's very inode, with its own metadata, may
				// carry its bytes (a hard link a user may make to it).
				if e.Mode != 0o600 || e.UID != secretSt.Uid || e.Inode != secretSt.Ino {
					t.Errorf("%s holds the secret with mode %o uid %d inode %d (the secret: 0600, uid %d, inode %d)",
						p, e.Mode, e.UID, e.Inode, secretSt.Uid, secretSt.Ino)
				}
			}
		}
	}
	walk(tree, "")
	if _, ok := byPath["home/mallory/sub/data"]; ok {
		t.Errorf("captured the secret directory through a swapped-in symlink")
	}
	return byPath
}

// TestCaptureSwapBetweenWalkAndOpen replaces a listed file, just before
// capture opens it, by a symlink to a 0600 file outside the tree, a FIFO, a
// directory or a hard link to that file; and a listed directory by a
// symlink to a directory outside the tree. Nothing outside the tree is
// read, the FIFO does not hang the capture, the name is reported as
// changed during capture, and the other names are captured.
func TestCaptureSwapBetweenWalkAndOpen(t *testing.T) {
	for _, mode := range []string{"chunk", "hardlink", "hardlink-dedupe"} {
		for what := range swaps(swapTree{}) {
			t.Run(mode+"/"+what, func(t *testing.T) {
				s := newSwapTree(t)
				target := s.victim
				if what == "dir symlink" {
					target = filepath.Join(s.home, "sub")
				}
				r := newRepo(t)
				var once sync.Once
				res, problems := captureWithHook(t, r, s, mode, func(abs string) {
					if abs == target {
						once.Do(func() { replace(t, target, swaps(s)[what]) })
					}
				})
				swapped := false
				once.Do(func() { swapped = true })
				if swapped {
					t.Fatalf("%s was never opened", target)
				}
				byPath := checkNoSecret(t, r, s, res.Record.Tree)
				rel, _ := filepath.Rel(s.root, target)
				e, kept := byPath[filepath.ToSlash(rel)]
				linkedSecret := what == "other file" && mode == "hardlink" && kept && e.Link != nil
				if !linkedSecret {
					// Linking first (no stat before the link) captures the
					// user's hard link to the secret as the secret's inode,
					// with the secret's own metadata (checkNoSecret); every
					// other way it is a change during capture.
					if kept {
						t.Errorf("%s kept in the record as %+v", rel, e)
					}
					if len(problems) != 1 || !errors.Is(problems[0].Err, capture.ErrChanged) || problems[0].Path != target {
						t.Errorf("problems %v, want one for %s saying it changed during capture", problems, target)
					}
				}
				for _, p := range []string{"home/mallory/zz/last", "home/mallory/sub"} {
					if _, ok := byPath[p]; !ok && !(what == "dir symlink" && p == "home/mallory/sub") {
						t.Errorf("%s missing from the record", p)
					}
				}
			})
		}
	}
}

// TestCaptureSwapWithoutOpenat2: where the kernel has no openat2, openat
// with O_NOFOLLOW refuses the swapped-in symlink the same way.
func TestCaptureSwapWithoutOpenat2(t *testing.T) {
	defer capture.RefuseOpenat2()()
	s := newSwapTree(t)
	r := newRepo(t)
	var once sync.Once
	res, problems := captureWithHook(t, r, s, "chunk", func(abs string) {
		if abs == s.victim {
			once.Do(func() { replace(t, s.victim, swaps(s)["symlink"]) })
		}
	})
	if !capture.UsesOpenat() {
		t.Fatal("openat2 refused, yet capture did not fall back to openat")
	}
	byPath := checkNoSecret(t, r, s, res.Record.Tree)
	if _, kept := byPath["home/mallory/victim"]; kept || len(problems) != 1 || !errors.Is(problems[0].Err, capture.ErrChanged) {
		t.Fatalf("victim kept %v, problems %v; want it left out as changed during capture", kept, problems)
	}
	if _, ok := byPath["home/mallory/sub/inner"]; !ok {
		t.Fatal("home/mallory/sub/inner missing")
	}
}

// TestCaptureDirectoryMovedDuringWalk moves directories the walk is in:
// the walk finds its way back up through the parent it left (checked by
// inode), or from the source root when the child was moved elsewhere; a
// directory that is itself gone from its place has its remaining
// subdirectories reported as changed, and the rest of the tree is captured.
func TestCaptureDirectoryMovedDuringWalk(t *testing.T) {
	for _, tt := range []struct {
		name   string
		move   []string // renames (pairs, relative to the test directory) when home/u/a/x/y is opened
		want   []string
		absent []string
		report string // the path reported as changed, relative to the root
	}{
		{"child moved away", []string{"root/home/u/a/x", "elsewhere-x"},
			[]string{"home/u/a/x/y/f", "home/u/a/z/g", "home/u/b/h"}, nil, ""},
		{"parent moved away", []string{"root/home/u/a/x", "elsewhere-x", "root/home/u/a", "elsewhere-a"},
			[]string{"home/u/a/x/y/f", "home/u/b/h"}, []string{"home/u/a/z"}, "home/u/a/z"},
		{"parent renamed in place", []string{"root/home/u/a", "root/home/u/a2"},
			[]string{"home/u/a/x/y/f", "home/u/a/z/g", "home/u/b/h"}, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			root := filepath.Join(base, "root")
			for _, f := range []string{"home/u/a/x/y/f", "home/u/a/z/g", "home/u/b/h"} {
				write(t, root, f, []byte(f))
			}
			r := newRepo(t)
			var once sync.Once
			var problems []capture.Problem
			var mu sync.Mutex
			capture.SetTestHookOpen(func(abs string) {
				if abs == filepath.Join(root, "home/u/a/x/y") {
					once.Do(func() {
						for i := 0; i < len(tt.move); i += 2 {
							if err := os.Rename(filepath.Join(base, tt.move[i]), filepath.Join(base, tt.move[i+1])); err != nil {
								t.Error(err)
							}
						}
					})
				}
			})
			defer capture.SetTestHookOpen(nil)
			res, err := capture.Run(context.Background(), r, capture.Options{Computer: "pc", Root: root, Report: func(p capture.Problem) {
				mu.Lock()
				problems = append(problems, p)
				mu.Unlock()
			}})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			paths(t, r, res.Record.Tree, "", &got)
			for _, p := range tt.want {
				if !slices.Contains(got, p) {
					t.Errorf("%s missing from %v", p, got)
				}
			}
			for _, p := range tt.absent {
				if slices.Contains(got, p) {
					t.Errorf("%s captured after its parent moved away", p)
				}
			}
			switch {
			case tt.report == "" && len(problems) > 0:
				t.Errorf("problems %v, want none", problems)
			case tt.report != "" && (len(problems) != 1 || problems[0].Path != filepath.Join(root, tt.report) || !errors.Is(problems[0].Err, capture.ErrChanged)):
				t.Errorf("problems %v, want %s reported as changed during capture", problems, tt.report)
			}
		})
	}
}

// TestCaptureDeepTreeFewDescriptors: a tree deeper than the descriptor
// limit is captured whole: the walk holds no descriptor per level.
func TestCaptureDeepTreeFewDescriptors(t *testing.T) {
	const depth = 1200
	src := t.TempDir()
	rel := "home/u"
	for i := range depth {
		rel += "/d"
		if i%300 == 0 {
			write(t, src, rel+"/f", []byte(rel))
		}
	}
	write(t, src, rel+"/leaf", []byte("leaf"))
	r := newRepo(t)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	res, err := capture.Run(context.Background(), r, capture.Options{Computer: "pc", Root: src, Workers: 4})
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Record.Errors != 0 || res.Record.Files != depth/300+1 || res.Record.Dirs < depth {
		t.Fatalf("captured %d files, %d dirs, %d errors; want %d files, %d+ dirs", res.Record.Files, res.Record.Dirs, res.Record.Errors, depth/300+1, depth)
	}
	var got []string
	paths(t, r, res.Record.Tree, "", &got)
	if !slices.Contains(got, rel+"/leaf") {
		t.Fatalf("the deepest file is missing")
	}
}
