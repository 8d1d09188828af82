package server

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"smp/cas"
	"smp/cas/manifest"
	"smp/remote/wire"
	"smp/repo"
)

// have answers a have-query. A blob counts as held only when the store has
// it, with the type offered, and the proof matches its plaintext, so a client that knows a chunk
// ID but not the bytes learns nothing (docs/PROTOCOL.md, "Proof of
// possession").
func (s *Server) have(w http.ResponseWriter, r *http.Request, c *call) error {
	ticket := s.work.ticket()
	// The body is read before any refusal, so the client reads the answer
	// instead of a connection reset while it is still sending.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4+wire.MaxHaveEntries*(1+32+4+wire.ProofLen)))
	if err != nil {
		return err
	}
	sess, err := s.session(r, c)
	if err != nil {
		return err
	}
	release, err := s.acquireWork(r, ticket)
	if err != nil {
		return err
	}
	defer release()
	c.bytesIn = int64(len(body))
	entries, err := wire.DecodeHave(body)
	if err != nil {
		return err
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	rp := s.opts.Repo
	bm := wire.NewHaveBitmap(len(entries))
	var buf []byte
	// A repeated entry gets its first copy's answer: a query naming one
	// blob 4096 times costs one read and one proof, not 4096, and cannot
	// hold a work slot the longer for it.
	first := make(map[cas.ID]int, len(entries))
	for i, e := range entries {
		if j, ok := first[e.ID]; ok && entries[j] == e {
			if bm.Has(j) {
				bm.Set(i)
			}
			continue
		}
		first[e.ID] = i
		// On a store several servers share, a blob in a pack gc
		// condemned, or any blob while the index is stale, is "not
		// held": the client sends it again (repo.LookupHeld).
		loc, err := rp.LookupHeld(e.Type, e.ID)
		if errors.Is(err, cas.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		plain, err := rp.ReadAt(e.Type, loc, buf)
		if errors.Is(err, cas.ErrCorrupt) {
			// A damaged copy: have the client send it again. (It stays
			// damaged; smp verify names it.)
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s for proof: %w", e.ID.Short(), err)
		}
		buf = plain[:0]
		if len(plain) != int(e.Len) {
			continue
		}
		proof := sess.prover.Proof(e.Type, e.ID, plain)
		if subtle.ConstantTimeCompare(proof[:], e.Proof[:]) == 1 {
			bm.Set(i)
		}
	}
	if err := s.noteHave(sess, entries, bm); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, err = w.Write(bm)
	return err
}

// errEstimateOnly refuses an upload or a commit on an estimate session.
var errEstimateOnly = fail(http.StatusForbidden, "an estimate session (smp capture --estimate) uploads and commits nothing: start a capture session")

// frameBufs holds the frame buffers of finished uploads, and plainBufs the
// plaintext buffers of finished frames, for the next ones: growing fresh
// multi-MiB buffers per request showed up as a tenth of the server's CPU.
var (
	frameBufs = sync.Pool{New: func() any { return new([]byte) }}
	plainBufs = sync.Pool{New: func() any { return new([]byte) }}
)

// maxTreeRatio bounds how much an uploaded tree may expand when
// decompressed. A tree's entries each carry a distinct name, inode and
// times, so real trees compress a few times; a data chunk, which may be
// all zeros, is bounded by the store's largest chunk instead.
const maxTreeRatio = 1024

// maxRawLen is the largest plaintext a frame of storedLen bytes may claim:
// what the store can hold of its type, never what the frame says.
func (s *Server) maxRawLen(t cas.BlobType, storedLen int) int {
	if t == cas.BlobData {
		return s.opts.Repo.Config.Chunker.Max
	}
	return min(cas.MaxBlobSize, maxTreeRatio*storedLen+1<<20)
}

// upload stores a batch of blobs, each verified against its ID first. The
// blobs are durable and indexed before the answer: an interrupted capture
// that is run again is told it holds them.
//
// Each frame is read from the network before it takes a work slot, and
// the slot is held only to verify and store frames that have arrived: a
// client sending slowly (1 byte/s) holds its connection and its frame's
// bytes, never a slot the other clients wait for. The request keeps the
// ticket it took on arrival for every slot it asks for, so it is served
// before requests that came later (workSlots).
func (s *Server) upload(w http.ResponseWriter, r *http.Request, c *call) (err error) {
	ticket := s.work.ticket()
	sess, err := s.session(r, c)
	if err != nil {
		return err
	}
	if sess.estimate {
		return errEstimateOnly
	}
	rp := s.opts.Repo
	mark := rp.Mark()
	var res wire.UploadResult
	flushed := false
	// Whatever was verified and added is committed even when the body is
	// cut short, so a re-run does not send it again.
	defer func() {
		if flushed {
			return
		}
		s.gcMu.RLock()
		defer s.gcMu.RUnlock()
		if ferr := rp.FlushSince(mark); ferr != nil && err == nil {
			err = fmt.Errorf("commit packs: %w", ferr)
		}
	}()
	br := wire.NewBlobReader(http.MaxBytesReader(w, r.Body, wire.MaxBatchBytes+1<<20), wire.MaxBatchBlobs, wire.MaxBatchBytes)
	fb := frameBufs.Get().(*[]byte)
	br.UseBuffer(*fb)
	defer func() {
		*fb = br.Buffer()[:0]
		frameBufs.Put(fb)
	}()
	// The work slot is held while frames are at hand and let go whenever
	// the next one must be waited for: a fast client's small frames share
	// one slot, and a slow one holds none while it sends.
	var release func()
	defer func() {
		if release != nil {
			release()
		}
	}()
	for {
		if release != nil && !br.Ready() {
			release()
			release = nil
		}
		b, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		c.bytesIn += wire.BlobHeaderLen + int64(len(b.Stored))
		if b.RawLen > s.maxRawLen(b.Type, len(b.Stored)) {
			return fail(http.StatusBadRequest, "blob %s claims %d bytes of plaintext from %d, over what this store takes (its largest chunk, or %dx for a tree)",
				b.ID.Short(), b.RawLen, len(b.Stored), maxTreeRatio)
		}
		if release == nil {
			if release, err = s.acquireWork(r, ticket); err != nil {
				return err
			}
		}
		isNew, err := s.storeFrame(sess, b)
		if err != nil {
			return err
		}
		res.Bytes += int64(len(b.Stored))
		if isNew {
			res.Stored++
		} else {
			res.Duplicate++
		}
	}
	if release != nil {
		release() // the flush waits for the disk, not a core
		release = nil
	}
	flushed = true
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	if err := rp.FlushSince(mark); err != nil {
		return fmt.Errorf("commit packs: %w", err)
	}
	return writeJSON(w, res)
}

// storeFrame verifies one uploaded blob and adds it to the store unless
// it is there; it reports whether it was new. The caller holds a work
// slot; storeFrame holds gcMu shared while it adds: a gc between two
// frames commits what the upload added so far (Server.GC).
func (s *Server) storeFrame(sess *session, b wire.Blob) (bool, error) {
	rp := s.opts.Repo
	var err error
	// A blob sent uncompressed is verified where it lies: copying it
	// first only costs time.
	plain := b.Stored
	if b.Compression != cas.CompressionNone || len(b.Stored) != b.RawLen {
		pb := plainBufs.Get().(*[]byte)
		defer plainBufs.Put(pb)
		plain, err = cas.Decompress(*pb, b.Stored, b.Compression, b.RawLen)
		if err != nil {
			return false, fail(http.StatusBadRequest, "blob %s does not decompress: %v", b.ID.Short(), err)
		}
		*pb = plain[:0]
	}
	if err := rp.Hasher.Verify(b.Type, b.ID, plain); err != nil {
		return false, fail(http.StatusBadRequest, "blob %s rejected: its content does not match its ID", b.ID.Short())
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	// Noted before the store reserves it: a refusal here leaves no
	// reservation that obliges this request to store the blob.
	if err := s.landed(sess, b.Type, b.ID, uint64(b.RawLen)); err != nil {
		return false, err
	}
	isNew, err := rp.Reserve(b.Type, b.ID)
	if err != nil {
		return false, err
	}
	s.BlobsReceived.Add(1)
	s.BytesReceived.Add(int64(len(b.Stored)))
	sess.received.Add(int64(len(b.Stored)))
	s.metrics.Received(int64(len(b.Stored)), isNew)
	if !isNew {
		return false, nil
	}
	// AddBlob writes the bytes out before it returns, so the reader's
	// buffer can be reused for the next frame.
	if err := rp.AddBlob(b.Type, b.ID, b.Compression, b.Stored, b.RawLen); err != nil {
		return false, fmt.Errorf("store blob %s: %w", b.ID.Short(), err)
	}
	s.BlobsStored.Add(1)
	sess.stored.Add(int64(len(b.Stored)))
	return true, nil
}

// commit stores the session's record after checking every tree and chunk
// it references (checkRefs): each is one the session may name, and in the
// store, so no record can dangle or borrow another computer's data.
// setExpected takes the walk totals of a session's capture, which its
// client counted alongside the capture (wire.FeatureTotalsLater): the
// console's progress and ETA, nothing else. Later totals replace earlier
// ones; each is bounded as at the session's start.
func (s *Server) setExpected(w http.ResponseWriter, r *http.Request, c *call) error {
	sess, err := s.session(r, c)
	if err != nil {
		return err
	}
	var t wire.CaptureTotals
	if err := readJSON(w, r, wire.MaxJSONBytes, &t); err != nil {
		return err
	}
	if err := t.Check(); err != nil {
		return fail(http.StatusBadRequest, "%v", err)
	}
	s.mu.Lock()
	sess.expected = &t
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) commit(w http.ResponseWriter, r *http.Request, c *call) error {
	sess, err := s.session(r, c)
	if err != nil {
		return err
	}
	if sess.estimate {
		return errEstimateOnly
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, wire.MaxRecordBytes))
	if err != nil {
		return err
	}
	c.bytesIn = int64(len(body))
	rec, err := manifest.DecodeRecord(body)
	if err != nil {
		return fail(http.StatusBadRequest, "record: %v", err)
	}
	if rec.Computer != sess.computer {
		return fail(http.StatusForbidden, "record is for computer %q but the session captures %q", rec.Computer, sess.computer)
	}
	if rec.LinkSet != "" || rec.LinkedFiles > 0 || rec.ClonedFiles > 0 {
		return fail(http.StatusBadRequest, "a hard-link record cannot be sent to a remote SMP: capture with --hardlink never")
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	rp := s.opts.Repo
	// Only this commit's own failures count: every blob the record
	// references is checked below to be indexed, whatever failed before.
	mark := rp.Mark()
	if err := rp.FlushSince(mark); err != nil {
		return err
	}
	// The newest gc marks first: a reference into a pack condemned
	// since the session's have-queries is found by the check below.
	if err := rp.LoadMarks(); err != nil {
		return err
	}
	packs, err := s.checkRefs(r.Context(), c, sess, rec.Tree)
	if err != nil {
		return err
	}
	rec.StoredBytes = uint64(sess.stored.Load()) // what this capture really added
	id, err := rp.CommitRecordRefs(mark, rec, packs)
	if errors.Is(err, repo.ErrCondemned) {
		return fail(http.StatusConflict, "%v", err)
	}
	if err != nil {
		return fmt.Errorf("commit record: %w", err)
	}
	c.record = id.Short()
	s.metrics.Committed(rec.Bytes)
	s.mu.Lock()
	s.endSession(sess.id, "committed")
	s.mu.Unlock()
	return writeJSON(w, wire.Committed{ID: id.String()})
}
