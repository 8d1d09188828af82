package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestE2ECaptureSymlinkRace: root captures mallory's home while mallory
// swaps, as fast as she can, her regular file "victim" with a symlink to a
// root-only 0600 file and with a FIFO, and her directory "sub" with a
// symlink to a root-only directory (each swap one atomic rename). Captures
// run back to back for at least 5 seconds in every mode (chunked, hard
// links, hard links with dedupe); each record is then restored. No
// restored file holds the secret's bytes, a restored "victim" is never a
// regular file with anything but mallory's own contents, mode and owner,
// and no capture hangs on the FIFO.
func TestE2ECaptureSymlinkRace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the capture must run with rights mallory does not have")
	}
	t.Parallel()
	const mallory = 4242
	dir := tmpDir(t)
	root := filepath.Join(dir, "root")
	home := filepath.Join(root, "home", "mallory")
	spare := filepath.Join(dir, "mallory-tmp") // hers, outside the capture
	secret := []byte("TOP-SECRET root-only bytes 7f3a9c\n")
	secretFile := filepath.Join(dir, "secret")
	secretDir := filepath.Join(dir, "secrets")
	writeFile(t, secretFile, secret, 0o600)
	writeFile(t, filepath.Join(secretDir, "key"), secret, 0o600)
	harmless := []byte("mallory's harmless file\n")
	writeFile(t, filepath.Join(home, "notes"), []byte("notes\n"), 0o644)
	mkdirs(t, spare)
	// Many victims, so that every capture meets several at the moment of a
	// swap; filler files widen the gap between the walk's stat of a name
	// and its open (the walk stats a whole directory before its files go
	// to the workers and before it enters the subdirectories).
	const victims, subs = 40, 8
	var pairs [][2]string // name in the home, its swapped-in alternatives' base
	for i := range victims {
		v := filepath.Join(home, fmt.Sprintf("victim%02d", i))
		writeFile(t, v, harmless, 0o644)
		alt := filepath.Join(spare, fmt.Sprintf("victim%02d", i))
		if err := os.Symlink(secretFile, alt+".link"); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(alt+".fifo", 0o644); err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, [2]string{v, alt})
	}
	for i := range subs {
		d := filepath.Join(home, fmt.Sprintf("sub%d", i))
		writeFile(t, filepath.Join(d, "own"), []byte("mallory's own\n"), 0o644)
		if err := os.Symlink(secretDir, filepath.Join(spare, fmt.Sprintf("sub%d.link", i))); err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, [2]string{d, filepath.Join(spare, fmt.Sprintf("sub%d", i))})
	}
	for i := range 500 {
		writeFile(t, filepath.Join(home, fmt.Sprintf("filler-%04d", i)), []byte("filler\n"), 0o644)
	}
	// Everything in the home and the spare directory is mallory's.
	for _, d := range []string{home, spare} {
		filepath.WalkDir(d, func(p string, _ fs.DirEntry, err error) error {
			if err == nil {
				err = os.Lchown(p, mallory, mallory)
			}
			return err
		})
	}
	store := newStore(t)

	// The swapper: each exchange is atomic, so every name always exists
	// and is, at any moment, mallory's own file (or directory), the
	// symlink or the FIFO.
	exchange := func(a, b string) {
		if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
			t.Errorf("exchange %s and %s: %v", a, b, err)
		}
	}
	var stop atomic.Bool
	var swaps atomic.Uint64
	var wg sync.WaitGroup
	wg.Go(func() {
		for round := 0; !stop.Load(); round++ {
			ext := []string{".link", ".fifo"}[round%2]
			for range 2 { // swap in, then back
				for _, p := range pairs {
					alt := p[1] + ext
					if strings.Contains(filepath.Base(p[0]), "sub") {
						alt = p[1] + ".link"
					}
					exchange(p[0], alt)
				}
				swaps.Add(uint64(len(pairs)))
			}
		}
	})
	t.Cleanup(func() { stop.Store(true); wg.Wait() }) // also when a capture fails the test

	modes := [][]string{{"--hardlink", "never"}, {"--hardlink", "auto"}, {"--hardlink", "auto", "--hardlink-dedupe"}}
	var records []string
	changed := 0
	start := time.Now()
	for i := 0; time.Since(start) < 5*time.Second || i < 2*len(modes); i++ {
		var c captureOut
		args := append([]string{"capture", "--store", store, "--computer", "pc", "--root", root, "--json"}, modes[i%len(modes)]...)
		r := smp(t, args...)
		if r.code != exitOK && r.code != exitPartial {
			t.Fatalf("capture: want exit 0 or 3\n%s", r)
		}
		if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
			t.Fatalf("capture --json: %v\n%s", err, r)
		}
		for _, p := range c.Problems {
			if strings.Contains(p, "changed during capture") {
				changed++
			}
		}
		records = append(records, c.Record)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d captures, %d swaps, %d names reported changed during capture", len(records), swaps.Load(), changed)

	for i, rec := range records {
		target := filepath.Join(dir, "restore", rec)
		r := smp(t, "restore", "--store", store, "--record", rec, "--root", target)
		if r.code != exitOK && r.code != exitPartial {
			t.Fatalf("restore %s (%v): want exit 0 or 3\n%s", rec, modes[i%len(modes)], r)
		}
		checkNoSecret(t, target, secret, modes[i%len(modes)])
		for v := range victims {
			rv := filepath.Join(target, "home", "mallory", fmt.Sprintf("victim%02d", v))
			st, err := os.Lstat(rv)
			if err != nil || !st.Mode().IsRegular() {
				continue // left out as changed, or captured as the symlink or FIFO it was
			}
			sys := st.Sys().(*syscall.Stat_t)
			got, _ := os.ReadFile(rv)
			if !bytes.Equal(got, harmless) || st.Mode().Perm() != 0o644 || sys.Uid != mallory {
				t.Errorf("%v: restored %s is a regular file %q, mode %o, uid %d; want mallory's own (%q, 0644, uid %d)",
					modes[i%len(modes)], rv, got, st.Mode().Perm(), sys.Uid, harmless, mallory)
			}
		}
	}
}

// checkNoSecret fails if any regular file below target holds secret.
func checkNoSecret(t *testing.T, target string, secret []byte, mode []string) {
	t.Helper()
	filepath.WalkDir(target, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, secret) {
			t.Errorf("%v: restored %s holds the root-only secret", mode, p)
		}
		return nil
	})
}
