package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"smp/cas"
	"smp/internal/sysfile"
	"smp/keys"
	"smp/storage"
)

// Converting a store in clear to an encrypted one in place (smp encrypt).
// Each step is durable before the next, and a crash at any point leaves a
// store every smp opens and reads (with the key once keys.json exists);
// Encrypt run again finishes the job:
//
//  1. keys.json is written (made by EncryptOptions.NewKeys around the
//     store's own hash key, so every ID stays the same); config.json
//     still says version 1, so until step 2 the store is in clear and
//     keys.json unused. A re-run finds keys.json and unlocks it instead;
//  2. config.json is replaced (atomically) by version 3, conversion
//     "mixed": no hash key, encrypted, packs in clear still read (see
//     Config.Mixed). From here every new pack is sealed;
//  3. gc --rekey (rekey.go): every pack in clear is rewritten sealed, the
//     index copied encrypted and swapped in, the TLS key sealed;
//  4. KeyUsage is read back: nothing may remain in clear or under
//     another key. Then config.json becomes version 2, conversion "done".

// EncryptOptions are how Encrypt gets the keys.
type EncryptOptions struct {
	// NewKeys makes the keys of the store with this ID around its hash
	// key, with at least one slot (and keeps their secrets where the
	// caller says: key file, recovery key). Called only when keys.json
	// does not exist yet.
	NewKeys func(storeID string, hashKey [32]byte) (*keys.Unlocked, error)
	// Unlock opens the keys.json an earlier, interrupted run wrote.
	Unlock keys.UnlockFunc
}

// EncryptReport is what Encrypt did.
type EncryptReport struct {
	// Already is set when the store was encrypted before Encrypt ran.
	Already bool
	// Resumed is set when an earlier run had written the keys.
	Resumed bool
	// KeyedGear is whether new captures cut chunks with a keyed gear
	// table: only a store holding no pack yet is given one, as keying it
	// would stop new captures deduplicating against existing chunks.
	KeyedGear bool
	// LinkedFiles is set when the store has a hard-link area (links/),
	// which holds users' files as they are and cannot be encrypted.
	LinkedFiles bool
	GC          *GCReport
}

// Encrypt converts the store in dir to an encrypted one in place, or
// finishes a conversion an earlier run began.
func Encrypt(ctx context.Context, dir string, o EncryptOptions) (*EncryptReport, error) {
	cfg, err := readConfig(dir)
	if err != nil {
		return nil, err
	}
	rep := &EncryptReport{}
	oo := OpenOptions{Unlock: o.Unlock}
	switch {
	case cfg.Encrypted && !cfg.Mixed():
		rep.Already, rep.KeyedGear = true, cfg.Chunker.KeyedGear
		rep.LinkedFiles = hasLinks(dir)
		return rep, nil
	case !cfg.Encrypted:
		kr, err := encryptStart(ctx, dir, o, rep)
		if err != nil {
			return nil, err
		}
		oo = OpenOptions{Keyring: kr}
	default:
		rep.Resumed = true
	}
	r, err := OpenWith(dir, oo)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	rep.KeyedGear, rep.LinkedFiles = r.Config.Chunker.KeyedGear, hasLinks(dir)
	if rep.GC, err = r.GC(ctx, GCOptions{Rekey: true}); err != nil {
		return nil, fmt.Errorf("encrypt %s: %w (run smp encrypt again to finish)", dir, err)
	}
	u, err := r.KeyUsage()
	if err != nil {
		return nil, err
	}
	cur, _ := r.Keyring.Current()
	var left []string
	for _, id := range r.Keyring.IDs() {
		if id != cur {
			left = append(left, u.Uses(id)...)
		}
	}
	if left = append(left, u.Uses(0)...); len(left) > 0 {
		return nil, fmt.Errorf("encrypt %s: not finished, still in clear or under an old key: %s; problems: %s (see smp verify; then run smp encrypt again)",
			dir, strings.Join(left, ", "), strings.Join(rep.GC.Problems, "; "))
	}
	if err := rekeyPoint("before done"); err != nil {
		return nil, err
	}
	done := *r.Config
	done.Conversion = ConversionDone
	done.Version = done.formatVersion()
	if err := writeConfig(dir, &done); err != nil {
		return nil, err
	}
	*r.Config = done
	return rep, nil
}

// encryptStart does steps 1 and 2 under the store's lock and returns the
// store's keyring.
func encryptStart(ctx context.Context, dir string, o EncryptOptions, rep *EncryptReport) (*keys.Keyring, error) {
	lock, err := lockStore(dir)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	cfg, err := readConfig(dir) // again, now that no other smp writes it
	if err != nil {
		return nil, err
	}
	if cfg.Encrypted {
		return nil, fmt.Errorf("store %s was encrypted meanwhile by another smp: run smp encrypt again", dir)
	}
	var hk [32]byte
	copy(hk[:], cfg.HashKey)
	st, err := openStorage(dir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var u *keys.Unlocked
	if _, err := st.Stat(ctx, keys.FileName); errors.Is(err, storage.ErrNotFound) {
		if u, err = o.NewKeys(cfg.StoreID, hk); err != nil {
			return nil, err
		}
		if err := keys.Save(ctx, st, u.File, storage.NoVersion); err != nil {
			return nil, fmt.Errorf("write %s: %w", keys.FileName, err)
		}
		if err := rekeyPoint("keys saved"); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	} else {
		rep.Resumed = true
		f, _, err := keys.Load(ctx, st)
		if err != nil {
			return nil, fmt.Errorf("store %s: %w (an interrupted smp encrypt wrote it: remove %s and run smp encrypt again)", dir, err, keys.FileName)
		}
		if f.StoreID != cfg.StoreID {
			return nil, fmt.Errorf("store %s: %s belongs to store %s, not %s", dir, keys.FileName, f.StoreID, cfg.StoreID)
		}
		if u, err = o.Unlock(keys.Describe(dir, cfg.StoreID), f); err != nil {
			return nil, err
		}
	}
	kr := u.Keyring()
	if got, _ := kr.HashKey(); got != hk {
		return nil, fmt.Errorf("store %s: %s wraps another hash key than config.json's: remove %s and run smp encrypt again", dir, keys.FileName, keys.FileName)
	}
	// The gear table is keyed only while no chunk was cut: a store with
	// packs keeps its unkeyed table, so new captures still deduplicate
	// against what it holds (docs/SECURITY.md).
	found, err := hasPacks(cas.NewPacks(st, packPrefix))
	if err != nil {
		return nil, err
	}
	next := *cfg
	next.Encrypted, next.Conversion, next.HashKey, next.Cipher = true, ConversionMixed, nil, cas.DefaultCipher
	next.Version = next.formatVersion()
	next.Chunker.KeyedGear = !found
	if err := writeConfig(dir, &next); err != nil {
		return nil, err
	}
	if err := rekeyPoint("mixed"); err != nil {
		return nil, err
	}
	return kr, nil
}

// writeConfig replaces config.json atomically.
func writeConfig(dir string, cfg *Config) error {
	if err := cfg.check(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := sysfile.WriteFile(filepath.Join(dir, "config.json"), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// hasLinks reports whether the store's hard-link area holds anything.
func hasLinks(dir string) bool {
	entries, err := os.ReadDir(filepath.Join(dir, "links"))
	return err == nil && len(entries) > 0
}

// RetireKey removes master key id from the keys of the encrypted store in
// dir, after checking (under the store's lock, reading only) that no pack,
// no index and no sealed file still uses it; otherwise it refuses and
// writes nothing. unlock opens the keys once, for both. On a store several
// smp share it also waits, before the last check, until keys.json is
// older than the bound in which they take up a change of the keys
// (keysSettleWait): until then one may still seal under id.
func RetireKey(dir string, unlock keys.UnlockFunc, id keys.KeyID) error {
	return EditKeys(dir, unlock, func(u *keys.Unlocked) error {
		if err := u.File.CheckRetire(id); err != nil {
			return err // not a key of the store, or the current one
		}
		cfg, err := readConfig(dir)
		if err != nil {
			return err
		}
		if cfg.Mixed() {
			return fmt.Errorf("store %s is still being converted: finish it first (smp encrypt --store %s)", dir, dir)
		}
		r, err := OpenWith(dir, OpenOptions{ReadOnly: true, Keyring: u.Keyring()})
		if err != nil {
			return err
		}
		defer r.Close()
		// On a shared store the usage counts once every writer has
		// taken up the current key or refuses to write (keysshared.go):
		// read again after waiting for that, as a writer may have stored
		// a pack under id meanwhile.
		for range 3 {
			usage, err := r.KeyUsage()
			if err != nil {
				return err
			}
			if uses := usage.Uses(id); len(uses) > 0 {
				return fmt.Errorf("master key %d still seals %s: run smp gc --rekey --store %s first", id, strings.Join(uses, ", "), dir)
			}
			if !r.shared {
				return u.Retire(id)
			}
			wait, err := keysSettleWait(context.Background(), r.st, SharedRefreshBound)
			if err != nil {
				return fmt.Errorf("retire master key %d: %w", id, err)
			}
			if wait <= 0 {
				return u.Retire(id)
			}
			time.Sleep(wait)
		}
		return fmt.Errorf("retire master key %d: %s keeps changing: run smp key retire again", id, keys.FileName)
	})
}
