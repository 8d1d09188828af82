package repo

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"smp/cas"
	"smp/internal/sysfile"
	"smp/keys"
	"smp/storage"
)

// Store format versions this smp reads and writes; see docs/FORMAT.md.
//
// Version 1 is a store in clear; version 2 an encrypted store (Encrypted
// set: sealed packs, encrypted index, keyed gear table), whose keys are in
// keys.json (package keys) and whose config.json holds no hash key. An
// unencrypted store is still written as version 1, so older smp keep
// reading it. Version 3 is a store smp encrypt is converting (Conversion
// ConversionMixed): encrypted as version 2, but packs in clear and an
// index in clear may remain, and are read; older smp refuse it rather
// than misread it. A finished conversion is version 2 again, with
// Conversion ConversionDone. Versions 2 and 3 seal packs with
// XChaCha20-Poly1305. Version 4 is an encrypted store whose config.json
// names the cipher of its packs (Cipher; XAES-256-GCM for the stores smp
// makes or converts now), converting or not: smp that do not know it
// refuse it rather than read its packs as damaged. Config.formatVersion
// derives the version from the other fields.
const (
	FormatVersion           = 1
	FormatVersionEncrypted  = 2
	FormatVersionConverting = 3
	FormatVersionCipher     = 4
	minFormatVersion        = 1
	maxFormatVersion        = 4
)

// Conversion is how an encrypted store came to be: "" made encrypted by
// smp init, else converted in place by smp encrypt.
type Conversion string

const (
	// ConversionMixed: smp encrypt has started. The hash key is wrapped
	// in keys.json and new packs are sealed, but packs in clear (version
	// 1) and an index in clear may remain; every smp reads both.
	ConversionMixed Conversion = "mixed"
	// ConversionDone: every pack is sealed, the index encrypted and the
	// TLS key sealed. The gear table may be unkeyed (Chunker.KeyedGear
	// false): the chunks cut before the conversion were cut unkeyed, and
	// keeping the table keeps new captures deduplicating against them.
	ConversionDone Conversion = "done"
)

func (c Conversion) valid() bool { return c == "" || c == ConversionMixed || c == ConversionDone }

// ErrNotStore is returned when a directory holds no smp store.
var ErrNotStore = errors.New("not an smp store")

// Config is config.json: fixed at init, read on every open.
type Config struct {
	Version     int               `json:"version"`
	StoreID     string            `json:"store_id"`
	Created     time.Time         `json:"created"`
	Chunker     cas.ChunkerParams `json:"chunker"`
	ChunkerAlgo string            `json:"chunker_algo"`
	HashAlgo    string            `json:"hash_algo"`
	// HashKey is the content hash key of an unencrypted store; an
	// encrypted store keeps it wrapped in keys.json and has none here
	// (keys.Keyring.HashKey).
	HashKey []byte `json:"hash_key,omitempty"`
	// Encrypted is set at init (with version 4, or 2) and never changes:
	// every pack is sealed (with Cipher's pack version) and the index
	// encrypted at rest, with keys from the store's keyring, unlocked from keys.json
	// (OpenOptions).
	Encrypted bool `json:"encrypted,omitempty"`
	// Conversion is set by smp encrypt on a store it converts in place
	// (version 4 while it is ConversionMixed; 3 in a store without Cipher).
	Conversion Conversion `json:"conversion,omitempty"`
	// Cipher is the AEAD of an encrypted store's sealed packs (version 4);
	// zero in a version 2 or 3 store, whose packs XChaCha20-Poly1305
	// seals (see SealCipher). It never changes: smp gc --rekey rewrites
	// packs with the same cipher.
	Cipher      cas.Cipher `json:"cipher,omitempty"`
	Compression string     `json:"compression"`
	PackSize    int64      `json:"pack_size"`
}

const (
	chunkerAlgo     = "fastcdc-gear64-v1"
	hashAlgo        = "blake3-256-keyed"
	defaultPackSize = 32 << 20
)

func (c *Config) check() error {
	switch {
	case c.Version < minFormatVersion || c.Version > maxFormatVersion:
		return fmt.Errorf("store format version %d is not supported by this smp (reads %d-%d)", c.Version, minFormatVersion, maxFormatVersion)
	case c.ChunkerAlgo != chunkerAlgo:
		return fmt.Errorf("unknown chunker %q in config.json", c.ChunkerAlgo)
	case c.Encrypted != (c.Version >= FormatVersionEncrypted):
		return fmt.Errorf("config.json says encrypted=%v with format version %d", c.Encrypted, c.Version)
	case c.Cipher != 0 && (!c.Cipher.Valid() || !c.Encrypted) || (c.Version == FormatVersionCipher) != (c.Cipher != 0):
		return fmt.Errorf("config.json says cipher %q with format version %d", c.Cipher, c.Version)
	case !c.Conversion.valid() || c.Version != c.formatVersion() || c.Conversion != "" && !c.Encrypted:
		return fmt.Errorf("config.json says conversion %q with format version %d", c.Conversion, c.Version)
	case c.HashAlgo != hashAlgo || c.Encrypted && len(c.HashKey) != 0 || !c.Encrypted && len(c.HashKey) != 32:
		return fmt.Errorf("unknown hash %q or bad key in config.json", c.HashAlgo)
	case c.Encrypted && !c.Chunker.KeyedGear && c.Conversion == "":
		return fmt.Errorf("config.json: an encrypted store must key its gear table")
	case c.PackSize < 1<<20 || c.PackSize > 1<<30:
		return fmt.Errorf("pack size %d in config.json out of range", c.PackSize)
	}
	if err := c.Chunker.Validate(); err != nil {
		return fmt.Errorf("config.json: %w", err)
	}
	return nil
}

// Init creates a new, unencrypted store in dir, which must be missing or
// empty.
func Init(dir string, params cas.ChunkerParams) (*Config, error) {
	return InitWith(dir, InitOptions{Params: params})
}

// InitOptions are the choices fixed when a store is created.
type InitOptions struct {
	Params cas.ChunkerParams
	// Keys, when set, makes an encrypted store (format version 4) with
	// these keys (made by keys.Create, with at least one slot): the store
	// takes its ID, its hash key stays wrapped in keys.json, its packs are
	// sealed and its index encrypted with the keyring every open must then
	// unlock, and its gear table is keyed from the hash key.
	Keys *keys.Unlocked
	// Cipher seals an encrypted store's packs; zero is cas.DefaultCipher.
	// cas.CipherXChaCha20Poly1305 makes the version 2 store of smp before
	// version 4 (tests of old stores use it).
	Cipher cas.Cipher
}

// InitWith creates a new store in dir, which must be missing or empty.
func InitWith(dir string, o InitOptions) (*Config, error) {
	params := o.Params
	params.KeyedGear, params.Gear = o.Keys != nil, nil
	if err := params.Validate(); err != nil {
		return nil, err
	}
	loc, err := ReadLocation(dir)
	if err != nil {
		return nil, err
	}
	if loc != nil {
		// A cache directory: the bucket prefix must hold no store; the
		// directory holds LocationFile and may hold a stale cache.
	} else if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
			return nil, fmt.Errorf("%s already holds an smp store", dir)
		}
		return nil, fmt.Errorf("%s is not empty: give a new or empty directory", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("init store: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("init store: %w", err)
	}
	cfg := &Config{
		Version:     FormatVersion,
		Created:     time.Now().UTC(),
		Chunker:     params,
		ChunkerAlgo: chunkerAlgo,
		HashAlgo:    hashAlgo,
		Compression: "zstd",
		PackSize:    defaultPackSize,
	}
	if o.Keys != nil {
		cfg.Encrypted, cfg.StoreID, cfg.Cipher = true, o.Keys.File.StoreID, o.Cipher
		switch o.Cipher {
		case 0:
			cfg.Cipher = cas.DefaultCipher
		case cas.CipherXChaCha20Poly1305:
			cfg.Cipher = 0 // as a version 2 store names none
		}
		cfg.Version = cfg.formatVersion()
		if err := cfg.check(); err != nil {
			return nil, err
		}
	} else {
		var sid [16]byte
		if _, err := rand.Read(sid[:]); err != nil {
			return nil, fmt.Errorf("init store: %w", err)
		}
		cfg.StoreID = fmt.Sprintf("%x", sid)
		cfg.HashKey = make([]byte, 32)
		if _, err := rand.Read(cfg.HashKey); err != nil {
			return nil, fmt.Errorf("init store: %w", err)
		}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	if loc != nil {
		return cfg, initRemote(loc, b, o)
	}
	st, err := openStorage(dir) // creates packs/ and packs/tmp
	if err != nil {
		return nil, err
	}
	defer st.Close()
	// The keys before config.json: a store is one once its config is
	// there, and an encrypted one cannot open without its keys.
	if o.Keys != nil {
		if err := keys.Save(context.Background(), st, o.Keys.File, storage.NoVersion); err != nil {
			return nil, fmt.Errorf("write %s: %w", keys.FileName, err)
		}
	}
	if err := sysfile.WriteFile(filepath.Join(dir, "config.json"), append(b, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	return cfg, nil
}

// initRemote writes a new store's keys and config into the bucket of loc.
// config.json is created by PutIfAbsent, so of two inits of one prefix
// one fails, and a prefix holding a store is never overwritten.
func initRemote(loc *Location, b []byte, o InitOptions) error {
	st, err := openRemote(loc, true)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := st.Stat(ctx, "config.json"); err == nil {
		return fmt.Errorf("%s already holds an smp store", loc.URL)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("init store: %w", err)
	}
	if page, _, err := st.List(ctx, "", "", 1); err != nil {
		return fmt.Errorf("init store: %w", err)
	} else if len(page) > 0 {
		return fmt.Errorf("%s is not empty (it holds %s): give an empty bucket or a new prefix", loc.URL, page[0].Name)
	}
	if o.Keys != nil {
		if err := keys.Save(ctx, st, o.Keys.File, storage.NoVersion); err != nil {
			return fmt.Errorf("write %s: %w", keys.FileName, err)
		}
	}
	if err := st.PutIfAbsent(ctx, "config.json", append(b, '\n')); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return fmt.Errorf("%s already holds an smp store", loc.URL)
		}
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// ErrKeys is wrapped by the errors of an encrypted store whose keys could
// not be unlocked (missing, wrong, or a damaged key slot file).
var ErrKeys = errors.New("store keys not unlocked")

// keysError is an error of unlocking a store: its text as is, and
// errors.Is(err, ErrKeys).
type keysError struct{ err error }

func (e keysError) Error() string   { return e.err.Error() }
func (e keysError) Unwrap() []error { return []error{e.err, ErrKeys} }

// keyRequiredError is the error of opening an encrypted store with
// neither a keyring nor a way to unlock one: errors.Is(err, ErrKeyRequired).
type keyRequiredError struct{ dir string }

func (e keyRequiredError) Error() string {
	return fmt.Sprintf("store %s is encrypted and no key was given", e.dir)
}
func (e keyRequiredError) Unwrap() error { return ErrKeyRequired }

// unlockStore returns the keyring of an encrypted store, nil for an
// unencrypted one. It only reads.
func unlockStore(dir string, cfg *Config, st storage.Storage, o OpenOptions) (*keys.Keyring, error) {
	if !cfg.Encrypted {
		return nil, nil
	}
	if o.Keyring != nil {
		if _, ok := o.Keyring.HashKey(); !ok {
			return nil, keysError{fmt.Errorf("store %s: the keyring given has no hash key", dir)}
		}
		return o.Keyring, nil
	}
	if o.Unlock == nil {
		return nil, keysError{keyRequiredError{dir}}
	}
	f, _, err := keys.Load(context.Background(), st)
	if err != nil {
		return nil, keysError{oneLineError{fmt.Errorf("store %s: %w (restore %s from a backup of the store)", dir, err, keys.FileName)}}
	}
	if f.StoreID != cfg.StoreID {
		return nil, keysError{storeIDMismatch(dir, cfg, f)}
	}
	u, err := o.Unlock(keys.Describe(dir, cfg.StoreID), f)
	if err != nil {
		return nil, keysError{err}
	}
	return u.Keyring(), nil
}

// formatVersion is the store format version c's other fields call for:
// the lowest that every smp reading the store must know.
func (c *Config) formatVersion() int {
	switch {
	case !c.Encrypted:
		return FormatVersion
	case c.Cipher != 0:
		return FormatVersionCipher
	case c.Mixed():
		return FormatVersionConverting
	}
	return FormatVersionEncrypted
}

// SealCipher returns the cipher of an encrypted store's packs.
func (c *Config) SealCipher() cas.Cipher {
	if c.Cipher == 0 {
		return cas.CipherXChaCha20Poly1305
	}
	return c.Cipher
}

// Mixed reports whether the store is being converted to encryption:
// packs and an index in clear may remain beside sealed ones.
func (c *Config) Mixed() bool { return c.Conversion == ConversionMixed }

func readConfig(dir string) (*Config, error) {
	if l, err := ReadLocation(dir); err != nil || l != nil {
		if err != nil {
			return nil, err
		}
		return ReadRemoteConfig(l)
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(dir); serr != nil {
			return nil, fmt.Errorf("store %s does not exist: run smp init --store %s: %w", dir, dir, ErrNotStore)
		}
		return nil, fmt.Errorf("%s is not initialised: run smp init --store %s: %w", dir, dir, ErrNotStore)
	}
	if err != nil {
		return nil, fmt.Errorf("read store config: %w", err)
	}
	return decodeConfig(b, dir)
}

// decodeConfig decodes and checks config.json of the store at where.
func decodeConfig(b []byte, where string) (*Config, error) {
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("store config %s/config.json is damaged: %v: %w", where, err, ErrNotStore)
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("store %s: %w", where, err)
	}
	return &cfg, nil
}
