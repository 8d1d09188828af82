package server

import (
	"fmt"
	"net/http"

	"github.com/dustin/go-humanize"
)

// capacityError is a refusal another SMP might not give.
func capacityError(status int, format string, args ...any) error {
	return &httpError{status: status, capacity: true, msg: fmt.Sprintf(format, args...)}
}

// admit checks the limits a capture must pass before it uploads anything,
// then registers the session. The checks and the registration happen under
// one lock, so two captures cannot both take the last place.
func (s *Server) admit(sess *session) error {
	var quotaBase uint64
	records := 0
	if s.opts.MaxRecords > 0 || s.opts.Quota > 0 {
		all, err := s.opts.Repo.Records()
		if err != nil {
			return err
		}
		records = len(all)
		for _, rec := range all {
			if rec.Computer == sess.computer {
				quotaBase += rec.StoredBytes
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireSessions()
	if max := s.opts.MaxRecords; max > 0 && records+len(s.sessions) >= max {
		s.metrics.CaptureRefused("max_records")
		return capacityError(http.StatusServiceUnavailable,
			"this SMP holds %d records and %d captures in progress, its limit (--max-records %d): capture to another SMP, or ask its admin to remove released records",
			records, len(s.sessions), max)
	}
	if s.opts.MinFree > 0 {
		free, err := s.opts.FreeBytes()
		if err != nil {
			return err
		}
		if free < s.opts.MinFree+s.reserved {
			s.metrics.CaptureRefused("min_free")
			return capacityError(http.StatusInsufficientStorage,
				"this SMP has %s free (%s reserved by captures in progress), below its floor of %s (--min-free): capture to another SMP",
				ibytes(free), ibytes(s.reserved), ibytes(s.opts.MinFree))
		}
	}
	if q := s.opts.Quota; q > 0 && quotaBase >= q {
		s.metrics.CaptureRefused("quota")
		return capacityError(http.StatusInsufficientStorage,
			"computer %q already stores %s, its quota is %s (--quota): ask the admin to remove its old records or raise the quota",
			sess.computer, ibytes(quotaBase), ibytes(q))
	}
	sess.quotaBase = quotaBase
	s.limitTokenSessions(sess)
	s.sessions[sess.id] = sess
	return nil
}

// reserve sets aside want plaintext bytes for blobs a session was told
// the store lacks (so it will upload them), or refuses when they would
// cross the free-space floor or the computer's quota. Compression only
// makes the upload smaller. The caller (noteHave) counts only blobs the
// session had not named before: a client that offers its whole capture
// first (smp capture --reserve-first) then re-offers each blob as it
// uploads it. Caller holds s.mu.
func (s *Server) reserve(sess *session, want uint64) error {
	if want == 0 || (s.opts.MinFree == 0 && s.opts.Quota == 0) {
		return nil
	}
	if s.opts.MinFree > 0 {
		free, err := s.opts.FreeBytes()
		if err != nil {
			return err
		}
		if free < s.opts.MinFree+s.reserved+want {
			s.metrics.CaptureRefused("min_free")
			// The capture cannot finish: end it now so its reservation
			// does not hold space until the session would expire.
			return s.stopSession(sess, capacityError(http.StatusInsufficientStorage,
				"capture stopped: %s more would take this SMP below its free-space floor of %s (%s free, %s reserved by captures in progress); nothing of this capture was committed: free space or capture to another SMP, then run it again",
				ibytes(want), ibytes(s.opts.MinFree), ibytes(free), ibytes(s.reserved)))
		}
	}
	if q := s.opts.Quota; q > 0 {
		// Every capture in progress of this computer counts, so that two
		// at once cannot both fit in what is left of its quota.
		used := sess.quotaBase
		for _, o := range s.sessions {
			if o.computer == sess.computer {
				used += uint64(o.stored.Load()) + o.reserved
			}
		}
		if used+want > q {
			s.metrics.CaptureRefused("quota")
			return s.stopSession(sess, capacityError(http.StatusInsufficientStorage,
				"capture stopped: computer %q would store %s, over its quota of %s (--quota); nothing of this capture was committed: ask the admin to remove its old records or raise the quota",
				sess.computer, ibytes(used+want), ibytes(q)))
		}
	}
	sess.reserved += want
	s.reserved += want
	return nil
}

func ibytes(n uint64) string { return humanize.IBytes(n) }
