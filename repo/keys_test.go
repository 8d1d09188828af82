package repo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smp/cas"
	"smp/keys"
)

// TestEncryptedStoreOpen: an encrypted store keeps no hash key in
// config.json, refuses to open without a key (writing nothing), and opens
// with its keyring or an unlocker, hashing with the wrapped hash key.
func TestEncryptedStoreOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	u, err := keys.Create(strings.Repeat("ab", 16))
	if err != nil {
		t.Fatal(err)
	}
	kf, _, err := u.AddKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := InitWith(dir, InitOptions{Params: cas.DefaultChunkerParams(), Keys: u})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version != FormatVersionCipher || cfg.Cipher != cas.DefaultCipher || strings.Contains(string(b), "hash_key") || !strings.Contains(string(b), `"cipher": "xaes-256-gcm"`) {
		t.Fatalf("config.json of an encrypted store:\n%s", b)
	}
	if _, err := Open(dir); !errors.Is(err, ErrKeys) {
		t.Fatalf("open without a key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "lock")); err == nil {
		t.Fatal("a refused open took the lock (created the lock file)")
	}
	wrong := func(string, *keys.File) (*keys.Unlocked, error) { return nil, keys.ErrWrongKey }
	if _, err := OpenWith(dir, OpenOptions{Unlock: wrong}); !errors.Is(err, ErrKeys) || !errors.Is(err, keys.ErrWrongKey) {
		t.Fatalf("open with a wrong key: %v", err)
	}
	unlock := func(desc string, f *keys.File) (*keys.Unlocked, error) {
		if want := keys.Describe(dir, cfg.StoreID); desc != want {
			t.Errorf("unlock asked for store %s, want %s", desc, want)
		}
		return f.Unlock(keys.Secret{KeyFile: kf})
	}
	r, err := OpenWith(dir, OpenOptions{Unlock: unlock})
	if err != nil {
		t.Fatal(err)
	}
	hk, _ := u.Keyring().HashKey()
	if r.Keyring == nil || r.Hasher.Sum([]byte("x")) != cas.NewHasher(hk).Sum([]byte("x")) || string(r.HashKey()) != string(hk[:]) {
		t.Fatal("the open store does not hash with the wrapped hash key")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r, err = OpenWith(dir, OpenOptions{Keyring: u.Keyring(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
}
