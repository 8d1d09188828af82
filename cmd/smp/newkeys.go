package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"smp/keys"
)

// newKeysOptions are where the keys of a store being made encrypted go:
// smp init --encrypt and smp encrypt share them.
type newKeysOptions struct {
	// KeyFile is where the key file is written; "" is the user's config
	// directory (ConfigDir, or keys.DefaultConfigDir()), by store ID.
	KeyFile string
	// PassphraseFile, when set, also adds a passphrase slot.
	PassphraseFile string
	ConfigDir      string
	// ReuseKeyFile lets an existing key file at the path open the new
	// keys instead of failing (a re-run of an interrupted smp encrypt,
	// whose first run wrote the key file but not keys.json).
	ReuseKeyFile bool
}

// newKeys are a new store's keys, with the secrets made for them.
type newKeys struct {
	u        *keys.Unlocked
	keyFile  string // written (or reused) key file
	written  bool   // keyFile is new: undo removes it
	recovery string
}

// newStoreKeys makes the keys of store storeID (in dir) as smp init does
// for a new encrypted store: a key file slot, whose key file is written
// outside the store before the keys are returned, a recovery key slot
// (its key printed once by print), and a passphrase slot when
// o.PassphraseFile is set. hashKey, when given, is kept (smp encrypt: the
// store's IDs stay the same); otherwise a new one is made.
func newStoreKeys(o newKeysOptions, dir, storeID string, hashKey *[32]byte) (*newKeys, error) {
	var pass []byte
	if o.PassphraseFile != "" {
		var err error
		if pass, err = readPassphrase("--passphrase-file", o.PassphraseFile); err != nil {
			return nil, err
		}
	}
	var u *keys.Unlocked
	var err error
	if hashKey != nil {
		u, err = keys.CreateWithHashKey(storeID, *hashKey)
	} else {
		u, err = keys.Create(storeID)
	}
	if err != nil {
		return nil, err
	}
	path := o.KeyFile
	if path == "" {
		cd := o.ConfigDir
		if cd == "" {
			cd = keys.DefaultConfigDir()
		}
		if cd == "" {
			return nil, usagef("no user config directory ($XDG_CONFIG_HOME or $HOME) for the key file: give --key-file FILE (or, for smp init, --no-encrypt for a store in clear)")
		}
		path = keys.StoredKeyPath(cd, storeID)
	}
	nk := &newKeys{u: u}
	if o.ReuseKeyFile {
		if b, err := keys.ReadSecretFile(path); err == nil {
			k, err := keys.ParseKeyFile(b)
			if err != nil {
				return nil, fmt.Errorf("key file %s: %v", path, err)
			}
			if _, err := u.AddKeyFileWith(k); err != nil {
				return nil, err
			}
			nk.keyFile = path
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("key file %s: %v", path, err)
		}
	}
	if nk.keyFile == "" {
		k, _, err := u.AddKeyFile()
		if err != nil {
			return nil, err
		}
		if nk.keyFile, err = writeNewKeyFile(path, dir, k); err != nil {
			return nil, err
		}
		nk.written = true
	}
	if nk.recovery, _, err = u.AddRecovery(); err != nil {
		nk.undo()
		return nil, err
	}
	if pass != nil {
		if _, err := u.AddPassphrase(pass); err != nil {
			nk.undo()
			return nil, err
		}
	}
	return nk, nil
}

// undo removes the key file newStoreKeys wrote, when the store did not
// come to use the keys.
func (nk *newKeys) undo() {
	if nk.written {
		os.Remove(nk.keyFile)
	}
}

// print tells where the key file is and shows the recovery key, once.
func (nk *newKeys) print(stdout io.Writer, givenKeyFile string) {
	fmt.Fprintf(stdout, "encrypted; key file %s %s\n", nk.keyFile, keyFileHint(givenKeyFile))
	fmt.Fprintf(stdout, "recovery key: %s\n", nk.recovery)
	fmt.Fprintln(stdout, "the recovery key is shown only now: keep it apart from the store (it opens the store alone; give it through --passphrase-file or at the prompt)")
}
