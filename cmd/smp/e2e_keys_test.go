package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// encStore is an encrypted store made by smp init (encrypted by default),
// with the user config directory its key file went to.
type encStore struct {
	dir, cfgDir, keyFile, recovery, id string
}

// keyEnv isolates a run from the caller's key sources: the user config
// directory is cfgDir, and no key file, passphrase or credential comes
// from the environment.
func keyEnv(cfgDir string) []string {
	return []string{"XDG_CONFIG_HOME=" + cfgDir, "SMP_KEY_FILE=", "SMP_PASSPHRASE_FILE=", "CREDENTIALS_DIRECTORY="}
}

var recoveryLine = regexp.MustCompile(`(?m)^recovery key: (SMPR-[0-9A-Z-]+)$`)

func newEncStore(t *testing.T) *encStore {
	t.Helper()
	e := &encStore{dir: filepath.Join(tmpDir(t), "store"), cfgDir: tmpDir(t)}
	r := e.run(t, "init", "--store", e.dir)
	if r.code != exitOK {
		t.Fatalf("init:\n%s", r)
	}
	m := recoveryLine.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("init printed no recovery key:\n%s", r)
	}
	e.recovery = m[1]
	var cfg struct {
		StoreID string `json:"store_id"`
	}
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(e.dir, "config.json"))), &cfg); err != nil {
		t.Fatal(err)
	}
	e.id = cfg.StoreID
	e.keyFile = filepath.Join(e.cfgDir, "smp", "keys", e.id+".key")
	if st, err := os.Stat(e.keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v %v", e.keyFile, st, err)
	}
	return e
}

// run runs smp with the store's config directory as the user's.
func (e *encStore) run(t *testing.T, args ...string) result {
	t.Helper()
	return smpWith(t, runOpts{env: keyEnv(e.cfgDir)}, args...)
}

// runBare runs smp with an empty user config directory: no stored key.
func (e *encStore) runBare(t *testing.T, args ...string) result {
	t.Helper()
	return smpWith(t, runOpts{env: keyEnv(tmpDir(t))}, args...)
}

// hashStore hashes every file (and names every directory and link) under
// dir: a command that must write nothing leaves it equal.
func hashStore(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			out[rel] = hex.EncodeToString(s[:])
		default:
			out[rel] = d.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameHashes(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for p, h := range before {
		if after[p] != h {
			t.Errorf("%s changed %s", what, p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s created %s", what, p)
		}
	}
}

// secretFile writes a 0600 file outside any store.
func secretFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(tmpDir(t), "secret")
	writeFile(t, p, []byte(content), 0o600)
	return p
}

// wantKeyRefusal requires exit 1 and one stderr line naming the store.
func wantKeyRefusal(t *testing.T, r result, want ...string) {
	t.Helper()
	lines := r.stderrLines()
	if r.code != exitError || len(lines) != 1 {
		t.Fatalf("want exit 1 and one line on stderr\n%s", r)
	}
	for _, w := range want {
		if !strings.Contains(lines[0], w) {
			t.Errorf("error lacks %q: %s", w, lines[0])
		}
	}
}

func keySlots(t *testing.T, e *encStore) map[string]string {
	t.Helper()
	r := e.run(t, "key", "list", "--store", e.dir, "--json")
	if r.code != exitOK {
		t.Fatalf("key list:\n%s", r)
	}
	var out struct {
		Slots []struct{ ID, Kind string } `json:"slots"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, s := range out.Slots {
		m[s.Kind] = s.ID
	}
	return m
}

func TestE2EKeysWrongMissingCorrupt(t *testing.T) {
	t.Parallel()
	e := newEncStore(t)
	src := tmpDir(t)
	serveProfile(t, src, 7, 1)
	if r := e.run(t, "capture", "--store", e.dir, "--computer", "PC1", "--root", src, "--hardlink", "never"); r.code != exitOK {
		t.Fatalf("capture with the stored key:\n%s", r)
	}
	if r := e.run(t, "verify", "--store", e.dir, "--read-data"); r.code != exitOK {
		t.Fatalf("verify:\n%s", r)
	}
	before := hashStore(t, e.dir)
	wrongKey := secretFile(t, strings.Repeat("ab", 32)+"\n")
	wrongPass := secretFile(t, "not the passphrase\n")
	dst := filepath.Join(tmpDir(t), "dst")
	cmds := [][]string{
		{"records", "--store", e.dir},
		{"capture", "--store", e.dir, "--computer", "PC2", "--root", src, "--hardlink", "never"},
		{"restore", "--store", e.dir, "--computer", "PC1", "--root", dst},
		{"verify", "--store", e.dir},
		{"gc", "--store", e.dir},
		{"index", "rebuild", "--store", e.dir},
		{"ingest", "--store", e.dir, "--record", "abc"},
		{"key", "rotate", "--store", e.dir},
	}
	for _, c := range cmds {
		// Missing: no source at all.
		wantKeyRefusal(t, e.runBare(t, c...), "store "+e.dir+" (id "+e.id+")", "--key-file (not set)", "stored key", "(not found)", "prompt (no terminal)", "pass --key-file FILE")
		// Wrong key file, wrong passphrase.
		wantKeyRefusal(t, e.runBare(t, append(c, "--key-file", wrongKey)...), "--key-file "+wrongKey+" (wrong key)")
		wantKeyRefusal(t, e.runBare(t, append(c, "--passphrase-file", wrongPass)...), "--passphrase-file "+wrongPass+" (wrong key)")
	}
	sameHashes(t, "a refused open", before, hashStore(t, e.dir))
	if _, err := os.Stat(dst); err == nil {
		t.Error("a refused restore created its target")
	}

	// A damaged key slot file: every open says so on one line.
	kp := filepath.Join(e.dir, "keys.json")
	good := readFile(t, kp)
	for name, bad := range map[string]string{
		"truncated": good[:len(good)/2],
		"box":       strings.Replace(good, `"box": "`, `"box": "AAAA`, 1),
		"empty":     "",
	} {
		writeFile(t, kp, []byte(bad), 0o600)
		before := hashStore(t, e.dir)
		wantKeyRefusal(t, e.run(t, "records", "--store", e.dir), "key slot file is damaged")
		wantKeyRefusal(t, e.run(t, "key", "add-recovery", "--store", e.dir), "key slot file is damaged")
		sameHashes(t, "an open with a damaged slot file ("+name+")", before, hashStore(t, e.dir))
	}
	writeFile(t, kp, []byte(good), 0o600)
	if r := e.run(t, "records", "--store", e.dir); r.code != exitOK {
		t.Fatalf("records after repairing keys.json:\n%s", r)
	}
}

func TestE2EKeysRotationRecovery(t *testing.T) {
	t.Parallel()
	e := newEncStore(t)
	src := tmpDir(t)
	serveProfile(t, src, 11, 1)
	if r := e.run(t, "capture", "--store", e.dir, "--computer", "PC1", "--root", src, "--hardlink", "never"); r.code != exitOK {
		t.Fatalf("capture:\n%s", r)
	}
	pass := secretFile(t, "correct horse battery staple\n")
	if r := e.run(t, "key", "add", "--store", e.dir, "--new-passphrase-file", pass); r.code != exitOK || !strings.Contains(r.stdout, "passphrase") {
		t.Fatalf("key add passphrase:\n%s", r)
	}
	slots := keySlots(t, e)
	if len(slots) != 3 || slots["keyfile"] == "" || slots["passphrase"] == "" || slots["recovery"] == "" {
		t.Fatalf("slots: %v", slots)
	}
	// Remove the key-file slot: its key no longer opens the store, the
	// passphrase does.
	if r := e.run(t, "key", "remove", "--store", e.dir, "--slot", slots["keyfile"]); r.code != exitOK {
		t.Fatalf("key remove:\n%s", r)
	}
	before := hashStore(t, e.dir)
	wantKeyRefusal(t, e.run(t, "records", "--store", e.dir), "stored key "+e.keyFile+" (wrong key)")
	sameHashes(t, "an open with a removed slot's key", before, hashStore(t, e.dir))
	dst := filepath.Join(tmpDir(t), "dst")
	if r := e.runBare(t, "restore", "--store", e.dir, "--computer", "PC1", "--root", dst, "--passphrase-file", pass); r.code != exitOK {
		t.Fatalf("restore with the passphrase:\n%s", r)
	}
	compareTrees(t, src, dst, compareOpts{})

	// Rotation: a new master key; old and new records both restore.
	r := e.runBare(t, "key", "rotate", "--store", e.dir, "--passphrase-file", pass)
	if r.code != exitOK || !strings.Contains(r.stdout, "master key 2") {
		t.Fatalf("key rotate:\n%s", r)
	}
	src2 := tmpDir(t)
	serveProfile(t, src2, 12, 1)
	if r := e.runBare(t, "capture", "--store", e.dir, "--computer", "PC2", "--root", src2, "--hardlink", "never", "--passphrase-file", pass); r.code != exitOK {
		t.Fatalf("capture after rotate:\n%s", r)
	}

	// The recovery key alone (no config directory, no other secret).
	rec := secretFile(t, strings.ToLower(e.recovery)+"\n")
	for comp, want := range map[string]string{"PC1": src, "PC2": src2} {
		dst := filepath.Join(tmpDir(t), "dst")
		if r := e.runBare(t, "restore", "--store", e.dir, "--computer", comp, "--root", dst, "--passphrase-file", rec); r.code != exitOK {
			t.Fatalf("restore %s with the recovery key:\n%s", comp, r)
		}
		compareTrees(t, want, dst, compareOpts{})
	}
	// A new recovery key, printed once, opens it too.
	r = e.runBare(t, "key", "add-recovery", "--store", e.dir, "--passphrase-file", rec)
	m := recoveryLine.FindStringSubmatch(r.stdout)
	if r.code != exitOK || m == nil {
		t.Fatalf("add-recovery:\n%s", r)
	}
	if r := e.runBare(t, "records", "--store", e.dir, "--passphrase-file", secretFile(t, m[1])); r.code != exitOK {
		t.Fatalf("records with the new recovery key:\n%s", r)
	}
	if strings.Contains(readFile(t, filepath.Join(e.dir, "keys.json")), m[1][5:13]) {
		t.Fatal("keys.json holds the recovery key")
	}

	// Remove slots down to one (opened with the new recovery key, the
	// slot that stays); the last is refused and stays.
	r = e.run(t, "key", "list", "--store", e.dir)
	newRec := secretFile(t, m[1])
	slots = keySlots(t, e) // kind -> the last slot of that kind: the new recovery slot
	var ids []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == "slot" && f[1] != slots["recovery"] {
			ids = append(ids, f[1])
		}
	}
	if len(ids) != 2 {
		t.Fatalf("key list: want 2 slots besides the new recovery slot, got %v\n%s", ids, r)
	}
	for _, id := range ids {
		if r := e.runBare(t, "key", "remove", "--store", e.dir, "--slot", id, "--passphrase-file", newRec); r.code != exitOK {
			t.Fatalf("remove %s:\n%s", id, r)
		}
	}
	before = hashStore(t, e.dir)
	r = e.runBare(t, "key", "remove", "--store", e.dir, "--slot", slots["recovery"], "--passphrase-file", newRec)
	wantKeyRefusal(t, r, "last")
	sameHashes(t, "a refused removal of the last slot", before, hashStore(t, e.dir))
	if r := e.runBare(t, "records", "--store", e.dir, "--passphrase-file", newRec); r.code != exitOK {
		t.Fatalf("records with the last slot:\n%s", r)
	}
}

func TestE2EKeysNoClearKeyMaterial(t *testing.T) {
	t.Parallel()
	e := newEncStore(t)
	cfg := readFile(t, filepath.Join(e.dir, "config.json"))
	if strings.Contains(cfg, "hash_key") || !strings.Contains(cfg, `"encrypted": true`) {
		t.Fatalf("config.json of an encrypted store:\n%s", cfg)
	}
	// The server unlocks the store at start (here from --key-file, with no
	// stored key) and keeps its self-signed TLS key sealed.
	srv := launchServer(t, e.dir, "--tls-self-signed", "--key-file", e.keyFile)
	fp := srv.fingerprint
	tok := newToken(t, e.dir, "--computer", "PC01", "--key-file", e.keyFile)
	src := tmpDir(t)
	serveProfile(t, src, 3, 1)
	remoteCapture(t, exitOK, srv.url, tok, "PC01", "--root", src, "--tls-fingerprint="+fp)
	srv.stop(t)
	if _, err := os.Stat(filepath.Join(e.dir, "tls", "key.pem")); err == nil {
		t.Fatal("an encrypted store keeps its TLS key in clear (tls/key.pem)")
	}
	sealed := readFile(t, filepath.Join(e.dir, "tls", "key.sealed"))
	if strings.Contains(sealed, "PRIVATE KEY") {
		t.Fatal("tls/key.sealed holds a PEM key in clear")
	}
	// A restart opens the sealed key: the same fingerprint.
	srv = startServer(t, e.dir, "--tls-self-signed", "--key-file", e.keyFile)
	if srv.fingerprint != fp {
		t.Fatalf("fingerprint changed across a restart: %s, then %s", fp, srv.fingerprint)
	}
	dst := tmpDir(t)
	if _, r := restoreJSON(t, exitOK, srv.url, "--token", tok, "--tls-fingerprint="+fp, "--computer", "PC01", "--root", dst); r.code != exitOK {
		t.Fatal(r)
	}
	compareTrees(t, src, dst, compareOpts{})
	// Without a key the server does not start: one line, exit 1.
	r := e.runBare(t, "serve", "--store", e.dir, "--listen", "127.0.0.1:0", "--tls-self-signed")
	wantKeyRefusal(t, r, "store "+e.dir+" (id "+e.id+")", "no key opened it")

	// No file of the store holds the key file's key or the recovery key.
	kb, err := os.ReadFile(e.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := hex.DecodeString(strings.TrimSpace(string(kb)))
	for p := range hashStore(t, e.dir) {
		b, err := os.ReadFile(filepath.Join(e.dir, p))
		if err != nil {
			continue // directories
		}
		if bytes.Contains(b, raw) || bytes.Contains(b, bytes.TrimSpace(kb)) || bytes.Contains(b, []byte(e.recovery)) {
			t.Errorf("%s holds key material in clear", p)
		}
	}
}

func TestE2EKeysSources(t *testing.T) {
	t.Parallel()
	e := newEncStore(t)
	// A new key file slot: written outside the store, never inside it.
	inside := filepath.Join(e.dir, "k2.key")
	r := e.run(t, "key", "add", "--store", e.dir, "--new-key-file", inside)
	if r.code != exitUsage || !strings.Contains(r.stderr, "inside the store") {
		t.Fatalf("key file inside the store:\n%s", r)
	}
	k2 := filepath.Join(tmpDir(t), "k2.key")
	if r := e.run(t, "key", "add", "--store", e.dir, "--new-key-file", k2); r.code != exitOK {
		t.Fatalf("key add --new-key-file:\n%s", r)
	}
	if st, err := os.Stat(k2); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("new key file: %v %v", st, err)
	}
	// $SMP_KEY_FILE, and systemd credentials ($CREDENTIALS_DIRECTORY/smp-key).
	if r := smpWith(t, runOpts{env: append(keyEnv(tmpDir(t)), "SMP_KEY_FILE="+k2)}, "records", "--store", e.dir); r.code != exitOK {
		t.Fatalf("records with $SMP_KEY_FILE:\n%s", r)
	}
	creds := tmpDir(t)
	writeFile(t, filepath.Join(creds, "smp-key"), []byte(readFile(t, k2)), 0o600)
	if r := smpWith(t, runOpts{env: append(keyEnv(tmpDir(t)), "CREDENTIALS_DIRECTORY="+creds)}, "records", "--store", e.dir); r.code != exitOK {
		t.Fatalf("records with a systemd credential:\n%s", r)
	}
	// A revoking rotation keeps only k2's slot: the stored key and the
	// recovery key open nothing any more.
	r = smpWith(t, runOpts{env: keyEnv(tmpDir(t))}, "key", "rotate", "--store", e.dir, "--revoke-other-slots", "--key-file", k2)
	if r.code != exitOK || strings.Count(r.stdout, "removed key slot") != 2 || !strings.Contains(r.stdout, "master key 2") {
		t.Fatalf("key rotate --revoke-other-slots:\n%s", r)
	}
	wantKeyRefusal(t, e.run(t, "records", "--store", e.dir), "stored key "+e.keyFile+" (wrong key)")
	wantKeyRefusal(t, e.runBare(t, "records", "--store", e.dir, "--passphrase-file", secretFile(t, e.recovery)), "(wrong key)")
	if r := e.runBare(t, "records", "--store", e.dir, "--key-file", k2); r.code != exitOK {
		t.Fatalf("records with the kept slot:\n%s", r)
	}
	// A key file other users may read is refused, saying how to fix it.
	if err := os.Chmod(k2, 0o644); err != nil {
		t.Fatal(err)
	}
	wantKeyRefusal(t, e.runBare(t, "records", "--store", e.dir, "--key-file", k2), "chmod 600")
	// An unencrypted store needs no key and ignores the key flags.
	plain := newClearStore(t)
	if r := e.runBare(t, "records", "--store", plain, "--key-file", "/nonexistent"); r.code != exitOK {
		t.Fatalf("unencrypted store with a key flag:\n%s", r)
	}
	r = e.run(t, "key", "list", "--store", plain)
	if r.code != exitError || !strings.Contains(r.stderr, "not encrypted") {
		t.Fatalf("key list of an unencrypted store:\n%s", r)
	}
}
