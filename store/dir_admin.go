package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"smp/capture"
	"smp/cas"
	"smp/keys"
	"smp/remote/access"
	"smp/remote/server"
	"smp/repo"
)

// Init creates a new, unencrypted store directory.
func Init(dir string, params cas.ChunkerParams) (*Config, error) {
	return InitWith(dir, repo.InitOptions{Params: params})
}

// InitOptions configure InitWith (repo.InitOptions).
type InitOptions = repo.InitOptions

// InitWith creates a new store directory; with o.Keys, an encrypted one.
func InitWith(dir string, o InitOptions) (*Config, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return repo.InitWith(abs, o)
}

// keysDir is the directory the key commands work in: the store directory
// at location, or the cache directory of the store at an s3:// location
// (its keys.json is in the bucket).
func keysDir(location string, so S3Options) (string, error) {
	if IsS3(location) {
		return CacheDir(location, so)
	}
	return filepath.Abs(location)
}

// ReadKeys returns the key slot file of the encrypted store at location.
func ReadKeys(location string, so S3Options) (*Config, *keys.File, error) {
	dir, err := keysDir(location, so)
	if err != nil {
		return nil, nil, err
	}
	return repo.ReadKeys(dir)
}

// EditKeys unlocks the keys of the encrypted store at location and saves
// what edit changes (repo.EditKeys).
func EditKeys(location string, so S3Options, unlock keys.UnlockFunc, edit func(*keys.Unlocked) error) error {
	dir, err := keysDir(location, so)
	if err != nil {
		return err
	}
	return repo.EditKeys(dir, unlock, edit)
}

// Keyring is the unlocked keys of the store, nil when it is unencrypted.
func (d *Dir) Keyring() (*keys.Keyring, string, error) {
	r, err := d.repo()
	if err != nil {
		return nil, "", err
	}
	return r.Keyring, r.Config.StoreID, nil
}

// EncryptOptions configure Encrypt (repo.EncryptOptions).
type EncryptOptions = repo.EncryptOptions

// EncryptReport is what Encrypt did.
type EncryptReport = repo.EncryptReport

// Encrypt converts the unencrypted store directory dir in place, or
// finishes a conversion an interrupted run began (repo.Encrypt).
func Encrypt(ctx context.Context, dir string, o EncryptOptions) (*EncryptReport, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return repo.Encrypt(ctx, abs, o)
}

// RetireKey removes an old master key from the encrypted store at
// location, refusing while anything in it still uses that key
// (repo.RetireKey; on S3, anything in the bucket).
func RetireKey(location string, so S3Options, unlock keys.UnlockFunc, id keys.KeyID) error {
	dir, err := keysDir(location, so)
	if err != nil {
		return err
	}
	return repo.RetireKey(dir, unlock, id)
}

// OpenAccess returns the access file of the store directory at location,
// or of the cache directory of the store at an s3:// location, without
// opening the store (a running smp serve holds it). An encrypted store's
// access file is sealed: unlock finds its key, and a missing or wrong key
// fails with the one-line error of every command (repo.OpenAccess).
func OpenAccess(location string, so S3Options, unlock keys.UnlockFunc) (*access.Store, error) {
	dir := location
	if IsS3(location) {
		cache, err := CacheDir(location, so)
		if err != nil {
			return nil, err
		}
		dir = cache
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if _, err := access.Open(abs); err != nil && !errors.Is(err, access.ErrSealedNoKey) {
		return nil, err // not a store: the access package's message
	}
	return repo.OpenAccess(abs, repo.OpenOptions{Unlock: unlock})
}

// RebuildIndex recreates the index of the store directory from its packs;
// unlock finds the keys of an encrypted store.
func RebuildIndex(dir string, unlock keys.UnlockFunc) (*RebuildReport, error) {
	return RebuildIndexAt(dir, S3Options{}, unlock)
}

// RebuildIndexAt is RebuildIndex of a store directory or, at an s3://
// location, of the cache directory of the store on S3, from the bucket.
func RebuildIndexAt(dir string, so S3Options, unlock keys.UnlockFunc) (*RebuildReport, error) {
	if IsS3(dir) {
		cache, err := CacheDir(dir, so)
		if err != nil {
			return nil, err
		}
		dir = cache
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return repo.RebuildIndexWith(abs, repo.OpenOptions{Unlock: unlock})
}

// RebuildIndexWith is RebuildIndex with the open options of an encrypted
// store (its Keyring or Unlock): the index is rebuilt encrypted under the
// keyring's current key.
func RebuildIndexWith(dir string, o repo.OpenOptions) (*RebuildReport, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return repo.RebuildIndexWith(abs, o)
}

// GC runs the store's maintenance (repo.Maintain, the routine smp serve
// runs too): retention, the link sets of no record (left by a capture
// killed before it committed), then gc, in that order, so the data of what
// the first two remove is freed.
func (d *Dir) GC(ctx context.Context, opts GCOptions) (*GCResult, error) {
	r, err := d.repo()
	if err != nil {
		return nil, err
	}
	mo := repo.MaintainOptions{GCOptions: repo.GCOptions{DryRun: opts.DryRun, RepackBelow: opts.RepackBelow, Grace: opts.Grace, Rekey: opts.Rekey, ShortGraceOK: opts.ShortGraceOK}}
	if opts.Retention != nil {
		mo.Expire, mo.Retention = true, *opts.Retention
	}
	rep, err := r.Maintain(ctx, mo)
	if err != nil {
		return nil, err
	}
	return &GCResult{GCReport: rep.GCReport, Expired: rep.Expired, Orphans: rep.OrphanLinkSets}, nil
}

// VerifyOptions select what Verify checks.
type VerifyOptions struct {
	Ref, Computer string // one record, or one computer's; neither: all
	ReadData      bool   // read and re-hash every chunk
	// RepairFrom, when set, rewrites damaged data chunks found in the
	// files under these directories (implies ReadData).
	RepairFrom []string
	// Warn is told of each file under RepairFrom that cannot be read.
	Warn func(path string, err error)
}

// VerifyResult is what Verify found, and repaired.
type VerifyResult struct {
	Report    *VerifyReport
	Repair    *RepairReport // nil without RepairFrom
	Remaining []*Damage     // damaged blobs a repair did not fix
}

// Verify checks that the chosen records are complete and, with ReadData,
// that their chunks read back intact; with RepairFrom it then repairs.
func (d *Dir) Verify(opts VerifyOptions) (*VerifyResult, error) {
	r, err := d.repo()
	if err != nil {
		return nil, err
	}
	var records []repo.RecordInfo
	if opts.Ref != "" {
		rec, err := r.FindRecord(opts.Ref, "")
		if err != nil {
			return nil, err
		}
		records = []repo.RecordInfo{rec}
	} else {
		all, err := r.Records()
		if err != nil {
			return nil, err
		}
		for _, rec := range all {
			if opts.Computer == "" || rec.Computer == opts.Computer {
				records = append(records, rec)
			}
		}
		if opts.Computer != "" && len(records) == 0 {
			return nil, fmt.Errorf("computer %q has no record: %w (list them with smp records)", opts.Computer, repo.ErrNoRecord)
		}
	}
	repairing := len(opts.RepairFrom) > 0
	rep, err := r.Verify(records, opts.ReadData || repairing, nil)
	if err != nil {
		return nil, err
	}
	res := &VerifyResult{Report: rep, Remaining: rep.Damaged}
	if !repairing {
		return res, nil
	}
	res.Repair, err = r.Repair(rep.DamagedData(), repo.OfferFiles(opts.RepairFrom, r.ChunkerParams(), []string{r.Dir}, opts.Warn))
	if err != nil {
		return nil, err
	}
	repaired := map[string]bool{}
	for _, id := range res.Repair.Repaired {
		repaired[id] = true
	}
	res.Remaining = []*Damage{}
	for _, dm := range rep.Damaged {
		if !repaired[dm.Blob] {
			res.Remaining = append(res.Remaining, dm)
		}
	}
	return res, nil
}

// IngestResult is a hard-link record turned into a chunked one.
type IngestResult struct {
	Old Record
	*capture.IngestResult
}

// Ingest turns the hard-link record ref into a normal deduplicated
// record, then removes the old record and its links.
func (d *Dir) Ingest(ctx context.Context, ref string) (*IngestResult, error) {
	r, err := d.repo()
	if err != nil {
		return nil, err
	}
	old, err := r.FindRecord(ref, "")
	if err != nil {
		return nil, err
	}
	if old.LinkSet == "" {
		return nil, fmt.Errorf("record %s holds no hard-linked files: nothing to ingest", old.ID.Short())
	}
	res, err := capture.Ingest(ctx, r, old.Record, r.LinkDir())
	if err != nil {
		return nil, fmt.Errorf("ingest record %s: %w (the record and its links are unchanged)", old.ID.Short(), err)
	}
	// The new record is committed: only now may the old one and its links go.
	if err := r.RemoveRecord(old.ID); err != nil {
		return nil, fmt.Errorf("ingested as %s, but removing the old record: %w", res.ID.Short(), err)
	}
	if err := r.RemoveLinks(old.LinkSet); err != nil {
		return nil, fmt.Errorf("ingested as %s, but removing the old links: %w", res.ID.Short(), err)
	}
	return &IngestResult{Old: Record{RecordInfo: old}, IngestResult: res}, nil
}

// NewServer returns the SMP server of this store: o with the store and
// its access file filled in.
func (d *Dir) NewServer(o server.Options) (*server.Server, error) {
	r, err := d.repo()
	if err != nil {
		return nil, err
	}
	acc, err := r.Access() // sealed with the keys the store was opened with
	if err != nil {
		return nil, err
	}
	o.Repo, o.Access = r, acc
	srv := server.New(o)
	if d.s3() {
		srv.Metrics().ExportS3Retries()
	}
	return srv, nil
}
