package server

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
)

// limits are the capacity limits in force for one request: the server's
// own (its flags) and the store's shared ones (smp admin limits, read with
// the access file), the stricter of each; zero is none. stored is the
// store's stored bytes when maxStoreBytes is set.
type limits struct {
	maxRecords     int
	minFree, quota uint64
	maxStoreBytes  uint64
	stored         uint64
}

// stricter is the smaller non-zero limit of a and b (0: neither is set).
func stricter[T int | uint64](a, b T) T {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// limits reads the limits in force. It may wait for a read of the access
// file of a store on S3 and, with a store-size limit, for a sum of the
// index's packs, so the caller must not hold s.mu.
func (s *Server) limits() (limits, error) {
	snap, err := s.opts.Access.Snapshot()
	if err != nil {
		return limits{}, fmt.Errorf("read access file: %w", err)
	}
	shared := snap.Limits()
	l := limits{
		maxRecords:    stricter(s.opts.MaxRecords, shared.MaxRecords),
		minFree:       s.opts.MinFree,
		quota:         stricter(s.opts.Quota, shared.Quota),
		maxStoreBytes: stricter(s.opts.MaxStoreBytes, shared.MaxStoreBytes),
	}
	if l.maxStoreBytes > 0 {
		if l.stored, err = s.opts.StoredBytes(); err != nil {
			return limits{}, fmt.Errorf("the store's size: %w", err)
		}
	}
	return l, nil
}

// cachedFor returns sum, its answer kept for storedFor: the default
// StoredBytes sums every pack of the index, too much for every
// have-query. The answer may lag by what was stored in the last
// storedFor, a bound documented with --max-store-bytes.
func cachedFor(sum func() (uint64, error)) func() (uint64, error) {
	var (
		mu    sync.Mutex
		at    time.Time
		bytes uint64
	)
	return func() (uint64, error) {
		mu.Lock()
		defer mu.Unlock()
		if !at.IsZero() && time.Since(at) < storedFor {
			return bytes, nil
		}
		n, err := sum()
		if err != nil {
			return 0, err
		}
		at, bytes = time.Now(), n
		return n, nil
	}
}

const storedFor = time.Second

// capacityError is a refusal another SMP might not give.
func capacityError(status int, format string, args ...any) error {
	return &httpError{status: status, capacity: true, msg: fmt.Sprintf(format, args...)}
}

// admit checks the limits a capture must pass before it uploads anything,
// then registers the session. The checks and the registration happen under
// one lock, so two captures cannot both take the last place.
func (s *Server) admit(sess *session) error {
	lim, err := s.limits()
	if err != nil {
		return err
	}
	var quotaBase uint64
	records := 0
	if lim.maxRecords > 0 || lim.quota > 0 {
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
	if max := lim.maxRecords; max > 0 && records+len(s.sessions) >= max {
		s.metrics.CaptureRefused("max_records")
		return capacityError(http.StatusServiceUnavailable,
			"this SMP holds %d records and %d captures in progress, its limit (--max-records %d, or smp admin limits): capture to another SMP, or ask its admin to remove released records",
			records, len(s.sessions), max)
	}
	if max := lim.maxStoreBytes; max > 0 && lim.stored+s.reserved >= max {
		s.metrics.CaptureRefused("max_store_bytes")
		return capacityError(http.StatusInsufficientStorage,
			"this SMP's store holds %s (%s reserved by captures in progress), its limit is %s (--max-store-bytes, or smp admin limits): capture to another SMP, or ask its admin to remove released records and run gc",
			ibytes(lim.stored), ibytes(s.reserved), ibytes(max))
	}
	if lim.minFree > 0 {
		free, err := s.opts.FreeBytes()
		if err != nil {
			return err
		}
		if free < lim.minFree+s.reserved {
			s.metrics.CaptureRefused("min_free")
			return capacityError(http.StatusInsufficientStorage,
				"this SMP has %s free (%s reserved by captures in progress), below its floor of %s (--min-free): capture to another SMP",
				ibytes(free), ibytes(s.reserved), ibytes(lim.minFree))
		}
	}
	if q := lim.quota; q > 0 && quotaBase >= q {
		s.metrics.CaptureRefused("quota")
		return capacityError(http.StatusInsufficientStorage,
			"computer %q already stores %s, its quota is %s (--quota, or smp admin limits): ask the admin to remove its old records or raise the quota",
			sess.computer, ibytes(quotaBase), ibytes(q))
	}
	sess.quotaBase = quotaBase
	s.limitTokenSessions(sess)
	s.sessions[sess.id] = sess
	return nil
}

// reserve sets aside want plaintext bytes for blobs a session was told
// the store lacks (so it will upload them), or refuses when they would
// cross the free-space floor, the store-size limit or the computer's
// quota (lim, read before the caller took s.mu). Compression only
// makes the upload smaller. The caller (noteHave) counts only blobs the
// session had not named before: a client that offers its whole capture
// first (smp capture --reserve-first) then re-offers each blob as it
// uploads it. Caller holds s.mu.
func (s *Server) reserve(sess *session, want uint64, lim limits) error {
	if want == 0 || (lim.minFree == 0 && lim.quota == 0 && lim.maxStoreBytes == 0) {
		return nil
	}
	if lim.minFree > 0 {
		free, err := s.opts.FreeBytes()
		if err != nil {
			return err
		}
		if free < lim.minFree+s.reserved+want {
			s.metrics.CaptureRefused("min_free")
			// The capture cannot finish: end it now so its reservation
			// does not hold space until the session would expire.
			return s.stopSession(sess, capacityError(http.StatusInsufficientStorage,
				"capture stopped: %s more would take this SMP below its free-space floor of %s (%s free, %s reserved by captures in progress); nothing of this capture was committed: free space or capture to another SMP, then run it again",
				ibytes(want), ibytes(lim.minFree), ibytes(free), ibytes(s.reserved)))
		}
	}
	if max := lim.maxStoreBytes; max > 0 && lim.stored+s.reserved+want > max {
		s.metrics.CaptureRefused("max_store_bytes")
		return s.stopSession(sess, capacityError(http.StatusInsufficientStorage,
			"capture stopped: %s more would take this SMP's store over its limit of %s (it holds %s, %s reserved by captures in progress; --max-store-bytes, or smp admin limits); nothing of this capture was committed: capture to another SMP, or ask its admin to free space, then run it again",
			ibytes(want), ibytes(max), ibytes(lim.stored), ibytes(s.reserved)))
	}
	if q := lim.quota; q > 0 {
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
				"capture stopped: computer %q would store %s, over its quota of %s (--quota, or smp admin limits); nothing of this capture was committed: ask the admin to remove its old records or raise the quota",
				sess.computer, ibytes(used+want), ibytes(q)))
		}
	}
	sess.reserved += want
	s.reserved += want
	return nil
}

func ibytes(n uint64) string { return humanize.IBytes(n) }
