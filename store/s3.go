package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"smp/index"
	"smp/keys"
	"smp/repo"
	"smp/storage/s3"
)

// A store on S3-compatible object storage (s3://ENDPOINT/BUCKET/PREFIX)
// keeps its objects (config, key slots, packs with their records and
// tombstones) in the bucket and opens as a store directory through a
// local cache directory (repo.LocationFile): the Badger index, the lock
// and nothing else. A missing cache is rebuilt from the bucket.

// S3Options are the choices of an s3:// location.
type S3Options struct {
	// Cache is the cache directory; "" is the user's cache directory's
	// smp/stores/STORE-ID.
	Cache string
	// Insecure speaks plain http to the endpoint: only to loopback.
	Insecure bool
	// Transfers bound the requests in flight and their memory (zero:
	// repo's defaults).
	Transfers Transfers
}

// Transfers bound a store on S3's uploads and restore read-ahead
// (repo.Transfers), so that commands set them without importing repo.
type Transfers = repo.Transfers

// IsS3 reports whether location names a store on S3.
func IsS3(location string) bool { return s3.IsURL(strings.TrimSpace(location)) }

// s3Location checks an s3:// location and its options.
func s3Location(location string, so S3Options) (repo.Location, error) {
	location = strings.TrimSpace(location)
	o, err := s3.ParseURL(location)
	if err != nil {
		return repo.Location{}, usagef("--store %v", err)
	}
	if so.Insecure {
		host := o.Endpoint
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !s3.IsLoopback(host) {
			return repo.Location{}, usagef("--s3-insecure with %s: plain http is only allowed to a loopback address; use https", o.Endpoint)
		}
	}
	canon := "s3://" + o.Endpoint + "/" + o.Bucket
	if o.Prefix != "" {
		canon += "/" + strings.TrimSuffix(o.Prefix, "/")
	}
	return repo.Location{URL: canon, Insecure: so.Insecure}, nil
}

// defaultCacheBase is where cache directories go without --cache.
func defaultCacheBase() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (%v): give --cache DIR", err)
	}
	return filepath.Join(dir, "smp", "stores"), nil
}

// CacheDir returns the cache directory of the store at an s3:// location
// (made if missing), for what is this machine's own: the access file of
// its smp serve.
func CacheDir(location string, so S3Options) (string, error) {
	l, err := s3Location(location, so)
	if err != nil {
		return "", err
	}
	return cacheOf(l, so)
}

// cacheOf is the cache directory of l, its location file written.
func cacheOf(l repo.Location, so S3Options) (string, error) {
	cache := so.Cache
	if cache == "" {
		cfg, err := repo.ReadRemoteConfig(&l)
		if err != nil {
			return "", err
		}
		base, err := defaultCacheBase()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(base, cfg.StoreID)
	}
	cache, err := filepath.Abs(cache)
	if err != nil {
		return "", err
	}
	if err := repo.WriteLocation(cache, l); err != nil {
		return "", err
	}
	return cache, nil
}

// openS3Cache returns the cache directory of the S3 store at location,
// ready for package repo: its location file written and its index built
// from the bucket when it has none (a new cache, a deleted one), or
// refreshed. It returns the keyring it unlocked (nil for an unencrypted
// store), for the caller's own open.
func openS3Cache(location string, so S3Options, o repo.OpenOptions) (string, *keys.Keyring, error) {
	l, err := s3Location(location, so)
	if err != nil {
		return "", nil, err
	}
	cache, err := cacheOf(l, so)
	if err != nil {
		return "", nil, err
	}
	if o.Keyring, err = repo.UnlockKeys(cache, o); err != nil {
		return "", nil, err
	}
	return cache, o.Keyring, refreshCache(cache, l, o)
}

// refreshCache builds the index of cache from the bucket, or brings it up
// to date with what other writers stored.
func refreshCache(cache string, l repo.Location, o repo.OpenOptions) error {
	o.ReadOnly = false
	if _, err := os.Stat(filepath.Join(cache, "index")); errors.Is(err, fs.ErrNotExist) {
		if _, err := repo.RebuildIndexWith(cache, o); err != nil {
			return fmt.Errorf("build the cache %s from %s: %w", cache, l.URL, err)
		}
		// Then refreshed as any cache: gc's marks are applied, so
		// the live blobs of condemned packs are located in their
		// copies before those packs are deleted.
	}
	// What other writers stored since this cache was last refreshed.
	r, err := repo.OpenWith(cache, o)
	if errors.Is(err, index.ErrWrongKey) {
		// The cache's index is under a master key the store retired
		// since (smp gc --rekey moves only the index of the machine it
		// runs on). The index is this machine's copy of what the bucket
		// lists: it is built anew from the bucket under the current key.
		if _, err := repo.RebuildIndexWith(cache, o); err != nil {
			return fmt.Errorf("rebuild the cache %s from %s (its index was under a retired key): %w", cache, l.URL, err)
		}
		r, err = repo.OpenWith(cache, o)
	}
	if err != nil {
		return err
	}
	_, err = r.Refresh()
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("refresh the cache %s from %s: %w", cache, l.URL, err)
	}
	return nil
}

// InitS3 creates a new store at the s3:// location (the bucket is made
// when missing; its prefix must be empty) and its cache directory, which
// it returns.
func InitS3(location string, so S3Options, o InitOptions) (*Config, string, error) {
	l, err := s3Location(location, so)
	if err != nil {
		return nil, "", err
	}
	cache, final := so.Cache, ""
	if cache == "" {
		// Named by the store ID once init has made one.
		base, err := defaultCacheBase()
		if err != nil {
			return nil, "", err
		}
		if err := os.MkdirAll(base, 0o700); err != nil {
			return nil, "", err
		}
		if cache, err = os.MkdirTemp(base, "init-"); err != nil {
			return nil, "", err
		}
		defer os.RemoveAll(cache) // gone once renamed
	}
	if cache, err = filepath.Abs(cache); err != nil {
		return nil, "", err
	}
	if err := repo.WriteLocation(cache, l); err != nil {
		return nil, "", err
	}
	cfg, err := repo.InitWith(cache, o)
	if err != nil {
		return nil, "", err
	}
	if so.Cache == "" {
		base := filepath.Dir(cache)
		final = filepath.Join(base, cfg.StoreID)
		if err := os.Rename(cache, final); err != nil {
			return nil, "", fmt.Errorf("cache directory: %w", err)
		}
		cache = final
	}
	return cfg, cache, nil
}

// S3RefreshEvery is how often a server on a store on S3 refreshes its
// cache with what other writers stored: the bound on how long a record
// committed through another smp takes to be listed here (plus one
// refresh: a LIST of the segments and one of the packs, one GET per new
// index segment, and a trailer read per new pack no segment lists).
const S3RefreshEvery = 2 * time.Second

// KeepFresh refreshes the open store's cache every interval until ctx ends
// (smp serve on a store on S3); on a store directory it returns at once.
// Failures are logged and retried at the next tick.
func (d *Dir) KeepFresh(ctx context.Context, every time.Duration, log *slog.Logger) {
	if !d.s3() {
		return
	}
	r, err := d.repo()
	if err != nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for tick := 1; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if tick%s3CompactTicks == 0 {
			d.compactSegments(ctx, r, log)
		}
		rep, err := r.RefreshWith(repo.RefreshOptions{Defer: repo.SegmentGrace})
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("refresh of the cache from the bucket failed", "store", d.location, "err", err)
			}
			continue
		}
		if rep.Packs > 0 || rep.Records > 0 || rep.Removed > 0 {
			log.Info("refreshed the cache from the bucket", "store", d.location, "packs", rep.Packs, "from_segments", rep.FromSegments,
				"segments", rep.Segments, "deferred", rep.Deferred, "records", rep.Records, "removed", rep.Removed, "incomplete", len(rep.Incomplete))
		}
		for _, p := range rep.DamagedPacks {
			log.Warn("refresh of the cache from the bucket skipped a damaged pack", "store", d.location, "err", p)
		}
		for _, s := range rep.DamagedSegments {
			log.Warn("damaged index segment: its packs were read from their trailers", "store", d.location, "err", s)
		}
	}
}

// s3CompactTicks is how many refreshes a server makes between two looks
// at the number of index segments (repo.CompactSegments).
const s3CompactTicks = 30

// compactSegments merges the bucket's small index segments when there are
// many; failures are logged and retried at the next look.
func (d *Dir) compactSegments(ctx context.Context, r *repo.Repo, log *slog.Logger) {
	rep, err := r.CompactSegments()
	switch {
	case err != nil && ctx.Err() == nil:
		log.Warn("compaction of the index segments failed", "store", d.location, "err", err)
	case err == nil && rep.Merged > 0:
		log.Info("compacted the index segments", "store", d.location, "merged", rep.Merged, "written", rep.Written, "packs", rep.Packs, "dropped", rep.Dropped)
	}
}

// S3Retries returns the retries of this process's requests to S3 object
// stores so far (for a command's report).
func S3Retries() s3.RetryStats { return s3.Retries() }
