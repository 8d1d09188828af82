package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"smp/capture"
	"smp/cas"
	"smp/cas/manifest"
	"smp/remote/client"
	"smp/remote/wire"
)

// Remote is one SMP server reached over HTTPS (package remote/client).
type Remote struct {
	url  string
	opts Options

	mu sync.Mutex
	cl *client.Client // dialled on first use
}

var _ Store = (*Remote)(nil)

func newRemote(url string, opts Options) *Remote { return &Remote{url: url, opts: opts} }

// client dials the SMP on first use; a failed dial is tried again on the
// next call.
func (s *Remote) client(ctx context.Context) (*client.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cl != nil {
		return s.cl, nil
	}
	cl, err := client.Dial(ctx, client.Options{URL: s.url, Token: s.opts.Token, Fingerprint: s.opts.Fingerprint, CAFile: s.opts.CAFile})
	if err != nil {
		return nil, err
	}
	s.cl = cl
	return cl, nil
}

// Location is the SMP's URL.
func (s *Remote) Location() string { return s.url }

func (s *Remote) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cl != nil {
		s.cl.Close()
		s.cl = nil
	}
	return nil
}

func (s *Remote) record(id cas.ID, e wire.RecordEntry) Record {
	rec := Record{Released: e.Released, SMP: s.url}
	rec.ID, rec.Record = id, e.Record
	return rec
}

func (s *Remote) Records(ctx context.Context) ([]Record, error) {
	cl, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	entries, err := cl.Records(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(entries))
	for _, e := range entries {
		id, err := cas.ParseID(e.ID)
		if err != nil {
			return nil, fmt.Errorf("SMP listed record %q: %w", e.ID, err)
		}
		out = append(out, s.record(id, e))
	}
	return out, nil
}

func (s *Remote) FindRecord(ctx context.Context, ref, computer string) (Record, error) {
	cl, err := s.client(ctx)
	if err != nil {
		return Record{}, err
	}
	id, e, err := cl.FindRecord(ctx, ref, computer)
	if err != nil {
		return Record{}, err
	}
	return s.record(id, e), nil
}

// remoteReader reads a record through the SMP; it fetches chunks many per
// request (a restore.Prefetcher, through the embedded client.Reader).
type remoteReader struct {
	*client.Reader
	cl *client.Client
}

func (r remoteReader) Sum(b []byte) cas.ID { return r.cl.Sum(b) }

func (r remoteReader) Close() error { r.Reader.Close(); return nil }

// Reader reads the record's trees and chunks. A hard-link record's files
// are links in the store directory, not chunks: its trees can be listed,
// but only a LinkReader restores it.
func (s *Remote) Reader(ctx context.Context, rec Record) (Reader, error) {
	cl, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	return remoteReader{cl.Reader(rec.ID), cl}, nil
}

func (s *Remote) Release(ctx context.Context, rec Record) error {
	cl, err := s.client(ctx)
	if err != nil {
		return err
	}
	return cl.Release(ctx, rec.ID)
}

func (s *Remote) Remove(ctx context.Context, rec Record) error {
	cl, err := s.client(ctx)
	if err != nil {
		return err
	}
	return cl.Remove(ctx, rec.ID)
}

func (s *Remote) Stats(ctx context.Context, opts StatsOptions) (*StatsReport, error) {
	cl, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	var retention time.Duration
	if opts.Retention != nil {
		retention = *opts.Retention
	}
	rep, err := cl.Stats(ctx, opts.Usage, retention)
	if err != nil {
		return nil, err
	}
	if rep.Stats == nil {
		return nil, errNoStats
	}
	return rep, nil
}

// GC asks the SMP to run gc beside its captures and restores.
func (s *Remote) GC(ctx context.Context, opts GCOptions) (*GCResult, error) {
	if opts.Rekey {
		return nil, fmt.Errorf("gc --rekey runs on the SMP's own store directory (smp gc --rekey --store DIR, with smp serve stopped)")
	}
	cl, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	req := wire.GCRequest{DryRun: opts.DryRun, RepackBelow: opts.RepackBelow, GraceSeconds: opts.Grace.Seconds(), NoGrace: opts.Grace == 0}
	if opts.Retention != nil {
		req.RetentionSeconds = opts.Retention.Seconds()
		if *opts.Retention == 0 {
			req.RetentionSeconds = 1e-9 // "0s": every released record
		}
	}
	res, err := cl.GC(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.GCReport == nil {
		return nil, fmt.Errorf("SMP sent no gc report")
	}
	out := &GCResult{GCReport: res.GCReport, Expired: res.Expired, Orphans: res.OrphanLinkSets}
	if out.Expired == nil {
		out.Expired = []string{}
	}
	if out.Orphans == nil {
		out.Orphans = []string{}
	}
	return out, nil
}

// Capture captures into the SMP.
func (s *Remote) Capture(ctx context.Context, co CaptureOptions) (*CaptureResult, error) {
	if err := checkRemoteCapture(co); err != nil {
		return nil, err
	}
	rc, err := s.startCapture(ctx, co)
	if err != nil {
		return nil, err
	}
	return rc.run(ctx)
}

// checkRemoteCapture refuses what an SMP cannot do: hard links only make
// sense into a store on the same filesystem.
func checkRemoteCapture(co CaptureOptions) error {
	if co.Hardlink == capture.HardlinkAlways {
		return usagef("--hardlink always needs a local store on the same filesystem, not an SMP server")
	}
	return nil
}

// remoteCapture is a capture session the SMP accepted.
type remoteCapture struct {
	s        *Remote
	cp       *client.Capture
	opts     capture.Options
	reserved int64
	// stopCount ends a count running alongside the capture
	// (countAlongside) and waits for it.
	stopCount func()
}

// startCapture opens a capture session and, with ReserveFirst, reserves
// room for all of its new data: everything an SMP may refuse for
// capacity is refused here, before any upload, so a group can try the
// next SMP.
func (s *Remote) startCapture(ctx context.Context, co CaptureOptions) (*remoteCapture, error) {
	cl, opts, parent, err := s.captureBase(ctx, co)
	if err != nil {
		return nil, err
	}
	// An SMP that takes the totals during the session gets them from a
	// count that runs alongside the capture: on a client with one CPU the
	// count then fills the capture's waits (disk reads, the SMP's answers
	// and its commit) instead of delaying the capture's start.
	later := cl.Info().HasFeature(wire.FeatureTotalsLater)
	var expected *wire.CaptureTotals
	if !later {
		if expected, err = walkTotals(ctx, cl, opts, parent); err != nil {
			return nil, err
		}
	}
	cp, err := cl.OpenCapture(ctx, client.CaptureStart{Computer: opts.Computer, Parent: parent, Expected: expected})
	if err != nil {
		return nil, err
	}
	rc := &remoteCapture{s: s, cp: cp, opts: opts, reserved: -1, stopCount: func() {}}
	if later {
		rc.stopCount = countAlongside(ctx, cl, cp, opts, parent)
	}
	if co.ReserveFirst {
		if rc.reserved, err = planCapture(ctx, cp, opts); err != nil {
			rc.stopCount()
			cp.Close()
			return nil, err
		}
	}
	return rc, nil
}

// countAlongside counts the capture's walk totals (walkTotals) while the
// capture runs and sends them to the session; stop ends the count if it
// is still walking and returns once it has finished. The totals are for
// display: a count or a send that fails leaves the session without them.
func countAlongside(ctx context.Context, cl *client.Client, cp *client.Capture, opts capture.Options, parent cas.ID) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if t, err := walkTotals(ctx, cl, opts, parent); err == nil && t != nil && ctx.Err() == nil {
			_ = cp.SendTotals(ctx, *t)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// captureBase is what a capture and an estimate on the SMP start from:
// the client, the options (never hard links: the data travels), and,
// unless co.Full, the computer's newest record as the parent, whose
// unchanged files are not read again.
func (s *Remote) captureBase(ctx context.Context, co CaptureOptions) (*client.Client, capture.Options, cas.ID, error) {
	cl, err := s.client(ctx)
	if err != nil {
		return nil, capture.Options{}, cas.ID{}, err
	}
	opts := co.Options
	opts.Hardlink = capture.HardlinkNever
	var parent cas.ID
	if !co.Full {
		if id, e, err := cl.FindRecord(ctx, "", opts.Computer); err == nil {
			opts.Parent, opts.ParentID, parent = e.Record, id, id
		}
	}
	return cl, opts, parent, nil
}

// walkTotals counts what the capture will read (capture.Count), for an
// SMP that shows a capture's progress and ETA (wire.FeatureCaptureTotals);
// nil for one that does not. The count is a walk of metadata: listings and
// an lstat per name, and the parent record's trees, which the capture
// reads too, fetched ahead the same way (a request per directory with
// subdirectories, not a round trip per directory); nothing is opened or chunked, so it costs a small
// part of a capture that reads anything (docs/BENCHMARKS.md). A count that
// fails sends no totals: the capture itself reports the problem.
func walkTotals(ctx context.Context, cl *client.Client, opts capture.Options, parent cas.ID) (*wire.CaptureTotals, error) {
	if !cl.Info().HasFeature(wire.FeatureCaptureTotals) {
		return nil, nil
	}
	src := parentTrees{}
	if !parent.IsZero() {
		r := cl.Reader(parent)
		defer r.Close()
		src.trees = r.TreeLoader() // the capture's own fetch-ahead of subtrees
	}
	tot, err := capture.Count(ctx, src, opts)
	if err != nil {
		return nil, ctx.Err()
	}
	return &wire.CaptureTotals{Files: tot.Files, Bytes: tot.Bytes}, nil
}

// parentTrees is capture.Count's view of an SMP: the parent record's
// trees, and its chunks held, as client.Capture answers them.
type parentTrees struct{ trees client.TreeLoader }

// LoadsTreesAhead: the reader's TreeLoader fetches subtrees ahead
// (capture.TreesAhead).
func (p parentTrees) LoadsTreesAhead() {}

func (p parentTrees) LoadTree(id cas.ID) (*manifest.Tree, error) {
	if p.trees == nil {
		return nil, fmt.Errorf("tree %s: no parent record: %w", id.Short(), cas.ErrNotFound)
	}
	return p.trees.LoadTree(id)
}

func (p parentTrees) Has(cas.BlobType, cas.ID) (bool, error) { return p.trees != nil, nil }

func (rc *remoteCapture) run(ctx context.Context) (*CaptureResult, error) {
	defer rc.cp.Close()
	res, err := capture.Run(ctx, rc.cp, rc.opts)
	rc.stopCount()
	if err != nil {
		return nil, err
	}
	return &CaptureResult{Result: res, SMP: rc.s.url, Hardlink: rc.opts.Hardlink,
		Sent: rc.cp.SentBytes.Load(), Held: rc.cp.HeldBlobs.Load(), Reserved: rc.reserved}, nil
}

// planCapture runs the capture once against cp's plan, so the SMP reserves
// room for every blob it lacks before anything is uploaded, and returns
// the plaintext bytes reserved. Problems are reported by the real capture
// that follows, not twice.
func planCapture(ctx context.Context, cp *client.Capture, opts capture.Options) (int64, error) {
	plan := cp.Plan()
	opts.Progress, opts.Report = &capture.Progress{}, nil
	if _, err := capture.Run(ctx, plan, opts); err != nil {
		return 0, fmt.Errorf("reserve room on the SMP first (--reserve-first): %w", err)
	}
	return plan.NewBytes.Load(), nil
}

// Estimate runs the capture on an estimate session of the SMP, which
// answers which chunks it holds and reserves, pins, receives and commits
// nothing (client.StartEstimate).
func (s *Remote) Estimate(ctx context.Context, co CaptureOptions) (*CaptureResult, error) {
	if co.ReserveFirst {
		return nil, usagef("--reserve-first reserves room for a capture: an estimate reserves nothing")
	}
	cl, opts, parent, err := s.captureBase(ctx, co)
	if err != nil {
		return nil, err
	}
	cp, err := cl.StartEstimate(ctx, opts.Computer, parent)
	if err != nil {
		return nil, err
	}
	defer cp.Close()
	res, err := capture.Run(ctx, cp.Estimate(), opts)
	if err != nil {
		return nil, err
	}
	return &CaptureResult{Result: res, SMP: s.url, Hardlink: opts.Hardlink, Reserved: -1}, nil
}
