package main

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EAccessSealed: in an encrypted store (smp init --encrypt
// --key-file) smp token, smp associate and smp admin restore-only keep the
// access file sealed (access.sealed; no access.json, no computer name in
// any file of the store) and need the store's key: without it they fail
// with one line naming --key-file, exit 1, and leave the store's bytes
// unchanged. After smp key rotate, smp key retire of the old key is
// refused while access.sealed is sealed under it; smp gc --rekey reseals
// it, then retire succeeds and the tokens still list.
func TestE2EAccessSealed(t *testing.T) {
	t.Parallel()
	env := keyEnv(tmpDir(t)) // no stored key: only --key-file opens the store
	run := func(want int, args ...string) result {
		t.Helper()
		r := smpWith(t, runOpts{env: env}, args...)
		if r.code != want {
			t.Fatalf("smp %s: want exit %d\n%s", strings.Join(args, " "), want, r)
		}
		return r
	}
	store := filepath.Join(tmpDir(t), "store")
	keyFile := filepath.Join(tmpDir(t), "store.key")
	run(exitOK, "init", "--store", store, "--encrypt", "--key-file", keyFile)
	key := []string{"--key-file", keyFile}
	const pc, dest = "sntlSealedPC", "sntlSealedNew"

	before := hashStore(t, store)
	for _, args := range [][]string{
		{"token", "create", "--store", store, "--computer", pc},
		{"token", "list", "--store", store},
		{"associate", "--store", store, "--source", pc, "--dest", dest},
		{"associate", "--store", store, "--list"},
		{"admin", "restore-only", "on", "--store", store},
	} {
		r := run(1, args...)
		if lines := r.stderrLines(); len(lines) != 1 || !strings.Contains(lines[0], "--key-file") {
			t.Errorf("smp %s without the key: want one line naming --key-file\n%s", strings.Join(args, " "), r)
		}
	}
	sameHashes(t, "access commands without the key", before, hashStore(t, store))

	secret := strings.TrimSpace(run(exitOK, append([]string{"token", "create", "--store", store, "--computer", pc}, key...)...).stdout)
	if !strings.HasPrefix(secret, "smp_") {
		t.Fatalf("token create printed %q", secret)
	}
	run(exitOK, append([]string{"associate", "--store", store, "--source", pc, "--dest", dest}, key...)...)
	run(exitOK, append([]string{"admin", "restore-only", "on", "--store", store}, key...)...)
	var tokens struct {
		Tokens []tokenRow `json:"tokens"`
	}
	listTokens := func(when string) {
		t.Helper()
		r := run(exitOK, append([]string{"token", "list", "--store", store, "--json"}, key...)...)
		if err := json.Unmarshal([]byte(r.stdout), &tokens); err != nil || len(tokens.Tokens) != 1 || tokens.Tokens[0].Computer != pc {
			t.Fatalf("%s: token list: %v\n%s", when, err, r)
		}
	}
	listTokens("sealed")
	if r := run(exitOK, append([]string{"associate", "--store", store, "--list", "--json"}, key...)...); !strings.Contains(r.stdout, dest) {
		t.Errorf("associate --list:\n%s", r)
	}
	if r := run(exitOK, append([]string{"admin", "restore-only", "--store", store}, key...)...); !strings.Contains(r.stdout, "restore-only on") {
		t.Errorf("admin restore-only:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(store, "access.sealed")); err != nil {
		t.Fatalf("no access.sealed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(store, "access.json")); !os.IsNotExist(err) {
		t.Errorf("an encrypted store has access.json (%v)", err)
	}
	for _, s := range []string{pc, dest, tokens.Tokens[0].ID} {
		if files := filesHolding(t, store, s); len(files) != 0 {
			t.Errorf("%q in clear in %v", s, files)
		}
	}

	run(exitOK, append([]string{"gc", "--store", store}, key...)...) // makes the index
	run(exitOK, append([]string{"key", "rotate", "--store", store}, key...)...)
	before = hashStore(t, store)
	r := run(1, append([]string{"key", "retire", "1", "--store", store}, key...)...)
	if len(r.stderrLines()) != 1 || !strings.Contains(r.stderr, "access.sealed") || !strings.Contains(r.stderr, "gc --rekey") {
		t.Errorf("retire 1 while it seals the access file: want one line naming access.sealed and gc --rekey\n%s", r)
	}
	sameHashes(t, "a refused retire", before, hashStore(t, store))
	run(exitOK, append([]string{"gc", "--store", store, "--rekey"}, key...)...)
	if kid := sealedKeyID(t, filepath.Join(store, "access.sealed")); kid != 2 {
		t.Errorf("after gc --rekey access.sealed is sealed under key %d, want 2", kid)
	}
	run(exitOK, append([]string{"key", "retire", "1", "--store", store}, key...)...)
	listTokens("after rotate, rekey and retire")
	for _, s := range []string{pc, dest} {
		if files := filesHolding(t, store, s); len(files) != 0 {
			t.Errorf("after rekey: %q in clear in %v", s, files)
		}
	}
}

// sealedKeyID reads the master key ID in a sealed file's header
// ("SMPSEAL1", then the ID, big-endian).
func sealedKeyID(t *testing.T, path string) uint32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 12 || string(b[:8]) != "SMPSEAL1" {
		t.Fatalf("%s is no sealed file: %v", path, err)
	}
	return binary.BigEndian.Uint32(b[8:12])
}

// TestE2EEncryptSealsAccess: smp encrypt of an unencrypted store whose
// access.json names computers seals it (access.sealed, access.json
// removed, no computer name in any file), and the tokens still work with
// the store's key.
func TestE2EEncryptSealsAccess(t *testing.T) {
	t.Parallel()
	cfgDir := tmpDir(t)
	env := keyEnv(cfgDir)
	store := filepath.Join(tmpDir(t), "store")
	initClearStore(t, env, store)
	const pc = "sntlConvertPC"
	r := smpWith(t, runOpts{env: env}, "token", "create", "--store", store, "--computer", pc)
	if r.code != exitOK {
		t.Fatalf("token create:\n%s", r)
	}
	if r := smpWith(t, runOpts{env: env}, "associate", "--store", store, "--source", pc, "--dest", "sntlConvertNew"); r.code != exitOK {
		t.Fatalf("associate:\n%s", r)
	}
	if files := filesHolding(t, store, pc); len(files) != 1 || filepath.Base(files[0]) != "access.json" {
		t.Fatalf("before encrypt, %s is in %v; want access.json", pc, files)
	}
	if r := smpWith(t, runOpts{env: env}, "encrypt", "--store", store); r.code != exitOK {
		t.Fatalf("encrypt:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(store, "access.json")); !os.IsNotExist(err) {
		t.Errorf("smp encrypt left access.json (%v)", err)
	}
	for _, s := range []string{pc, "sntlConvertNew"} {
		if files := filesHolding(t, store, s); len(files) != 0 {
			t.Errorf("after smp encrypt, %q in clear in %v", s, files)
		}
	}
	r = smpWith(t, runOpts{env: env}, "token", "list", "--store", store, "--json")
	if r.code != exitOK || !strings.Contains(r.stdout, pc) {
		t.Fatalf("token list after encrypt (key from the config directory):\n%s", r)
	}
	if r := smpWith(t, runOpts{env: keyEnv(tmpDir(t))}, "token", "list", "--store", store); r.code != 1 || len(r.stderrLines()) != 1 {
		t.Errorf("token list without the key:\n%s", r)
	}
}
