package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"smp/cas"
)

// xchachaStoreFixture is an encrypted store made by smp at cf29cbb, the
// last version that sealed packs with XChaCha20-Poly1305 only (store
// format version 2, pack version 2), from the tree writeOldStoreSource
// writes, with its key file beside it (a test key, in the repository on
// purpose). TestMakeXChaChaStoreFixture made it.
const (
	xchachaStoreFixture = "testdata/store-xchacha-cf29cbb"
	xchachaStoreKey     = "testdata/store-xchacha-cf29cbb.key"
)

// TestMakeXChaChaStoreFixture writes the fixture with an smp built from
// cf29cbb, named by SMP_OLD_BIN:
//
//	git worktree add --detach /tmp/smp-old cf29cbb
//	(cd /tmp/smp-old && go build -o /tmp/smp-old/smp ./cmd/smp)
//	SMP_OLD_BIN=/tmp/smp-old/smp go test ./cmd/smp -run TestMakeXChaChaStoreFixture
func TestMakeXChaChaStoreFixture(t *testing.T) {
	bin := os.Getenv("SMP_OLD_BIN")
	if bin == "" {
		t.Skip("SMP_OLD_BIN is not set: the fixture is committed")
	}
	dir := tmpDir(t)
	src, store, key := filepath.Join(dir, "src"), filepath.Join(dir, "store"), filepath.Join(dir, "key")
	writeOldStoreSource(t, src)
	for _, args := range [][]string{
		{"init", "--store", store, "--key-file", key, "--chunk-avg", "64KiB"},
		{"capture", "--store", store, "--key-file", key, "--computer", "pc-old", "--root", src, "--hardlink", "never"},
	} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
		}
	}
	for _, f := range []string{"lock", "index/DISCARD"} {
		if err := os.Remove(filepath.Join(store, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(xchachaStoreFixture); err != nil {
		t.Fatal(err)
	}
	copyDir(t, store, xchachaStoreFixture)
	b, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(xchachaStoreKey, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestE2EXChaChaStoreOpens: an encrypted store made before XAES-256-GCM
// (XChaCha20-Poly1305, format version 2) opens with its key file,
// restores byte-identical, verifies every blob, takes a new capture, and
// after key rotate and gc --rekey (the old key then retired) still does,
// sealed with XChaCha20-Poly1305 throughout: its packs stay version 2 and
// its config.json version 2 without "cipher". A store smp init makes now
// seals version 3 packs (XAES-256-GCM) and is format version 4.
func TestE2EXChaChaStoreOpens(t *testing.T) {
	t.Parallel()
	dir := tmpDir(t)
	store, src, key := filepath.Join(dir, "store"), filepath.Join(dir, "src"), filepath.Join(dir, "key")
	copyDir(t, xchachaStoreFixture, store)
	b, err := os.ReadFile(xchachaStoreKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, key, b, 0o600)
	writeOldStoreSource(t, src)
	k := []string{"--store", store, "--key-file", key}

	restoreCompare := func(args ...string) {
		t.Helper()
		dst := filepath.Join(tmpDir(t), "out")
		res, _ := restoreJSON(t, exitOK, store, append(args, "--root", dst, "--key-file", key)...)
		if res.Errors != 0 {
			t.Fatalf("restore %v: %+v", args, res)
		}
		compareTrees(t, filepath.Join(src, "home"), filepath.Join(dst, "home"), compareOpts{})
	}
	restoreCompare("--computer", "pc-old")
	mustSMP(t, append([]string{"verify", "--read-data"}, k...)...)
	checkStoreCipher(t, store, 2, "", cas.PackVersionSealed)

	doCapture(t, exitOK, store, "pc-new", "--root", src, "--hardlink", "never", "--key-file", key)
	mustSMP(t, append([]string{"key", "rotate"}, k...)...)
	mustSMP(t, append([]string{"gc", "--rekey"}, k...)...)
	mustSMP(t, append([]string{"key", "retire", "1"}, k...)...)
	mustSMP(t, append([]string{"verify", "--read-data"}, k...)...)
	restoreCompare("--computer", "pc-old")
	restoreCompare("--computer", "pc-new")
	checkStoreCipher(t, store, 2, "", cas.PackVersionSealed)

	fresh := filepath.Join(tmpDir(t), "fresh")
	mustSMP(t, "init", "--store", fresh)
	doCapture(t, exitOK, fresh, "pc-new", "--root", src, "--hardlink", "never")
	checkStoreCipher(t, fresh, 4, "xaes-256-gcm", cas.PackVersionSealedXAES)
}

// checkStoreCipher checks config.json's version and "cipher" ("" for
// none) and that every pack has format version pack.
func checkStoreCipher(t *testing.T, store string, version int, cipher string, pack uint16) {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(store, "config.json"))), &cfg); err != nil {
		t.Fatal(err)
	}
	if got, has := cfg["cipher"]; cfg["version"] != float64(version) || has != (cipher != "") || has && got != cipher {
		t.Errorf("%s: config.json version %v, cipher %v; want %d, %q", store, cfg["version"], got, version, cipher)
	}
	packs := 0
	err := filepath.WalkDir(filepath.Join(store, "packs"), func(p string, d os.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".pack") {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		v, err := cas.PackVersionOf(f)
		if err != nil || v != pack {
			t.Errorf("%s: pack version %d (%v), want %d", filepath.Base(p), v, err, pack)
		}
		packs++
		return nil
	})
	if err != nil || packs == 0 {
		t.Fatalf("%d packs: %v", packs, err)
	}
}
