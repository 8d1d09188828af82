package repo

import (
	"context"
	"fmt"
	"time"

	"smp/repo/report"
)

// MaintainOptions tune Maintain.
type MaintainOptions struct {
	GCOptions
	// Expire removes, before gc, every released record whose retention
	// ran out: released at least Retention ago by GCOptions.Now (0: every
	// released record). Records never released are kept.
	Expire    bool
	Retention time.Duration
	// Dropped, when set, is called after each expired record is removed
	// (never in a dry run), for the caller's caches of records.
	Dropped func(RecordInfo)
}

// MaintainReport is what Maintain did (or, with DryRun, would do): the
// reply of POST /v1/gc, defined in remote/report.
type MaintainReport = report.GCReply

// Maintain is the store's one maintenance routine, run by smp gc and by
// smp serve (--gc-every, POST /v1/gc): it removes released records past
// their retention, then the link sets no record names (a hard-link capture
// killed before it committed its record), then collects garbage. The
// caller holds the store exclusively as GC requires: no capture may be
// writing records or link sets meanwhile.
func (r *Repo) Maintain(ctx context.Context, opts MaintainOptions) (*MaintainReport, error) {
	if r.sh != nil && !opts.DryRun && opts.Grace < SharedMinGrace && !opts.ShortGraceOK {
		return nil, fmt.Errorf("gc of a store on S3: a grace of %v is too short: it must outlast the longest capture plus the %v refresh bound (at least %v)", opts.Grace, SharedRefreshBound, SharedMinGrace)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	rep := &MaintainReport{Expired: []string{}, OrphanLinkSets: []string{}}
	if opts.Expire {
		expired, err := r.Expired(opts.Retention, opts.Now())
		if err != nil {
			return nil, err
		}
		for _, rec := range expired {
			if !opts.DryRun {
				if err := r.Drop(rec); err != nil {
					return nil, fmt.Errorf("drop expired record %s: %w", rec.ID.Short(), err)
				}
				if opts.Dropped != nil {
					opts.Dropped(rec)
				}
			}
			rep.Expired = append(rep.Expired, rec.ID.String())
		}
	}
	orphans, err := r.OrphanLinkSets()
	if err != nil {
		return nil, err
	}
	for _, set := range orphans {
		if !opts.DryRun {
			if err := r.RemoveLinks(set); err != nil {
				return nil, err
			}
		}
		rep.OrphanLinkSets = append(rep.OrphanLinkSets, set)
	}
	if rep.GCReport, err = r.GC(ctx, opts.GCOptions); err != nil {
		return nil, err
	}
	return rep, nil
}
