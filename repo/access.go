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
// encrypted store, in clear otherwise (package remote/access). A store on
// S3 keeps it in the bucket, shared by every smp that uses the store
// (access.OpenShared); an access file its cache directory still holds
// from before is moved there.
func (r *Repo) Access() (*access.Store, error) {
	var c access.Codec
	switch {
	case r.keys != nil:
		c = accessKeys{r} // under the keys a refresh adopts (keysshared.go)
	case r.Keyring != nil:
		c = accessCodec(r.Keyring, r.Config.StoreID)
	}
	if r.shared {
		return access.OpenShared(r.st, access.SharedOptions{Codec: c, LocalDir: r.Dir})
	}
	return access.OpenWith(r.Dir, c)
}

// OpenAccess returns the access file of the store in dir (a store
// directory or the cache directory of a store on S3) without opening the
// store, which a server may hold: an encrypted store's keys are unlocked
// as o says (o.Keyring, or else o.Unlock), so a missing or wrong key fails
// here with the one-line error of every other command. The caller closes
// the returned Store (it may hold a connection to the bucket).
func OpenAccess(dir string, o OpenOptions) (*access.Store, error) {
	cfg, err := readConfig(dir)
	if err != nil {
		return nil, err
	}
	var c access.Codec
	if cfg.Encrypted {
		kr, err := UnlockKeys(dir, o)
		if err != nil {
			return nil, err
		}
		c = accessCodec(kr, cfg.StoreID)
	}
	l, err := ReadLocation(dir)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return access.OpenWith(dir, c)
	}
	st, err := openStorage(dir)
	if err != nil {
		return nil, err
	}
	a, err := access.OpenShared(st, access.SharedOptions{Codec: c, LocalDir: dir, Close: true})
	if err != nil {
		st.Close()
		return nil, err
	}
	return a, nil
}
