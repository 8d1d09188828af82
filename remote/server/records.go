package server

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/index"
	"smp/remote/access"
	"smp/remote/wire"
	"smp/repo"
	"smp/repo/report"
)

// records lists the live records the caller may restore.
func (s *Server) records(w http.ResponseWriter, r *http.Request, c *call) error {
	all, err := s.opts.Repo.Records()
	if err != nil {
		return err
	}
	released, err := s.opts.Repo.ReleasedAt()
	if err != nil {
		return err
	}
	computer := r.URL.Query().Get("computer")
	out := []wire.RecordEntry{}
	for _, rec := range all {
		if computer != "" && rec.Computer != computer {
			continue
		}
		if !c.snap.MayRestore(c.tok, rec.Computer) {
			continue
		}
		out = append(out, recordEntry(rec, released))
	}
	return writeJSON(w, out)
}

func recordEntry(rec repo.RecordInfo, released map[cas.ID]time.Time) wire.RecordEntry {
	e := wire.RecordEntry{ID: rec.ID.String(), Record: rec.Record}
	if at, ok := released[rec.ID]; ok {
		e.Released = &at
	}
	return e
}

// findRecord resolves ?ref=ID-or-prefix or ?computer=NAME (its newest).
func (s *Server) findRecord(w http.ResponseWriter, r *http.Request, c *call) error {
	q := r.URL.Query()
	rec, err := s.authorizedRecord(c, q.Get("ref"), q.Get("computer"))
	if err != nil {
		return err
	}
	released, err := s.opts.Repo.ReleasedAt()
	if err != nil {
		return err
	}
	return writeJSON(w, recordEntry(rec, released))
}

// authorizedRecord finds a record the caller may restore: by full ID, by
// a prefix unique among the records it may restore, or a computer's newest.
// A record the caller may not restore is answered exactly like one that
// does not exist (same status, same text; a client token's refusal echoes
// nothing of the request), so no probe tells "not yours" from "not there"
// and no answer names another computer's record.
func (s *Server) authorizedRecord(c *call, ref, computer string) (repo.RecordInfo, error) {
	notFound := func() error {
		switch {
		case ref != "":
			return fail(http.StatusNotFound, "no such record among those this token may restore: list them with smp records")
		case c.tok.Role == access.RoleAdmin:
			return fail(http.StatusNotFound, "computer %q has no record: list them with smp records", computer)
		}
		return fail(http.StatusNotFound, "no record of that computer that this token may restore: list them with smp records (another computer's records need smp associate --source THAT-COMPUTER --dest %s)", c.tok.Computer)
	}
	if id, perr := cas.ParseID(ref); perr == nil && computer == "" {
		rec, err := s.opts.Repo.Record(id) // one lookup: fetches name the full ID
		if errors.Is(err, repo.ErrNoRecord) || (err == nil && !c.snap.MayRestore(c.tok, rec.Computer)) {
			return repo.RecordInfo{}, notFound()
		}
		if err != nil {
			return repo.RecordInfo{}, err
		}
		c.record = rec.ID.Short()
		return rec, nil
	}
	switch {
	case ref == "" && computer == "":
		return repo.RecordInfo{}, fail(http.StatusBadRequest, "give a record ID or a computer name")
	case ref != "" && len(ref) < 4:
		return repo.RecordInfo{}, fail(http.StatusBadRequest, "record ID prefix %q is too short: give at least 4 hex digits", ref)
	}
	all, err := s.opts.Repo.Records()
	if err != nil {
		return repo.RecordInfo{}, err
	}
	// Only the records the caller may restore take part, so an ambiguous
	// prefix cannot count someone else's records either.
	var found []repo.RecordInfo
	for _, rec := range all {
		if !c.snap.MayRestore(c.tok, rec.Computer) ||
			(computer != "" && rec.Computer != computer) ||
			(ref != "" && !strings.HasPrefix(rec.ID.String(), strings.ToLower(ref))) {
			continue
		}
		found = append(found, rec)
	}
	switch {
	case len(found) == 0:
		return repo.RecordInfo{}, notFound()
	case ref != "" && len(found) > 1:
		return repo.RecordInfo{}, fail(http.StatusBadRequest, "record prefix %q matches %d records: give more digits", ref, len(found))
	}
	rec := found[len(found)-1] // Records sorts oldest first
	c.record = rec.ID.Short()
	return rec, nil
}

// lookupBlob finds blob id of type t: a blob of another type is "not
// found", so no request can read a record or a tree as data. It is the
// one place the server asks the index for a typed blob.
func (s *Server) lookupBlob(t cas.BlobType, id cas.ID) (index.Location, error) {
	loc, err := s.opts.Repo.Lookup(t, id)
	if err != nil {
		return index.Location{}, err
	}
	if loc.Type != t {
		return index.Location{}, fmt.Errorf("blob %s of type %s: %w", id.Short(), t, cas.ErrNotFound)
	}
	return loc, nil
}

// fetch streams the blobs asked for, each of which must be reachable from
// the record in the path: knowing an ID is no right to read it.
func (s *Server) fetch(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		return err
	}
	rec, err := s.authorizedRecord(c, id.String(), "")
	if err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4+wire.MaxFetchEntries*(1+32)))
	if err != nil {
		return err
	}
	c.bytesIn = int64(len(body))
	entries, err := wire.DecodeFetch(body)
	if err != nil {
		return err
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	reach, err := s.reach.get(rec)
	if err != nil {
		return fmt.Errorf("walk record %s: %w", rec.ID.Short(), err)
	}
	locs := make([]index.Location, 0, len(entries))
	asked := make(map[cas.BlobKey]bool, len(entries))
	for _, e := range entries {
		k := cas.BlobKey{Type: e.Type, ID: e.ID}
		if _, ok := reach[k]; !ok {
			return fail(http.StatusForbidden, "%s %s is not part of record %s", e.Type, e.ID.Short(), rec.ID.Short())
		}
		if asked[k] {
			continue // one frame per distinct blob (docs/PROTOCOL.md)
		}
		asked[k] = true
		// The type is checked against the stored blob too: a record
		// naming a record or tree blob as a chunk must not read it.
		loc, err := s.lookupBlob(e.Type, e.ID)
		if errors.Is(err, cas.ErrNotFound) {
			return fail(http.StatusNotFound, "%s %s of record %s is missing from the store: run smp verify on the SMP", e.Type, e.ID.Short(), rec.ID.Short())
		}
		if err != nil {
			return err
		}
		locs = append(locs, loc)
	}
	// Pack order makes the server's reads sequential; the client matches
	// answers to requests by ID.
	slices.SortFunc(locs, func(a, b index.Location) int {
		if c := bytes.Compare(a.Pack[:], b.Pack[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.Offset, b.Offset)
	})
	s.metrics.RestoreActivity(rec.ID.String())
	w.Header().Set("Content-Type", "application/octet-stream")
	bw := bufio.NewWriterSize(w, 256<<10)
	var served int64
	var plain uint64 // of data chunks: the restore's progress (console)
	defer func() { s.metrics.Served(served); s.metrics.RestoreServed(rec.ID.String(), plain) }()
	var writeErr error
	err = s.opts.Repo.ReadStoredAll(locs, func(loc index.Location, stored []byte) error {
		served += int64(len(stored))
		if loc.Type == cas.BlobData {
			plain += uint64(loc.RawLen)
		}
		writeErr = wire.WriteBlob(bw, wire.Blob{Type: loc.Type, Compression: loc.Compression, ID: loc.ID, RawLen: int(loc.RawLen), Stored: stored})
		return writeErr
	})
	if writeErr != nil {
		return writeErr
	}
	if err != nil {
		// The answer has begun: cut it so the client sees a truncated
		// stream rather than a short, well-formed one.
		s.opts.Log.Error("fetch read", "error", err)
		panic(http.ErrAbortHandler)
	}
	return bw.Flush()
}

func (s *Server) release(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		return err
	}
	rec, err := s.authorizedRecord(c, id.String(), "")
	if err != nil {
		return err
	}
	if err := s.opts.Repo.Release(rec.ID, s.opts.Now()); err != nil {
		return err
	}
	s.metrics.RestoreCompleted()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request, c *call) error {
	if c.tok.Role != access.RoleAdmin {
		return fail(http.StatusForbidden, "removing a record needs an admin token")
	}
	rec, err := s.authorizedRecord(c, r.PathValue("id"), "")
	if err != nil {
		return err
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	if err := s.opts.Repo.Drop(rec); err != nil {
		return err
	}
	s.reach.forget(rec.ID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request, c *call) error {
	if c.tok.Role != access.RoleAdmin {
		return fail(http.StatusForbidden, "store statistics need an admin token")
	}
	out, err := s.statsReply()
	if err != nil {
		return err
	}
	if v := r.URL.Query().Get("retention"); v != "" {
		retention, err := time.ParseDuration(v)
		if err != nil || retention < 0 {
			return fail(http.StatusBadRequest, "retention %q: want a Go duration such as 168h", v)
		}
		expired, err := s.opts.Repo.Expired(retention, s.opts.Now())
		if err != nil {
			return err
		}
		out.Expired = new(len(expired))
	}
	if r.URL.Query().Get("usage") != "" {
		if out.PerRecord, out.Computers, err = s.opts.Repo.Usage(); err != nil {
			return err
		}
	}
	return writeJSON(w, out)
}

// statsReply is the store's figures with the server's capacity: what
// GET /v1/stats answers and the web console's overview shows.
func (s *Server) statsReply() (*wire.StatsReply, error) {
	st, err := s.opts.Repo.Stats()
	if err != nil {
		return nil, err
	}
	// Free space as admission sees it (Options.FreeBytes), so the figure
	// shown beside the floor is the one captures are refused by.
	if st.FreeBytes, err = s.opts.FreeBytes(); err != nil {
		return nil, fmt.Errorf("free space: %w", err)
	}
	lim, err := s.limits()
	if err != nil {
		return nil, err
	}
	return &wire.StatsReply{Stats: st, Capacity: s.capacity(lim)}, nil
}

// capacity is what the open capture sessions hold against the disk and
// the limits in force (report.Capacity).
func (s *Server) capacity(lim limits) *report.Capacity {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &report.Capacity{ReservedBytes: s.reserved, MinFreeBytes: lim.minFree, QuotaBytes: lim.quota, MaxStoreBytes: lim.maxStoreBytes}
	for _, sess := range s.sessions {
		if sess.estimate {
			continue
		}
		c.Captures++
		c.QuotaCommittedBytes += uint64(sess.stored.Load()) + sess.reserved
	}
	return c
}

// reachCache keeps, for the few records being restored, the set of blobs
// reachable from each (what a client may fetch), by type and ID. Memory is
// bounded by size records' distinct blobs.
type reachCache struct {
	repo *repo.Repo
	size int
	mu   sync.Mutex
	sets map[cas.ID]*reachSet
	lru  []cas.ID
}

type reachSet struct {
	once sync.Once
	ids  map[cas.BlobKey]struct{}
	err  error
}

func newReachCache(r *repo.Repo, size int) *reachCache {
	return &reachCache{repo: r, size: size, sets: map[cas.ID]*reachSet{}}
}

func (rc *reachCache) get(rec repo.RecordInfo) (map[cas.BlobKey]struct{}, error) {
	rc.mu.Lock()
	set := rc.sets[rec.ID]
	if set == nil {
		set = &reachSet{}
		rc.sets[rec.ID] = set
		rc.lru = append(rc.lru, rec.ID)
		if len(rc.lru) > rc.size {
			delete(rc.sets, rc.lru[0])
			rc.lru = rc.lru[1:]
		}
	}
	rc.mu.Unlock()
	set.once.Do(func() {
		ids := map[cas.BlobKey]struct{}{}
		w := manifest.Walker{Load: rc.repo, Seen: ids}
		set.err = w.Walk(context.Background(), rec.Tree)
		set.ids = ids
	})
	if set.err != nil {
		rc.forget(rec.ID)
	}
	return set.ids, set.err
}

func (rc *reachCache) forget(id cas.ID) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	delete(rc.sets, id)
	rc.lru = slices.DeleteFunc(rc.lru, func(x cas.ID) bool { return x == id })
}
