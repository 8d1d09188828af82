package keys

import (
	"context"
	"errors"
	"fmt"

	"smp/storage"
)

// Load reads and decodes the key slot file of the store whose objects are
// st, with its version for Save.
func Load(ctx context.Context, st storage.Storage) (*File, storage.Version, error) {
	info, err := st.Stat(ctx, FileName)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, storage.NoVersion, fmt.Errorf("%w: %s is missing", ErrDamaged, FileName)
	}
	if err != nil {
		return nil, storage.NoVersion, err
	}
	if info.Size > maxFileSize { // checked before reading: the bound is ours, not the file's
		return nil, storage.NoVersion, fmt.Errorf("%w: %s is larger than %d bytes", ErrDamaged, FileName, maxFileSize)
	}
	b, ver, err := st.GetVersioned(ctx, FileName)
	if err != nil {
		return nil, storage.NoVersion, err
	}
	f, err := Decode(b)
	if err != nil {
		return nil, storage.NoVersion, err
	}
	return f, ver, nil
}

// Save replaces the key slot file if it is still at version old
// (storage.NoVersion: creates it); a concurrent change makes it fail with
// storage.ErrConflict and write nothing.
func Save(ctx context.Context, st storage.Storage, f *File, old storage.Version) error {
	b, err := f.Encode()
	if err != nil {
		return err
	}
	if _, err := st.Swap(ctx, FileName, old, b); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return fmt.Errorf("%s was changed by another smp meanwhile: run the command again", FileName)
		}
		return err
	}
	return nil
}

// UnlockFunc opens a store's keys: given the store as errors and prompts
// name it (its directory and ID) and its decoded key slot file (whose
// StoreID is the store's), it finds a secret that opens a slot. The store
// and repo open options take one, so the command decides where secrets
// come from.
type UnlockFunc func(desc string, f *File) (*Unlocked, error)

// Describe is how a store is named to UnlockFunc.
func Describe(dir, storeID string) string { return dir + " (id " + storeID + ")" }
