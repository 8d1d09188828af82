package server

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"

	"smp/cas"
	"smp/cas/manifest"
	"smp/repo"
)

// checkRefs walks a record being committed from its root tree and refuses
// it unless every tree and chunk it references is one the session may name
// and the store holds with that type. A session may name a blob it
// uploaded or proved it holds (a have-query hit), or one reachable from a
// record its token may restore (an unchanged file reuses its parent
// record's chunks unread). Whether a blob the session may not name is in
// the store is never looked at, so the answer (409, the same line either
// way) tells nothing about other computers' data; a tree is read only once
// the session may name it. It returns the packs holding the record's
// blobs, for the commit's check against gc's marks.
func (s *Server) checkRefs(ctx context.Context, c *call, sess *session, root cas.ID) ([]cas.ID, error) {
	ck := &refChecker{s: s, c: c, sess: sess}
	packs := map[cas.ID]struct{}{}
	held := func(t cas.BlobType, id cas.ID) (bool, error) {
		loc, err := s.lookupBlob(t, id)
		if errors.Is(err, cas.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		packs[loc.Pack] = struct{}{}
		return true, nil
	}
	refuse := func(t cas.BlobType, id cas.ID) error {
		return fail(http.StatusConflict, "record references %s %s, which this session neither uploaded nor proved it holds and no record it may restore contains (or the SMP does not hold it): upload it before committing", t, id.Short())
	}
	w := manifest.Walker{Load: s.opts.Repo, Seen: map[cas.BlobKey]struct{}{},
		Enter: func(id cas.ID, _ string) error {
			ok, err := ck.mayName(cas.BlobTree, id)
			if err == nil && ok {
				ok, err = held(cas.BlobTree, id)
			}
			if err != nil {
				return err
			} else if !ok {
				return refuse(cas.BlobTree, id)
			}
			return nil
		},
		Tree: func(id cas.ID, _ string, _ *manifest.Tree, err error) error {
			if errors.Is(err, cas.ErrNotFound) {
				return refuse(cas.BlobTree, id)
			}
			if err != nil {
				return fail(http.StatusConflict, "record's trees cannot be read: %v", err)
			}
			return nil
		},
		Entry: func(_ string, e *manifest.Entry) error {
			if e.Link != nil {
				// A linked file has no chunks: its data is not in the store.
				return fail(http.StatusBadRequest, "file %q is held by a hard link: a remote SMP takes chunked files only", e.Name)
			}
			return nil
		},
		Chunk: func(id cas.ID, _ *manifest.Entry) error {
			ok, err := ck.mayName(cas.BlobData, id)
			if err == nil && ok {
				ok, err = held(cas.BlobData, id)
			}
			if err != nil {
				return err
			}
			if !ok {
				return refuse(cas.BlobData, id)
			}
			return nil
		},
	}
	if err := w.Walk(ctx, root); err != nil {
		return nil, err
	}
	out := make([]cas.ID, 0, len(packs))
	for id := range packs {
		out = append(out, id)
	}
	return out, nil
}

// refChecker answers whether a session may name a blob in its record. The
// records its token may restore are walked only when the session's own
// blobs do not answer, newest of the session's computer first (a parent
// record is its computer's newest), through the server's reach cache.
type refChecker struct {
	s       *Server
	c       *call
	sess    *session
	listed  bool
	pending []repo.RecordInfo          // restorable records not walked yet, next first
	reach   []map[cas.BlobKey]struct{} // the walked records' blobs
}

func (ck *refChecker) mayName(t cas.BlobType, id cas.ID) (bool, error) {
	if ck.s.sessionHolds(ck.sess, t, id) {
		return true, nil
	}
	for _, m := range ck.reach {
		if _, ok := m[cas.BlobKey{Type: t, ID: id}]; ok {
			return true, nil
		}
	}
	if !ck.listed {
		ck.listed = true
		all, err := ck.s.opts.Repo.Records()
		if err != nil {
			return false, err
		}
		for _, rec := range slices.Backward(all) { // newest first
			if ck.c.snap.MayRestore(ck.c.tok, rec.Computer) {
				ck.pending = append(ck.pending, rec)
			}
		}
		slices.SortStableFunc(ck.pending, func(a, b repo.RecordInfo) int {
			return cmp.Compare(btoi(a.Computer != ck.sess.computer), btoi(b.Computer != ck.sess.computer))
		})
	}
	for len(ck.pending) > 0 {
		rec := ck.pending[0]
		ck.pending = ck.pending[1:]
		m, err := ck.s.reach.get(rec)
		if err != nil {
			// A damaged record lends nothing; smp verify names it.
			ck.s.opts.Log.Warn("commit check: walk record", "record", rec.ID.Short(), "error", err)
			continue
		}
		ck.reach = append(ck.reach, m)
		if _, ok := m[cas.BlobKey{Type: t, ID: id}]; ok {
			return true, nil
		}
	}
	return false, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
