package server

import (
	"context"
	"net/http"
	"time"

	"smp/cas"
	"smp/remote/access"
	"smp/remote/wire"
	"smp/repo"
)

// GC runs the store's maintenance (repo.Maintain: retention, orphan link
// sets, gc) while the server keeps serving: it waits for the requests that
// touch blobs in flight, holds new ones until it is done, and keeps every
// chunk an open capture session was told the store holds, so that
// capture's commit cannot reference a deleted chunk.
func (s *Server) GC(ctx context.Context, opts repo.MaintainOptions) (*repo.MaintainReport, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	rp := s.opts.Repo
	// Uploads hold gcMu per frame, so one may be between two frames with
	// blobs in an open pack: commit them, pinned by their sessions, so gc
	// finds nothing pending. A pack that fails is reported to the uploads
	// whose blobs it held, and leaves nothing pending either.
	_ = rp.FlushSince(rp.Mark())
	if opts.Now == nil {
		opts.Now = s.opts.Now
	}
	opts.Dropped = func(rec repo.RecordInfo) { s.reach.forget(rec.ID) }
	opts.Pinned = func(keep func(cas.BlobKey)) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, sess := range s.sessions {
			for k, st := range sess.blobs {
				if st&blobHeld != 0 {
					keep(k)
				}
			}
		}
	}
	start := time.Now()
	rep, err := rp.Maintain(ctx, opts)
	var freed int64
	if rep != nil {
		freed = rep.BytesFreed
	}
	s.metrics.GCRun(freed, time.Since(start), err)
	if !opts.DryRun {
		s.noteGC(s.opts.Now(), rep, err)
	}
	return rep, err
}

func (s *Server) gcHandler(w http.ResponseWriter, r *http.Request, c *call) error {
	if c.tok.Role != access.RoleAdmin {
		return fail(http.StatusForbidden, "gc needs an admin token")
	}
	var req wire.GCRequest
	if err := readJSON(w, r, wire.MaxJSONBytes, &req); err != nil {
		return err
	}
	if req.RepackBelow < 0 || req.RepackBelow > 1 || req.GraceSeconds < 0 || req.RetentionSeconds < 0 {
		return fail(http.StatusBadRequest, "gc: repack_below must be 0 to 1, grace and retention not negative")
	}
	grace := time.Duration(req.GraceSeconds * float64(time.Second))
	if req.GraceSeconds == 0 && !req.NoGrace {
		grace = s.opts.GCGrace
	}
	retention := time.Duration(req.RetentionSeconds * float64(time.Second))
	res, err := s.GC(r.Context(), repo.MaintainOptions{
		GCOptions: repo.GCOptions{DryRun: req.DryRun, RepackBelow: req.RepackBelow, Grace: grace},
		Expire:    req.RetentionSeconds > 0, Retention: retention})
	if err != nil {
		return err
	}
	return writeJSON(w, res)
}

// Maintain runs gc every interval (with retention, if set) until ctx
// ends, logging each run.
func (s *Server) Maintain(ctx context.Context, every, retention time.Duration, repackBelow float64) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		res, err := s.GC(ctx, repo.MaintainOptions{GCOptions: repo.GCOptions{RepackBelow: repackBelow, Grace: s.opts.GCGrace},
			Expire: retention > 0, Retention: retention})
		if err != nil {
			s.opts.Log.Error("scheduled gc", "error", err)
			continue
		}
		s.opts.Log.Info("scheduled gc", "expired_records", len(res.Expired), "orphan_link_sets", len(res.OrphanLinkSets), "packs_deleted", res.PacksDeleted,
			"packs_rewritten", res.PacksRewritten, "bytes_freed", res.BytesFreed, "duration_ms", time.Since(start).Milliseconds())
	}
}
