package main

import (
	"bytes"
	"crypto/rand"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smp/internal/leaktest"
)

// TestE2EServeSentinel is issue 16's sentinel test through a real `smp
// serve`: an encrypted store (smp init --encrypt --key-file, the key
// outside the store) is served with a self-signed certificate, two
// computers capture profiles holding sentinels (file contents, file and
// directory names, a symlink target, an xattr, the computer name) and
// random blocks through it with client tokens, an admin token removes one
// record and runs gc (dead packs only), then gc with repacking, and after
// the server stops the index is rebuilt. After every step no file under
// the store (packs, index tables, value log, records, tokens, the TLS key,
// everything) holds a sentinel, a 64-byte window of a random block or a
// PEM private key; the profile then restores identical. The same steps on
// an unencrypted store must find the sentinels, the random blocks and the
// TLS key after every step, so the scan is shown to see plaintext where
// there is some.
func TestE2EServeSentinel(t *testing.T) {
	t.Parallel()
	t.Run("encrypted", func(t *testing.T) {
		t.Parallel()
		serveSentinel(t, true)
	})
	t.Run("unencrypted store fails the scan", func(t *testing.T) {
		t.Parallel()
		serveSentinel(t, false)
	})
}

// serveSentinel runs the steps of TestE2EServeSentinel on an encrypted
// store, requiring no plaintext after each, or on an unencrypted one,
// requiring the scan to find plaintext after each.
func serveSentinel(t *testing.T, encrypted bool) {
	cfg := tmpDir(t) // the user's config directory: must stay empty
	env := keyEnv(cfg)
	run := func(args ...string) result {
		t.Helper()
		r := smpWith(t, runOpts{env: env}, args...)
		if r.code != exitOK {
			t.Fatalf("smp %s:\n%s", strings.Join(args, " "), r)
		}
		return r
	}
	var store string
	var keyArgs []string
	if encrypted {
		store = filepath.Join(tmpDir(t), "store")
		keyFile := filepath.Join(tmpDir(t), "store.key")
		run("init", "--store", store, "--encrypt", "--key-file", keyFile)
		keyArgs = []string{"--key-file", keyFile}
	} else {
		store = newClearStore(t)
	}
	sec := &leaktest.Secrets{}
	src, other := tmpDir(t), tmpDir(t)
	pc, pcOther := leaktest.Tree(t, src, sec), leaktest.Tree(t, other, sec)
	check := func(when string) {
		t.Helper()
		leaks, files, err := leaktest.Scan(store, sec)
		if err != nil || files < 5 {
			t.Fatalf("%s: scanned %d files: %v", when, files, err)
		}
		pem := filesHolding(t, store, "PRIVATE KEY-----")
		if !encrypted {
			var sentinel, block, accessLeak bool
			for _, l := range leaks {
				sentinel = sentinel || (l.Sentinel != "" && l.File != accessFile)
				accessLeak = accessLeak || (l.File == accessFile && strings.HasPrefix(l.Sentinel, "sntlcomputer"))
				block = block || l.Sentinel == ""
			}
			if !sentinel || !block || !accessLeak || len(pem) == 0 {
				t.Errorf("%s: the scan of an unencrypted store missed plaintext: sentinel %v, random block %v, computer in %s %v, PEM key %v; it found %v", when, sentinel, block, accessFile, accessLeak, pem, leaks)
			}
			return
		}
		for _, l := range leaks {
			t.Errorf("%s: %s", when, l)
		}
		if len(pem) != 0 {
			t.Errorf("%s: a PEM private key in %v", when, pem)
		}
	}

	// In an encrypted store the token commands need its key: the access
	// file, which names each client's computer, is sealed (access.sealed).
	pcTok := newToken(t, store, append([]string{"--computer", pc}, keyArgs...)...)
	otherTok := newToken(t, store, append([]string{"--computer", pcOther}, keyArgs...)...)
	admin := newToken(t, store, append([]string{"--role", "admin"}, keyArgs...)...)
	if encrypted {
		if _, err := os.Stat(filepath.Join(store, "access.sealed")); err != nil {
			t.Errorf("the encrypted store has no sealed access file: %v", err)
		}
	}
	srv := launchServer(t, store, append([]string{"--tls-self-signed"}, keyArgs...)...)
	stopped := false
	defer func() {
		if !stopped {
			srv.stop(t)
		}
	}()
	fp := "--tls-fingerprint=" + srv.fingerprint
	if encrypted {
		if _, err := os.Stat(filepath.Join(store, "tls", "key.sealed")); err != nil {
			t.Errorf("smp serve --tls-self-signed kept no sealed key: %v", err)
		}
	}

	// The first record holds a file the second does not: after it is
	// removed, its packs hold dead blobs beside the second record's live
	// ones, which only repacking drops.
	extra := make([]byte, 200<<10)
	rand.Read(extra)
	sec.Blocks = append(sec.Blocks, extra)
	extraPath := filepath.Join(src, "home", "alice", "extra-"+sec.Sentinel("extraname")+".bin")
	writeFile(t, extraPath, extra, 0o644)
	gone := remoteCapture(t, exitOK, srv.url, pcTok, pc, "--root", src, fp)
	check("after a capture through smp serve")
	if err := os.Remove(extraPath); err != nil {
		t.Fatal(err)
	}
	remoteCapture(t, exitOK, srv.url, pcTok, pc, "--root", src, fp)
	remoteCapture(t, exitOK, srv.url, otherTok, pcOther, "--root", other, fp)
	check("after three captures through smp serve")
	run("rm", "--store", srv.url, "--token", admin, fp, "--record", gone.Record)
	var gc struct {
		BlobsRemoved   int      `json:"blobs_removed"`
		PacksRewritten int      `json:"packs_rewritten"`
		Problems       []string `json:"problems"`
	}
	smpJSON(t, exitOK, &gc, "gc", "--store", srv.url, "--token", admin, fp, "--grace", "0", "--repack-below", "0", "--json")
	if len(gc.Problems) != 0 {
		t.Fatalf("gc through smp serve: %+v", gc)
	}
	check("after gc through smp serve")
	smpJSON(t, exitOK, &gc, "gc", "--store", srv.url, "--token", admin, fp, "--grace", "0", "--repack-below", "1", "--json")
	if gc.PacksRewritten == 0 || len(gc.Problems) != 0 {
		t.Fatalf("gc --repack-below 1 through smp serve rewrote no pack: %+v", gc)
	}
	check("after gc --repack-below 1 through smp serve")

	srv.stop(t)
	stopped = true
	check("after smp serve stopped")
	run(append([]string{"index", "rebuild", "--store", store}, keyArgs...)...)
	check("after index rebuild")

	dst := filepath.Join(tmpDir(t), "dst")
	run(append([]string{"restore", "--store", store, "--computer", pc, "--root", dst}, keyArgs...)...)
	compareTrees(t, src, dst, compareOpts{})
	if ents, err := os.ReadDir(cfg); err != nil || len(ents) != 0 {
		t.Errorf("the user's config directory holds %v (%v): the key belongs in --key-file", ents, err)
	}
}

// accessFile is the token file of an unencrypted store, which names each
// client token's computer in clear (an encrypted store seals it).
const accessFile = "access.json"

// filesHolding lists the files under dir that hold s.
func filesHolding(t *testing.T, dir, s string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, []byte(s)) {
			found = append(found, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}
