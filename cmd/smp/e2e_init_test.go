package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// initConfig is what the tests read of a store's config.json.
type initConfig struct {
	Version   int    `json:"version"`
	Encrypted bool   `json:"encrypted"`
	StoreID   string `json:"store_id"`
	HashKey   string `json:"hash_key"`
	Cipher    string `json:"cipher"`
}

func readInitConfig(t *testing.T, store string) initConfig {
	t.Helper()
	var c initConfig
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(store, "config.json"))), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// dirEntries lists dir recursively ("" when it is empty or missing).
func dirEntries(t *testing.T, dir string) string {
	t.Helper()
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return ""
	}
	return strings.Join(listTree(t, dir), " ")
}

// TestE2EInitEncryptsByDefault: plain smp init makes an encrypted store
// (format version 2, no hash key in config.json) and says, in four short
// lines, where its key file went (the user's config directory, 0600,
// outside the store) and that the recovery key is shown only now; later
// commands find the key by store ID. --encrypt, the old opt-in, is still
// accepted and changes nothing; --key-file puts the key file elsewhere
// and leaves the config directory alone.
func TestE2EInitEncryptsByDefault(t *testing.T) {
	t.Parallel()
	cfg := tmpDir(t)
	run := func(args ...string) result {
		t.Helper()
		return smpWith(t, runOpts{env: keyEnv(cfg)}, args...)
	}
	store := filepath.Join(tmpDir(t), "store")
	r := run("init", "--store", store)
	if r.code != exitOK {
		t.Fatalf("init:\n%s", r)
	}
	c := readInitConfig(t, store)
	if !c.Encrypted || c.Version != 4 || c.Cipher != "xaes-256-gcm" || c.HashKey != "" {
		t.Fatalf("plain init made %+v; want an encrypted store (version 4, xaes-256-gcm, no hash key in config.json)", c)
	}
	keyFile := filepath.Join(cfg, "smp", "keys", c.StoreID+".key")
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v %v", keyFile, st, err)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "initialised store "+store) ||
		lines[1] != "encrypted; key file "+keyFile+" (later commands find it there by store ID)" ||
		!recoveryLine.MatchString(lines[2]) || !strings.Contains(lines[3], "shown only now") {
		t.Fatalf("init output: want four lines naming the key file and the recovery key shown once\n%s", r)
	}
	if r.stderr != "" {
		t.Errorf("init wrote to stderr:\n%s", r)
	}
	src := filepath.Join(tmpDir(t), "src")
	writeFile(t, filepath.Join(src, "home/alice/a.txt"), []byte("sealed at rest\n"), 0o644)
	if r := run("capture", "--store", store, "--computer", "pc1", "--root", src); r.code != exitOK {
		t.Fatalf("capture with the stored key:\n%s", r)
	}
	// Another user config directory holds no key: the store does not open.
	wantKeyRefusal(t, smpWith(t, runOpts{env: keyEnv(tmpDir(t))}, "records", "--store", store), "no key opened it")

	// --encrypt is kept for scripts: the same encrypted store.
	old := filepath.Join(tmpDir(t), "store")
	if r := run("init", "--store", old, "--encrypt"); r.code != exitOK || !recoveryLine.MatchString(r.stdout) {
		t.Fatalf("init --encrypt:\n%s", r)
	}
	if c := readInitConfig(t, old); !c.Encrypted {
		t.Errorf("init --encrypt made %+v", c)
	}

	// --key-file: the key goes there; the config directory gains nothing.
	before := dirEntries(t, cfg)
	kf := filepath.Join(tmpDir(t), "site.key")
	elsewhere := filepath.Join(tmpDir(t), "store")
	r = run("init", "--store", elsewhere, "--key-file", kf)
	if r.code != exitOK || !strings.Contains(r.stdout, "key file "+kf+" (give it to later commands with --key-file or $SMP_KEY_FILE)") {
		t.Fatalf("init --key-file:\n%s", r)
	}
	if after := dirEntries(t, cfg); after != before {
		t.Errorf("init --key-file wrote into the config directory: %q, was %q", after, before)
	}
	if r := run("records", "--store", elsewhere, "--key-file", kf); r.code != exitOK {
		t.Fatalf("records --key-file:\n%s", r)
	}
}

// TestE2EInitNoEncrypt: --no-encrypt is the explicit opt-out: a store in
// clear (format version 1), no key file anywhere, one line saying what
// that means; it opens, captures, restores and verifies with no key source
// at all, as stores made before encryption became the default do (see
// TestE2EOldStoreOpens). Combining it with key flags is a usage error that
// creates nothing; so is an encrypted init with no config directory and no
// --key-file, whose message names both ways out.
func TestE2EInitNoEncrypt(t *testing.T) {
	t.Parallel()
	cfg := tmpDir(t)
	run := func(args ...string) result {
		t.Helper()
		return smpWith(t, runOpts{env: keyEnv(cfg)}, args...)
	}
	store := filepath.Join(tmpDir(t), "store")
	r := run("init", "--store", store, "--no-encrypt")
	if r.code != exitOK || strings.Contains(r.stdout, "recovery key") || !strings.Contains(r.stdout, "not encrypted (--no-encrypt)") ||
		len(strings.Split(strings.TrimSpace(r.stdout), "\n")) != 2 {
		t.Fatalf("init --no-encrypt: want two lines, one saying it is not encrypted\n%s", r)
	}
	if c := readInitConfig(t, store); c.Encrypted || c.Version != 1 || c.HashKey == "" || c.Cipher != "" {
		t.Fatalf("init --no-encrypt made %+v; want a version 1 store in clear", c)
	}
	if got := dirEntries(t, cfg); got != "" {
		t.Errorf("init --no-encrypt wrote into the config directory: %s", got)
	}
	// No key source at all (another, empty config directory).
	bare := func(args ...string) result {
		t.Helper()
		return smpWith(t, runOpts{env: keyEnv(tmpDir(t))}, args...)
	}
	src := filepath.Join(tmpDir(t), "src")
	writeFile(t, filepath.Join(src, "home/alice/a.txt"), []byte("in clear by choice\n"), 0o644)
	writeFile(t, filepath.Join(src, "home/alice/b.bin"), rnd(3, 300<<10), 0o600)
	stampTimes(t, src)
	if r := bare("capture", "--store", store, "--computer", "pc1", "--root", src); r.code != exitOK {
		t.Fatalf("capture:\n%s", r)
	}
	if r := bare("verify", "--store", store, "--read-data"); r.code != exitOK {
		t.Fatalf("verify:\n%s", r)
	}
	dst := filepath.Join(tmpDir(t), "dst")
	if r := bare("restore", "--store", store, "--computer", "pc1", "--root", dst); r.code != exitOK {
		t.Fatalf("restore:\n%s", r)
	}
	compareTrees(t, src, dst, compareOpts{})

	for _, args := range [][]string{
		{"--no-encrypt", "--key-file", filepath.Join(tmpDir(t), "k")},
		{"--no-encrypt", "--passphrase-file", secretFile(t, "a passphrase\n")},
		{"--no-encrypt", "--encrypt"},
	} {
		s := filepath.Join(tmpDir(t), "store")
		r := run(append([]string{"init", "--store", s}, args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "--no-encrypt") {
			t.Errorf("init %q: want exit 2 naming --no-encrypt\n%s", args, r)
		}
		if _, err := os.Stat(s); !os.IsNotExist(err) {
			t.Errorf("init %q created %s", args, s)
		}
	}
	if got := dirEntries(t, cfg); got != "" {
		t.Errorf("refused inits wrote into the config directory: %s", got)
	}
	// No config directory to keep the key file in.
	s := filepath.Join(tmpDir(t), "store")
	r = smpWith(t, runOpts{env: []string{"XDG_CONFIG_HOME=", "HOME="}}, "init", "--store", s)
	if r.code != exitUsage || !strings.Contains(r.stderr, "--key-file") || !strings.Contains(r.stderr, "--no-encrypt") {
		t.Errorf("init without a config directory: want exit 2 naming --key-file and --no-encrypt\n%s", r)
	}
	if _, err := os.Stat(s); !os.IsNotExist(err) {
		t.Errorf("a refused init created %s", s)
	}
}
