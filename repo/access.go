package repo

import (
	"smp/keys"
	"smp/remote/access"
)

// accessCodec seals the access file of an encrypted store with a subkey of
// its master key, the associated data binding the store ID and the file's
// purpose (keys.Sealer).
func accessCodec(kr *keys.Keyring, storeID string) access.Codec {
	return keys.NewSealer(kr, storeID, keys.PurposeAccess, access.MaxFileSize)
}

// Access returns the access file of the open store: sealed in an
// encrypted store, in clear otherwise (package remote/access).
func (r *Repo) Access() (*access.Store, error) {
	if r.Keyring == nil {
		return access.Open(r.Dir)
	}
	return access.OpenWith(r.Dir, accessCodec(r.Keyring, r.Config.StoreID))
}

// OpenAccess returns the access file of the store in dir (a store
// directory or the cache directory of a store on S3) without opening the
// store, which a server may hold: an encrypted store's keys are unlocked
// as o says (o.Keyring, or else o.Unlock), so a missing or wrong key fails
// here with the one-line error of every other command.
func OpenAccess(dir string, o OpenOptions) (*access.Store, error) {
	cfg, err := readConfig(dir)
	if err != nil {
		return nil, err
	}
	if !cfg.Encrypted {
		return access.Open(dir)
	}
	kr, err := UnlockKeys(dir, o)
	if err != nil {
		return nil, err
	}
	return access.OpenWith(dir, accessCodec(kr, cfg.StoreID))
}
