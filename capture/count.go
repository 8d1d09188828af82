package capture

import (
	"context"
	"errors"
	"sync/atomic"

	"smp/cas"
	"smp/cas/manifest"
)

// Totals are what a capture will read: the regular files of its selection
// that are new or changed since the parent record (an unchanged file is
// not read, and a later name of a hard-linked inode reuses the first), and
// their bytes. A remote capture sends them at session start so the SMP's
// console can show its progress and ETA.
type Totals struct {
	Files uint64
	Bytes uint64
}

// countTotals are the counters of a counting pass.
type countTotals struct{ files, bytes atomic.Uint64 }

// TreeSource is what Count needs of a store: the parent record's trees,
// and whether the store still holds a chunk (an unchanged file whose
// chunks are gone is read again).
type TreeSource interface {
	LoadTree(id cas.ID) (*manifest.Tree, error)
	Has(t cas.BlobType, id cas.ID) (bool, error)
}

// Count walks opts' selection as Run would, with the same rules and the
// parent record (opts.Parent, or opts.ParentLookup's), and returns the
// Totals of the capture that Run would make now: a walk of metadata
// (directory listings and one lstat per name) that opens no file and
// stores nothing. Paths that Run would report
// as problems are left out silently; files that change between Count and
// Run make the totals an estimate, never a bound.
func Count(ctx context.Context, src TreeSource, opts Options) (Totals, error) {
	opts.setDefaults()
	opts.Progress, opts.Report = &Progress{}, func(Problem) {}
	if opts.ParentLookup != nil && opts.Parent == nil {
		opts.Parent, opts.ParentID = opts.ParentLookup()
	}
	opts.Hardlink, opts.LinkDir, opts.ParentLookup = HardlinkNever, "", nil
	if err := manifest.CheckName("computer", opts.Computer); err != nil {
		return Totals{}, err
	}
	sel, _, err := selectPaths(opts.Root, opts.Paths, opts.Users)
	if err != nil {
		return Totals{}, err
	}
	return runCount(ctx, countStore{src}, opts, sel)
}

// countStore is the Store of a counting pass: it reads the parent's trees
// and never writes.
type countStore struct{ TreeSource }

var errCountOnly = errors.New("a counting pass stores nothing")

func (countStore) ChunkerParams() cas.ChunkerParams           { return cas.ChunkerParams{} }
func (countStore) Reserve(cas.BlobType, cas.ID) (bool, error) { return false, errCountOnly }
func (countStore) AddBlob(cas.BlobType, cas.ID, cas.Compression, []byte, int) error {
	return errCountOnly
}
func (countStore) PutTree(*manifest.Tree) (cas.ID, error)        { return cas.ID{}, errCountOnly }
func (countStore) CommitRecord(*manifest.Record) (cas.ID, error) { return cas.ID{}, errCountOnly }
func (s countStore) Sum(b []byte) cas.ID                         { return cas.ID{} }
