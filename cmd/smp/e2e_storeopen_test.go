package main

// Looking inside a store from the test process: tests that damage packs or
// check what a store holds open it in-process, with the keys smp init kept
// in the private user config directory TestMain gives this process (see
// isolateKeys), exactly as the smp it runs finds them.

import (
	"path/filepath"
	"testing"

	"smp/cas"
	"smp/keys"
	"smp/repo"
)

// newClearStore initialises a store with --no-encrypt (a store in clear,
// as smp made them before encryption became the default) in a fresh temp
// dir.
func newClearStore(t testing.TB) string {
	t.Helper()
	s := filepath.Join(tmpDir(t), "store")
	mustSMP(t, "init", "--store", s, "--no-encrypt")
	return s
}

// openRepo opens the store in-process (read-only when readOnly), unlocking
// an encrypted store with the key file smp init kept for it.
func openRepo(t testing.TB, store string, readOnly bool) *repo.Repo {
	t.Helper()
	src := &keys.Sources{ConfigDir: keys.DefaultConfigDir()}
	r, err := repo.OpenWith(store, repo.OpenOptions{ReadOnly: readOnly, Unlock: src.Unlock})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// storeSealer returns the sealer of an open store's packs, nil when the
// store is in clear.
func storeSealer(t testing.TB, r *repo.Repo) *cas.Sealer {
	t.Helper()
	if r.Keyring == nil {
		return nil
	}
	s, err := cas.NewSealer(r.Config.StoreID, r.Keyring, r.Config.SealCipher())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// storePacks returns the pack directory of the store, opened with its keys
// when it is encrypted, and its hasher. It takes the store's lock only
// while it reads the keys.
func storePacks(t testing.TB, store string) (*cas.PackDir, *cas.Hasher) {
	t.Helper()
	r := openRepo(t, store, true)
	s, h := storeSealer(t, r), r.Hasher
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	pd, err := cas.NewPackDir(filepath.Join(store, "packs"))
	if err != nil {
		t.Fatal(err)
	}
	return pd.Seal(s), h
}

// storeEncrypted reports whether the store's config.json says it is
// encrypted.
func storeEncrypted(t testing.TB, store string) bool {
	t.Helper()
	r := openRepo(t, store, true)
	defer r.Close()
	return r.Config.Encrypted
}
