package repo

import (
	"errors"
	"fmt"

	"smp/cas"
	"smp/index"
	"smp/keys"
)

// ErrKeyRequired is returned when an encrypted store is opened without
// its keyring.
var ErrKeyRequired = errors.New("store is encrypted: its key is required")

// Options are how a store is opened.
type Options struct {
	// Keyring holds the master keys of an encrypted store (Config.Encrypted):
	// packs are sealed with its current key and the index is encrypted
	// with the current key's "index" subkey. An unencrypted store needs none.
	Keyring *keys.Keyring
}

// crypt is what an open store seals and encrypts with; zero for a store
// in clear.
type crypt struct {
	sealer *cas.Sealer
	index  index.Options
}

// cryptOf returns the sealer and index options of the store cfg describes.
func cryptOf(dir string, cfg *Config, o Options) (crypt, error) {
	if !cfg.Encrypted {
		return crypt{}, nil
	}
	if o.Keyring == nil {
		return crypt{}, fmt.Errorf("%s: %w", dir, ErrKeyRequired)
	}
	s, err := cas.NewSealer(cfg.StoreID, o.Keyring)
	if err != nil {
		return crypt{}, fmt.Errorf("%s: %w", dir, err)
	}
	cur, _ := o.Keyring.Current()
	k, err := o.Keyring.Subkey(cur, "index")
	if err != nil {
		return crypt{}, fmt.Errorf("%s: %w", dir, err)
	}
	return crypt{sealer: s, index: index.Options{EncryptionKey: k[:]}}, nil
}
