package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"smp/internal/sysfile"
	"smp/keys"
	"smp/storage"
	"smp/storage/s3"
)

// A store whose objects live elsewhere (an S3 bucket) is opened through a
// cache directory on this machine: dir holds LocationFile, naming where the
// objects are, and the local-by-nature parts (index/, lock, links/). Every
// function of this package that takes a store directory takes such a cache
// directory too: openStorage opens the bucket, and the config, key slots,
// packs, records and tombstones are read from it.

// LocationFile is the file of a cache directory that names the store's
// object storage.
const LocationFile = "location.json"

// Location is LocationFile: where the store's objects are.
type Location struct {
	// URL is s3://ENDPOINT/BUCKET/PREFIX.
	URL string `json:"location"`
	// Insecure speaks plain http to the endpoint (loopback only; the
	// storage refuses another host).
	Insecure bool `json:"insecure,omitempty"`
}

// ReadLocation returns the location of the cache directory dir, nil when
// dir is a store directory (no LocationFile).
func ReadLocation(dir string) (*Location, error) {
	b, err := os.ReadFile(filepath.Join(dir, LocationFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var l Location
	if err := json.Unmarshal(b, &l); err != nil || !s3.IsURL(l.URL) {
		return nil, fmt.Errorf("%s is damaged (%v): remove the cache directory %s; it is rebuilt from the bucket", filepath.Join(dir, LocationFile), err, dir)
	}
	return &l, nil
}

// WriteLocation makes dir (created if missing) the cache directory of the
// store at l. A cache directory of another location is refused.
func WriteLocation(dir string, l Location) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cache directory: %w", err)
	}
	old, err := ReadLocation(dir)
	if err != nil {
		return err
	}
	if old != nil && old.URL != l.URL {
		return fmt.Errorf("cache directory %s belongs to the store at %s, not %s: give another --cache", dir, old.URL, l.URL)
	}
	if old != nil && *old == l {
		return nil
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	return sysfile.WriteFile(filepath.Join(dir, LocationFile), append(b, '\n'), 0o600)
}

// S3TimeoutEnv names the environment variable that sets how long a
// request to the object store waits for its answer, or for the next byte
// of one, before it is abandoned and retried (s3.Options.Timeout and
// ReadIdle; default 60 s and 30 s).
const S3TimeoutEnv = "SMP_S3_TIMEOUT"

// openRemote opens the object storage a cache directory names.
func openRemote(l *Location, create bool) (storage.Storage, error) {
	o, err := s3.ParseURL(l.URL)
	if err != nil {
		return nil, err
	}
	o.Insecure, o.Create = l.Insecure, create
	if v := os.Getenv(S3TimeoutEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s=%q: want a duration such as 30s", S3TimeoutEnv, v)
		}
		o.Timeout, o.ReadIdle = d, d
	}
	return s3.Open(context.Background(), o)
}

// ReadRemoteConfig reads config.json from the object storage of l.
func ReadRemoteConfig(l *Location) (*Config, error) {
	st, err := openRemote(l, false)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	b, err := st.Get(context.Background(), "config.json", 0, -1, nil)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%s holds no smp store: run smp init --store %s: %w", l.URL, l.URL, ErrNotStore)
	}
	if err != nil {
		return nil, fmt.Errorf("read store config: %w", err)
	}
	return decodeConfig(b, l.URL)
}

// UnlockKeys returns the keyring of the encrypted store in dir (nil for an
// unencrypted one), unlocked as o says, without opening the store: a
// caller that opens it more than once (the refresh of a cache directory,
// then the command) asks for a passphrase once and passes the keyring on.
func UnlockKeys(dir string, o OpenOptions) (*keys.Keyring, error) {
	cfg, err := readConfig(dir)
	if err != nil {
		return nil, err
	}
	if !cfg.Encrypted || o.Keyring != nil {
		return o.Keyring, nil
	}
	st, err := openStorage(dir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return unlockStore(dir, cfg, st, o)
}
