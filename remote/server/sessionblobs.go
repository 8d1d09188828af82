package server

import (
	"net/http"

	"smp/cas"
	"smp/remote/wire"
)

// tooManyBlobs is the refusal of a session that would name more than
// maxSessionBlobs blobs. Caller holds s.mu.
func (s *Server) tooManyBlobs(sess *session) error {
	return s.stopSession(sess, fail(http.StatusRequestEntityTooLarge,
		"capture stopped: it names more than %d distinct chunks and trees, the limit of one capture session (docs/PROTOCOL.md); nothing of it was committed: capture fewer paths at a time", s.maxBlobs))
}

// noteHave records what a have-query learnt, under one lock with every
// other session: a blob whose proof was right becomes held (the commit may
// reference it, gc keeps it), a blob the store lacks and the session had
// not named is reserved (with limits) and expected. An entry the session
// already named changes nothing, however often it comes again: it takes no
// memory, reserves nothing and does not refresh the idle timer.
//
// An estimate session keeps nothing: its answers reserve no room, make no
// blob held (gc does not keep them for it, a commit could not name them)
// and take no memory; each answered query refreshes its idle timer.
func (s *Server) noteHave(sess *session, entries []wire.HaveEntry, bm wire.HaveBitmap) error {
	var lim limits
	if !sess.estimate {
		var err error
		if lim, err = s.limits(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.estimate {
		s.touch(sess)
		return nil
	}
	var add map[blobKey]blobState // new states, at most one per entry
	var want, done uint64
	fresh := 0 // keys new to the session
	for i, e := range entries {
		k := blobKey{Type: e.Type, ID: e.ID}
		st, seen := add[k]
		if !seen {
			st = sess.blobs[k]
		}
		switch {
		case bm.Has(i) && st&blobHeld == 0:
			st |= blobHeld
			if e.Type == cas.BlobData {
				done += uint64(e.Len)
			}
		case !bm.Has(i) && st == 0:
			st = blobOffered
			want += uint64(e.Len)
		default:
			continue
		}
		if add == nil {
			add = make(map[blobKey]blobState)
		}
		if _, known := sess.blobs[k]; !known && !seen {
			fresh++
		}
		add[k] = st
	}
	if len(add) == 0 {
		return nil
	}
	if len(sess.blobs)+fresh > s.maxBlobs {
		return s.tooManyBlobs(sess)
	}
	if err := s.reserve(sess, want, lim); err != nil {
		return err
	}
	for k, st := range add {
		sess.blobs[k] = st
	}
	sess.done.Add(done)
	s.touch(sess)
	return nil
}

// landed records a blob the session uploaded (stored, or found to be a
// duplicate): the commit may reference it and gc keeps it until the
// session ends, whatever the grace period. Its reservation returns to the
// pool, since from now on it is in the free space itself. A blob the
// session already held changes nothing.
func (s *Server) landed(sess *session, t cas.BlobType, id cas.ID, rawLen uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := blobKey{Type: t, ID: id}
	st, known := sess.blobs[k]
	if st&blobHeld != 0 {
		return nil
	}
	if !known && len(sess.blobs) >= s.maxBlobs {
		return s.tooManyBlobs(sess)
	}
	sess.blobs[k] = st | blobHeld
	if t == cas.BlobData {
		sess.done.Add(rawLen)
	}
	n := min(rawLen, sess.reserved)
	sess.reserved -= n
	s.reserved -= n
	s.touch(sess)
	return nil
}

// sessionHolds reports whether the session proved or uploaded blob id as
// type t.
func (s *Server) sessionHolds(sess *session, t cas.BlobType, id cas.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sess.blobs[blobKey{Type: t, ID: id}]&blobHeld != 0
}

// limitTokenSessions makes room for sess under maxTokenSessions: past it,
// the token's least recently active session ends (its client, if any is
// still running, is told why). Admin sessions are not limited. Caller
// holds s.mu.
func (s *Server) limitTokenSessions(sess *session) {
	if !sess.limited {
		return
	}
	for {
		var oldest *session
		var oldestAt int64
		n := 0
		for _, o := range s.sessions {
			if o.tokenID != sess.tokenID {
				continue
			}
			n++
			o.mu.Lock()
			at := o.last.UnixNano()
			o.mu.Unlock()
			if oldest == nil || at < oldestAt {
				oldest, oldestAt = o, at
			}
		}
		if n < maxTokenSessions {
			return
		}
		_ = s.stopSession(oldest, fail(http.StatusConflict,
			"capture stopped: its token started another capture while %d were open, the limit per token; nothing of it was committed: run one capture at a time", maxTokenSessions))
	}
}
