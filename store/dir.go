package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"smp/capture"
	"smp/cas"
	"smp/cas/manifest"
	"smp/keys"
	"smp/repo"
)

// Dir is a store directory on this machine (package repo).
type Dir struct {
	dir      string // absolute; the cache directory of an S3 store
	location string // as given: the directory, or s3://...
	readOnly bool
	keyring  *keys.Keyring
	unlock   keys.UnlockFunc
	// transfers bound the requests of a store on S3.
	transfers repo.Transfers
	r         *repo.Repo // opened on first use
}

var _ Store = (*Dir)(nil)

func openDir(dir string, o Options) (*Dir, error) {
	d := &Dir{readOnly: o.ReadOnly, keyring: o.Keyring, unlock: o.Unlock, transfers: o.S3.Transfers}
	if IsS3(dir) {
		cache, kr, err := openS3Cache(dir, o.S3, d.openOptions())
		if err != nil {
			return nil, err
		}
		d.dir, d.location, d.keyring = cache, strings.TrimSpace(dir), kr
		return d, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	d.dir, d.location = abs, abs
	return d, nil
}

// s3 reports whether the store is on S3 (d.dir is its cache).
func (d *Dir) s3() bool { return d.location != d.dir }

// openOptions are the repo open options of d.
func (d *Dir) openOptions() repo.OpenOptions {
	return repo.OpenOptions{ReadOnly: d.readOnly, Keyring: d.keyring, Unlock: d.unlock, Transfers: d.transfers}
}

// OpenDir opens the store directory at location for the commands that
// administer one (verify, ingest, serve); an SMP location is refused.
// With o.ReadOnly the index is never written; o.Keyring, or else o.Unlock,
// gives the keys of an encrypted store. The SMP options of o are ignored.
func OpenDir(cmd, location string, o Options) (*Dir, error) {
	if err := CheckDir(cmd, location); err != nil {
		return nil, err
	}
	d, err := openDir(location, o)
	if err != nil {
		return nil, err
	}
	if _, err := d.repo(); err != nil {
		return nil, err
	}
	return d, nil
}

// repo opens the store on first use.
func (d *Dir) repo() (*repo.Repo, error) {
	if d.r != nil {
		return d.r, nil
	}
	r, err := repo.OpenWith(d.dir, d.openOptions())
	if err != nil {
		return nil, err
	}
	d.r = r
	return r, nil
}

// Location is the absolute path of the store directory, or the s3://
// location of a store on S3.
func (d *Dir) Location() string { return d.location }

// CacheDir is the directory of the store on this machine: the store
// directory, or the cache directory of a store on S3.
func (d *Dir) CacheDir() string { return d.dir }

// Close closes the store if it was opened.
func (d *Dir) Close() error {
	if d.r == nil {
		return nil
	}
	err := d.r.Close()
	d.r = nil
	return err
}

func (d *Dir) Records(context.Context) ([]Record, error) {
	r, err := d.repo()
	if err != nil {
		return nil, err
	}
	all, err := r.Records()
	if err != nil {
		return nil, err
	}
	released, err := r.ReleasedAt()
	if err != nil {
		return nil, err
	}
	out := make([]Record, len(all))
	for i, rec := range all {
		out[i] = Record{RecordInfo: rec}
		if at, ok := released[rec.ID]; ok {
			out[i].Released = &at
		}
	}
	return out, nil
}

func (d *Dir) FindRecord(_ context.Context, ref, computer string) (Record, error) {
	r, err := d.repo()
	if err != nil {
		return Record{}, err
	}
	rec, err := r.FindRecord(ref, computer)
	return Record{RecordInfo: rec}, err
}

// dirReader reads from the open store; closing it leaves the store open.
type dirReader struct{ *repo.Repo }

func (dirReader) Close() error { return nil }

var _ LinkReader = dirReader{}

// aheadReader is the reader of a store on S3: a restore.Prefetcher, so a
// restore's announced chunks are read ahead (repo ReadAhead).
type aheadReader struct{ dirReader }

func (a aheadReader) Prefetch(chunks []manifest.Chunk) { a.ReadAhead(chunks) }

func (d *Dir) Reader(context.Context, Record) (Reader, error) {
	r, err := d.repo()
	if err != nil {
		return nil, err
	}
	if r.ReadsAhead() {
		return aheadReader{dirReader{r}}, nil
	}
	return dirReader{r}, nil
}

func (d *Dir) Release(_ context.Context, rec Record) error {
	r, err := d.repo()
	if err != nil {
		return err
	}
	return r.Release(rec.ID, time.Now())
}

func (d *Dir) Remove(_ context.Context, rec Record) error {
	r, err := d.repo()
	if err != nil {
		return err
	}
	return r.Drop(rec.RecordInfo)
}

func (d *Dir) Stats(_ context.Context, opts StatsOptions) (*StatsReport, error) {
	r, err := d.repo()
	if err != nil {
		return nil, err
	}
	rep := &StatsReport{}
	if rep.Stats, err = r.Stats(); err != nil {
		return nil, err
	}
	if opts.Retention != nil {
		expired, err := r.Expired(*opts.Retention, time.Now())
		if err != nil {
			return nil, err
		}
		rep.Expired = new(len(expired))
	}
	if opts.Usage {
		if rep.PerRecord, rep.Computers, err = r.Usage(); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// Capture captures into the store directory. The index opens while the
// capture starts: a hard-link capture walks and links without it (see
// capture.Options.ParentLookup).
func (d *Dir) Capture(ctx context.Context, co CaptureOptions) (*CaptureResult, error) {
	if co.ReserveFirst {
		return nil, usagef("--reserve-first reserves room on an SMP server: use it with --store https://...")
	}
	if d.readOnly {
		return nil, fmt.Errorf("capture into %s: the store was opened read-only", d.dir)
	}
	if d.r != nil {
		return nil, fmt.Errorf("capture into %s: the store is already open", d.dir)
	}
	opts := co.Options
	if d.s3() {
		// Hard links need the store on the captured files' filesystem;
		// refused before the store is opened (or waited for).
		if opts.Hardlink == capture.HardlinkAlways || opts.Hardlink == capture.HardlinkAuto {
			return nil, usagef("--hardlink %s: a store on S3 holds no hard links: capture with --hardlink never", opts.Hardlink)
		}
		opts.Hardlink = capture.HardlinkNever
	}
	def, err := repo.OpenDeferredWith(d.dir, d.openOptions())
	if err != nil {
		return nil, err
	}
	defer def.Close()
	opts.SkipDirs, opts.LinkDir = []string{def.Dir}, def.LinkDir()
	if !co.Full {
		computer := opts.Computer
		opts.ParentLookup = func() (*manifest.Record, cas.ID) {
			r, err := def.Repo()
			if err != nil {
				return nil, cas.ID{} // Run's first store call reports it
			}
			if prev, err := r.FindRecord("", computer); err == nil {
				return prev.Record, prev.ID
			}
			return nil, cas.ID{}
		}
	}
	res, err := capture.Run(ctx, deferredStore{def}, opts)
	if _, openErr := def.Repo(); openErr != nil {
		err = openErr // what Run failed on, said as opening the store says it
	}
	if errors.Is(err, syscall.ENOSPC) {
		err = fmt.Errorf("%w: the store's filesystem is full; nothing of this capture was committed: free space (smp gc) or use another store, then run it again", err)
	}
	if err != nil {
		return nil, err
	}
	return &CaptureResult{Result: res, Hardlink: opts.Hardlink, Reserved: -1, Encrypted: def.Config.Encrypted}, nil
}

// deferredStore is a capture.Store over a local store whose index may
// still be opening (repo.OpenDeferred): what needs the index waits for it.
type deferredStore struct{ d *repo.Deferred }

// withRepo runs f on the store once its index is open.
func withRepo[T any](d *repo.Deferred, f func(*repo.Repo) (T, error)) (T, error) {
	r, err := d.Repo()
	if err != nil {
		var zero T
		return zero, err
	}
	return f(r)
}

func (s deferredStore) ChunkerParams() cas.ChunkerParams { return s.d.ChunkerParams() }

func (s deferredStore) Sum(b []byte) cas.ID { return s.d.Hasher.Sum(b) }

func (s deferredStore) Reserve(t cas.BlobType, id cas.ID) (bool, error) {
	return withRepo(s.d, func(r *repo.Repo) (bool, error) { return r.Reserve(t, id) })
}

func (s deferredStore) AddBlob(t cas.BlobType, id cas.ID, c cas.Compression, stored []byte, rawLen int) error {
	_, err := withRepo(s.d, func(r *repo.Repo) (struct{}, error) { return struct{}{}, r.AddBlob(t, id, c, stored, rawLen) })
	return err
}

func (s deferredStore) PutTree(t *manifest.Tree) (cas.ID, error) {
	return withRepo(s.d, func(r *repo.Repo) (cas.ID, error) { return r.PutTree(t) })
}

func (s deferredStore) LoadTree(id cas.ID) (*manifest.Tree, error) {
	return withRepo(s.d, func(r *repo.Repo) (*manifest.Tree, error) { return r.LoadTree(id) })
}

func (s deferredStore) Has(t cas.BlobType, id cas.ID) (bool, error) {
	return withRepo(s.d, func(r *repo.Repo) (bool, error) { return r.Has(t, id) })
}

// HoldsRecordChunks: a local store is held by this process alone (its
// lock), so no gc or forget drops a record's chunks during the capture;
// a shared one (objects in a bucket other machines write) is not.
func (s deferredStore) HoldsRecordChunks() (bool, error) {
	return withRepo(s.d, func(r *repo.Repo) (bool, error) { return !r.Shared(), nil })
}

func (s deferredStore) CommitRecord(rec *manifest.Record) (cas.ID, error) {
	return withRepo(s.d, func(r *repo.Repo) (cas.ID, error) { return r.CommitRecord(rec) })
}
