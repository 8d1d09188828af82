package repo

import (
	"errors"
	"fmt"
	"slices"

	"smp/cas"
	"smp/index"
	"smp/keys"
)

// ErrKeyRequired is returned when an encrypted store is opened without
// its keyring.
var ErrKeyRequired = errors.New("store is encrypted: its key is required")

// crypt is what an open store seals and encrypts with; zero for a store
// in clear.
type crypt struct {
	sealer *cas.Sealer
	index  index.Options
	// older are the index options of the keyring's other master keys: an
	// index stays under the key that was current when it was built until
	// it is rebuilt (smp index rebuild), so a rotation does not lock it.
	older []index.Options
}

// openIndexWith opens an index with open under the current key, or under
// the key it was built with when that is an older one of the keyring.
func (c crypt) openIndexWith(open func(index.Options) (*index.Index, error)) (*index.Index, error) {
	ix, err := open(c.index)
	for _, o := range c.older {
		if !errors.Is(err, index.ErrWrongKey) {
			break
		}
		ix, err = open(o)
	}
	return ix, err
}

// cryptOf returns the sealer and index options of the store cfg
// describes, whose unlocked keys are kr (nil when it is unencrypted).
func cryptOf(dir string, cfg *Config, kr *keys.Keyring) (crypt, error) {
	if !cfg.Encrypted {
		return crypt{}, nil
	}
	if kr == nil {
		return crypt{}, fmt.Errorf("%s: %w", dir, ErrKeyRequired)
	}
	s, err := cas.NewSealer(cfg.StoreID, kr)
	if err != nil {
		return crypt{}, fmt.Errorf("%s: %w", dir, err)
	}
	cur, _ := kr.Current()
	k, err := kr.Subkey(cur, "index")
	if err != nil {
		return crypt{}, fmt.Errorf("%s: %w", dir, err)
	}
	c := crypt{sealer: s, index: index.Options{EncryptionKey: k[:]}}
	ids := kr.IDs()
	slices.Sort(ids)
	for _, id := range slices.Backward(ids) { // newest first
		if id == cur {
			continue
		}
		k, err := kr.Subkey(id, "index")
		if err != nil {
			return crypt{}, fmt.Errorf("%s: %w", dir, err)
		}
		c.older = append(c.older, index.Options{EncryptionKey: k[:]})
	}
	return c, nil
}
