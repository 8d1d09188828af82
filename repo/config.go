package repo

import (
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
)

// Store format versions this smp reads and writes; see docs/FORMAT.md.
//
// Version 1 is a store in clear; version 2 an encrypted store (Encrypted
// set: sealed packs, encrypted index, keyed gear table). An unencrypted
// store is still written as version 1, so older smp keep reading it.
const (
	FormatVersion          = 1
	FormatVersionEncrypted = 2
	minFormatVersion       = 1
	maxFormatVersion       = 2
)

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
	HashKey     []byte            `json:"hash_key"`
	Compression string            `json:"compression"`
	PackSize    int64             `json:"pack_size"`
	// Encrypted is set at init and never changes: every pack is sealed
	// (cas.PackVersionSealed) and the index encrypted at rest, with keys
	// from the store's keyring (Options.Keyring).
	Encrypted bool `json:"encrypted,omitempty"`
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
	case c.HashAlgo != hashAlgo || len(c.HashKey) != 32:
		return fmt.Errorf("unknown hash %q or bad key in config.json", c.HashAlgo)
	case c.Encrypted != (c.Version >= FormatVersionEncrypted):
		return fmt.Errorf("config.json: format version %d does not match encrypted=%v", c.Version, c.Encrypted)
	case c.Encrypted && !c.Chunker.KeyedGear:
		return fmt.Errorf("config.json: an encrypted store must key its gear table")
	case c.PackSize < 1<<20 || c.PackSize > 1<<30:
		return fmt.Errorf("pack size %d in config.json out of range", c.PackSize)
	}
	if err := c.Chunker.Validate(); err != nil {
		return fmt.Errorf("config.json: %w", err)
	}
	return nil
}

// InitOptions are the choices fixed when a store is created.
type InitOptions struct {
	Chunker cas.ChunkerParams
	// Encrypted creates an encrypted store (format version 2): its packs
	// are sealed and its index encrypted with keys from the keyring every
	// open must then be given, and its gear table is keyed.
	Encrypted bool
}

// Init creates a new unencrypted store in dir, which must be missing or empty.
func Init(dir string, params cas.ChunkerParams) (*Config, error) {
	return InitWith(dir, InitOptions{Chunker: params})
}

// InitWith creates a new store in dir, which must be missing or empty.
func InitWith(dir string, o InitOptions) (*Config, error) {
	params := o.Chunker
	params.KeyedGear, params.Gear = o.Encrypted, nil
	if err := params.Validate(); err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
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
		HashKey:     make([]byte, 32),
		Compression: "zstd",
		PackSize:    defaultPackSize,
		Encrypted:   o.Encrypted,
	}
	if o.Encrypted {
		cfg.Version = FormatVersionEncrypted
	}
	var sid [16]byte
	if _, err := rand.Read(sid[:]); err != nil {
		return nil, fmt.Errorf("init store: %w", err)
	}
	cfg.StoreID = fmt.Sprintf("%x", sid)
	if _, err := rand.Read(cfg.HashKey); err != nil {
		return nil, fmt.Errorf("init store: %w", err)
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := sysfile.WriteFile(filepath.Join(dir, "config.json"), append(b, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	st, err := openStorage(dir) // creates packs/ and packs/tmp
	if err != nil {
		return nil, err
	}
	st.Close()
	return cfg, nil
}

// ChunkerParams returns the store's chunking parameters, ready to chunk:
// with the keyed gear table derived when the store keys it.
func (c *Config) ChunkerParams() cas.ChunkerParams {
	var key [32]byte
	copy(key[:], c.HashKey)
	return c.Chunker.WithGearKey(key)
}

func readConfig(dir string) (*Config, error) {
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
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("store config %s is damaged: %v: %w", filepath.Join(dir, "config.json"), err, ErrNotStore)
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	return &cfg, nil
}
