package repo

import (
	"errors"
	"fmt"
	"slices"

	"smp/cas"
	"smp/index"
	"smp/keys"
	"smp/storage"
)

// ErrKeyRequired is returned when an encrypted store is opened without
// its keyring.
var ErrKeyRequired = errors.New("store is encrypted: its key is required")

// crypt is what an open store seals and encrypts with; zero for a store
// in clear.
type crypt struct {
	sealer *cas.Sealer
	index  index.Options
	// older are the index keys of the keyring's other master keys, newest
	// first: an index stays under the key that was current when it was
	// built until it is rebuilt (smp index rebuild, smp gc --rekey), so a
	// rotation does not lock it. A store being converted (Config.Mixed)
	// ends the list with the index in clear it may still have.
	older []indexKey
	// current is the master key of index.
	current keys.KeyID
	// mixed reads packs in clear beside sealed ones (Config.Mixed).
	mixed bool
}

// indexKey is the index options of one master key (id 0: in clear).
type indexKey struct {
	id keys.KeyID
	o  index.Options
}

// openIndexWith opens an index with open under the current key, or under
// the key it was built with when that is an older one of the keyring (or,
// converting, none). It returns the master key the index is under (0: in
// clear).
func (c crypt) openIndexWith(open func(index.Options) (*index.Index, error)) (*index.Index, keys.KeyID, error) {
	ix, err := open(c.index)
	kid := c.current
	for _, k := range c.older {
		if !errors.Is(err, index.ErrWrongKey) {
			break
		}
		ix, err = open(k.o)
		kid = k.id
	}
	return ix, kid, err
}

// packs returns the store's packs in st, sealed and read as c says.
func (c crypt) packs(st storage.Storage) *cas.PackDir {
	d := cas.NewPacks(st, packPrefix).Seal(c.sealer)
	if c.mixed {
		d.AcceptClear()
	}
	return d
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
	s, err := cas.NewSealer(cfg.StoreID, kr, cfg.SealCipher())
	if err != nil {
		return crypt{}, fmt.Errorf("%s: %w", dir, err)
	}
	cur, _ := kr.Current()
	k, err := kr.Subkey(cur, "index")
	if err != nil {
		return crypt{}, fmt.Errorf("%s: %w", dir, err)
	}
	c := crypt{sealer: s, index: index.Options{EncryptionKey: k[:]}, current: cur, mixed: cfg.Mixed()}
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
		c.older = append(c.older, indexKey{id, index.Options{EncryptionKey: k[:]}})
	}
	if c.mixed {
		c.older = append(c.older, indexKey{0, index.Options{}})
	}
	return c, nil
}
