package main

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"smp/internal/leaktest"
)

// initClearStore makes an unencrypted store with smp init: the one place
// the conversion tests create one, so that when smp init encrypts by
// default only this line needs --no-encrypt.
func initClearStore(t *testing.T, env []string, dir string, extra ...string) {
	t.Helper()
	r := smpWith(t, runOpts{env: env}, append([]string{"init", "--store", dir, "--no-encrypt"}, extra...)...)
	if r.code != exitOK {
		t.Fatalf("init:\n%s", r)
	}
}

// storeConfig is what the conversion tests read of config.json.
type storeConfig struct {
	Version    int    `json:"version"`
	StoreID    string `json:"store_id"`
	HashKey    []byte `json:"hash_key"`
	Encrypted  bool   `json:"encrypted"`
	Conversion string `json:"conversion"`
	Cipher     string `json:"cipher"`
	Chunker    struct {
		KeyedGear bool `json:"keyed_gear"`
	} `json:"chunker"`
}

func readStoreConfig(t *testing.T, dir string) storeConfig {
	t.Helper()
	var c storeConfig
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "config.json"))), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// convertFixture is an unencrypted store holding sentinel records, with a
// private user config directory for the keys smp encrypt makes.
type convertFixture struct {
	store, cfgDir string
	env           []string
	sec           *leaktest.Secrets
	live          map[string]string // record ID -> source tree
}

func (f *convertFixture) run(t *testing.T, args ...string) result {
	t.Helper()
	return smpWith(t, runOpts{env: f.env}, args...)
}

// newConvertFixture captures two sentinel profiles (leaktest.Tree, with
// the computer name a sentinel too) into a new unencrypted store and
// writes a TLS key in clear (tls/key.pem) holding a sentinel; the store's
// hash key, in clear in its config.json, becomes a sentinel as well.
// extraInit goes to smp init.
func newConvertFixture(t *testing.T, extraInit ...string) *convertFixture {
	t.Helper()
	f := &convertFixture{store: filepath.Join(tmpDir(t), "store"), cfgDir: tmpDir(t), sec: &leaktest.Secrets{}, live: map[string]string{}}
	f.env = keyEnv(f.cfgDir)
	initClearStore(t, f.env, f.store, extraInit...)
	for range 2 {
		src := tmpDir(t)
		pc := leaktest.Tree(t, src, f.sec)
		r := f.run(t, "capture", "--store", f.store, "--computer", pc, "--root", src, "--hardlink", "never", "--json")
		var out captureOut
		if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &out) != nil {
			t.Fatalf("capture:\n%s", r)
		}
		f.live[out.Record] = src
	}
	key := "-----BEGIN EC PRIVATE KEY-----\n" + f.sec.Sentinel("tlskey") + "\n-----END EC PRIVATE KEY-----\n"
	writeFile(t, filepath.Join(f.store, "tls", "key.pem"), []byte(key), 0o600)
	c := readStoreConfig(t, f.store)
	if c.Encrypted || len(c.HashKey) != 32 {
		t.Fatalf("initClearStore made %+v", c)
	}
	// json.Marshal writes a []byte as base64: both spellings must go.
	b64, _ := json.Marshal(c.HashKey)
	f.sec.Strings = append(f.sec.Strings, hex.EncodeToString(c.HashKey), strings.Trim(string(b64), `"`))
	return f
}

// restoreAll restores every record and compares it with its source.
func (f *convertFixture) restoreAll(t *testing.T, when string) {
	t.Helper()
	for id, src := range f.live {
		dst := filepath.Join(tmpDir(t), "dst")
		r := f.run(t, "restore", "--store", f.store, "--record", id, "--root", dst, "--keep", "--json")
		if r.code != exitOK {
			t.Fatalf("%s: restore %s:\n%s", when, id, r)
		}
		compareTrees(t, src, dst, compareOpts{})
		if t.Failed() {
			t.Fatalf("%s: record %s does not restore identical (differences above)", when, id)
		}
		os.RemoveAll(dst)
	}
}

var encryptDone = regexp.MustCompile(`(?m)^store .* is encrypted: `)

// TestE2EEncryptConvert: smp encrypt turns an unencrypted store with
// records into an encrypted one in place. Its key file goes to the user
// config directory and a recovery key is printed, as smp init --encrypt
// does; config.json keeps no hash key and says the conversion is done;
// the records keep their IDs and restore identical, also with the
// recovery key alone; no file under the store holds a sentinel (packs,
// index, config, keys, TLS key); the output says the gear table stays
// unkeyed and deleted packs were unlinked, not scrubbed. Run again, it has
// nothing to do; without the key the store no longer opens.
func TestE2EEncryptConvert(t *testing.T) {
	t.Parallel()
	f := newConvertFixture(t)
	before := readStoreConfig(t, f.store)
	r := f.run(t, "encrypt", "--store", f.store)
	if r.code != exitOK || !encryptDone.MatchString(r.stdout) {
		t.Fatalf("encrypt:\n%s", r)
	}
	for _, want := range []string{"gear table stays unkeyed", "not scrubbed", filepath.Join(f.cfgDir, "smp", "keys", before.StoreID+".key")} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("encrypt output lacks %q:\n%s", want, r.stdout)
		}
	}
	m := recoveryLine.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("encrypt printed no recovery key:\n%s", r)
	}
	c := readStoreConfig(t, f.store)
	if c.Version != 4 || c.Cipher != "xaes-256-gcm" || !c.Encrypted || c.Conversion != "done" || c.HashKey != nil || c.StoreID != before.StoreID || c.Chunker.KeyedGear {
		t.Errorf("config.json after encrypt: %+v", c)
	}
	leaktest.CheckNoPlaintext(t, "after smp encrypt", f.store, f.sec)
	f.restoreAll(t, "after smp encrypt")
	if r := f.run(t, "verify", "--store", f.store, "--read-data"); r.code != exitOK {
		t.Fatalf("verify:\n%s", r)
	}
	if r := f.run(t, "encrypt", "--store", f.store); r.code != exitOK || !strings.Contains(r.stdout, "already encrypted") {
		t.Errorf("second encrypt:\n%s", r)
	}
	bare := keyEnv(tmpDir(t))
	if r := smpWith(t, runOpts{env: bare}, "records", "--store", f.store); r.code != 1 || len(r.stderrLines()) != 1 {
		t.Errorf("records without the key:\n%s", r)
	}
	rec := secretFile(t, m[1]+"\n")
	for id, src := range f.live {
		dst := filepath.Join(tmpDir(t), "dst")
		r := smpWith(t, runOpts{env: bare}, "restore", "--store", f.store, "--record", id, "--root", dst, "--passphrase-file", rec)
		if r.code != exitOK {
			t.Fatalf("restore with the recovery key alone:\n%s", r)
		}
		compareTrees(t, src, dst, compareOpts{})
	}
}

// TestE2EEncryptHardLinkArea: a store with a hard-link record converts;
// smp encrypt says the hard-link area stays in clear, and the record
// still restores.
func TestE2EEncryptHardLinkArea(t *testing.T) {
	t.Parallel()
	cfgDir := tmpDir(t)
	env := keyEnv(cfgDir)
	store := filepath.Join(tmpDir(t), "store")
	initClearStore(t, env, store)
	src := tmpDir(t)
	writeFile(t, filepath.Join(src, "home", "a", "doc.txt"), []byte("a document\n"), 0o644)
	r := smpWith(t, runOpts{env: env}, "capture", "--store", store, "--computer", "pc", "--root", src, "--hardlink", "always", "home")
	if r.code != exitOK {
		t.Skipf("no hard-link capture here:\n%s", r)
	}
	r = smpWith(t, runOpts{env: env}, "encrypt", "--store", store)
	if r.code != exitOK || !strings.Contains(r.stdout, "links/: the hard-link area holds users' files as they are and cannot be encrypted") {
		t.Fatalf("encrypt:\n%s", r)
	}
	dst := filepath.Join(tmpDir(t), "dst")
	if r := smpWith(t, runOpts{env: env}, "restore", "--store", store, "--computer", "pc", "--root", dst); r.code != exitOK {
		t.Fatalf("restore:\n%s", r)
	}
	if got := readFile(t, filepath.Join(dst, "home", "a", "doc.txt")); got != "a document\n" {
		t.Errorf("restored %q", got)
	}
}

// TestE2EKeyRetire: after smp key rotate, smp key retire of the old
// master key is refused (one line, exit 1, the store's bytes unchanged)
// while packs, the index and the TLS key are still sealed under it; smp
// gc --rekey moves them all, then retire succeeds, smp key list no longer
// shows the key, and the records restore. Retiring the current key is
// refused too.
func TestE2EKeyRetire(t *testing.T) {
	t.Parallel()
	e := newEncStore(t)
	src := tmpDir(t)
	crashOldTree(t, src, "alice", 7, rnd(8, 1000))
	if r := e.run(t, "capture", "--store", e.dir, "--computer", "pc", "--root", src, "home"); r.code != exitOK {
		t.Fatalf("capture:\n%s", r)
	}
	if r := e.run(t, "key", "rotate", "--store", e.dir); r.code != exitOK {
		t.Fatalf("rotate:\n%s", r)
	}
	for _, id := range []string{"1", "2"} {
		before := hashStore(t, e.dir)
		r := e.run(t, "key", "retire", id, "--store", e.dir)
		if r.code != 1 || len(r.stderrLines()) != 1 {
			t.Errorf("retire %s before rekey: want one line, exit 1\n%s", id, r)
		}
		sameHashes(t, "a refused retire", before, hashStore(t, e.dir))
	}
	if r := e.run(t, "key", "retire", "1", "--store", e.dir); !strings.Contains(r.stderr, "gc --rekey") {
		t.Errorf("retire before rekey does not say what to do:\n%s", r)
	}
	r := e.run(t, "gc", "--store", e.dir, "--rekey", "--json")
	var gc struct {
		PacksRekeyed int      `json:"packs_rekeyed"`
		IndexRekeyed bool     `json:"index_rekeyed"`
		Problems     []string `json:"problems"`
	}
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &gc) != nil || gc.PacksRekeyed == 0 || !gc.IndexRekeyed || len(gc.Problems) != 0 {
		t.Fatalf("gc --rekey: %+v\n%s", gc, r)
	}
	if r := e.run(t, "key", "retire", "1", "--store", e.dir); r.code != exitOK {
		t.Fatalf("retire after rekey:\n%s", r)
	}
	if r := e.run(t, "key", "list", "--store", e.dir); r.code != exitOK || strings.Contains(r.stdout, "master key 1 ") {
		t.Errorf("key list after retire:\n%s", r)
	}
	dst := filepath.Join(tmpDir(t), "dst")
	if r := e.run(t, "restore", "--store", e.dir, "--computer", "pc", "--root", dst); r.code != exitOK {
		t.Fatalf("restore:\n%s", r)
	}
	compareTrees(t, src, dst, compareOpts{})
	if r := e.run(t, "verify", "--store", e.dir, "--read-data"); r.code != exitOK {
		t.Fatalf("verify:\n%s", r)
	}
}
