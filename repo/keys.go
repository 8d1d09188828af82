package repo

import (
	"context"
	"fmt"

	"smp/keys"
)

// ReadKeys returns the config and the key slot file of the encrypted
// store in dir, without unlocking it (the file lists slots and key IDs,
// never a key in clear).
func ReadKeys(dir string) (*Config, *keys.File, error) {
	cfg, err := readConfig(dir)
	if err != nil {
		return nil, nil, err
	}
	if !cfg.Encrypted {
		return nil, nil, fmt.Errorf("store %s is not encrypted: it has no keys (made by smp init --no-encrypt or an older smp)", dir)
	}
	st, err := openStorage(dir)
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	f, _, err := keys.Load(context.Background(), st)
	if err != nil {
		return nil, nil, fmt.Errorf("store %s: %w (restore %s from a backup of the store)", dir, err, keys.FileName)
	}
	return cfg, f, nil
}

// EditKeys unlocks the key slot file of the encrypted store in dir with
// unlock, lets edit change it, and writes it back by compare-and-swap: an
// edit made meanwhile by another smp makes it fail and write nothing. It
// needs no store lock: a capture running meanwhile keeps sealing with the
// master key it unlocked, which stays in the file.
func EditKeys(dir string, unlock keys.UnlockFunc, edit func(*keys.Unlocked) error) error {
	cfg, err := readConfig(dir)
	if err != nil {
		return err
	}
	if !cfg.Encrypted {
		return fmt.Errorf("store %s is not encrypted: it has no keys (made by smp init --no-encrypt or an older smp)", dir)
	}
	st, err := openStorage(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	f, ver, err := keys.Load(ctx, st)
	if err != nil {
		return fmt.Errorf("store %s: %w (restore %s from a backup of the store)", dir, err, keys.FileName)
	}
	if f.StoreID != cfg.StoreID {
		return storeIDMismatch(dir, cfg, f)
	}
	u, err := unlock(keys.Describe(dir, cfg.StoreID), f)
	if err != nil {
		return err
	}
	if err := edit(u); err != nil {
		return err
	}
	return keys.Save(ctx, st, u.File, ver)
}

// storeIDMismatch is the error of a store whose config.json and keys.json
// name different stores: either may be the damaged one.
func storeIDMismatch(dir string, cfg *Config, f *keys.File) error {
	return fmt.Errorf("store %s: config.json names store %s but %s store %s: one of them is damaged or from another store (restore it from a backup of this store)",
		dir, cfg.StoreID, keys.FileName, f.StoreID)
}
