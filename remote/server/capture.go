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
)

// have answers a have-query. A blob counts as held only when the store has
// it, with the type offered, and the proof matches its plaintext, so a client that knows a chunk
// ID but not the bytes learns nothing (docs/PROTOCOL.md, "Proof of
// possession").
func (s *Server) have(w http.ResponseWriter, r *http.Request, c *call) error {
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
	release, err := s.acquireWork(r)
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
	for i, e := range entries {
		loc, err := s.lookupBlob(e.Type, e.ID)
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

// uploadBufs holds the frame and plaintext buffers of finished uploads for
// the next ones: growing fresh multi-MiB buffers per request showed up as
// a tenth of the server's CPU.
var uploadBufs = sync.Pool{New: func() any { return new([2][]byte) }}

// upload stores a batch of blobs, each verified against its ID first. The
// blobs are durable and indexed before the answer: an interrupted capture
// that is run again is told it holds them.
func (s *Server) upload(w http.ResponseWriter, r *http.Request, c *call) (err error) {
	sess, err := s.session(r, c)
	if err != nil {
		return err
	}
	release, err := s.acquireWork(r)
	if err != nil {
		return err
	}
	defer release()
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	rp := s.opts.Repo
	var res wire.UploadResult
	// Whatever was verified and added is committed even when the body is
	// cut short, so a re-run does not send it again.
	defer func() {
		if ferr := rp.Flush(); ferr != nil && err == nil {
			err = fmt.Errorf("commit packs: %w", ferr)
		}
	}()
	br := wire.NewBlobReader(http.MaxBytesReader(w, r.Body, wire.MaxBatchBytes+1<<20), wire.MaxBatchBlobs, wire.MaxBatchBytes)
	bufs := uploadBufs.Get().(*[2][]byte)
	br.UseBuffer(bufs[0])
	plainBuf := bufs[1]
	defer func() {
		bufs[0], bufs[1] = br.Buffer()[:0], plainBuf[:0]
		uploadBufs.Put(bufs)
	}()
	for {
		b, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		c.bytesIn += wire.BlobHeaderLen + int64(len(b.Stored))
		// A blob sent uncompressed is verified where it lies: copying it
		// first only costs time.
		plain := b.Stored
		if b.Compression != cas.CompressionNone || len(b.Stored) != b.RawLen {
			plain, err = cas.Decompress(plainBuf, b.Stored, b.Compression, b.RawLen)
			if err != nil {
				return fail(http.StatusBadRequest, "blob %s does not decompress: %v", b.ID.Short(), err)
			}
			plainBuf = plain[:0]
		}
		if err := rp.Hasher.Verify(b.Type, b.ID, plain); err != nil {
			return fail(http.StatusBadRequest, "blob %s rejected: its content does not match its ID", b.ID.Short())
		}
		// Noted before the store reserves it: a refusal here leaves no
		// reservation that obliges this request to store the blob.
		if err := s.landed(sess, b.Type, b.ID, uint64(b.RawLen)); err != nil {
			return err
		}
		isNew, err := rp.Reserve(b.Type, b.ID)
		if err != nil {
			return err
		}
		s.BlobsReceived.Add(1)
		s.BytesReceived.Add(int64(len(b.Stored)))
		sess.received.Add(int64(len(b.Stored)))
		res.Bytes += int64(len(b.Stored))
		s.metrics.Received(int64(len(b.Stored)), isNew)
		if !isNew {
			res.Duplicate++
			continue
		}
		// AddBlob writes the bytes out before it returns, so the reader's
		// buffer can be reused for the next frame.
		if err := rp.AddBlob(b.Type, b.ID, b.Compression, b.Stored, b.RawLen); err != nil {
			return fmt.Errorf("store blob %s: %w", b.ID.Short(), err)
		}
		s.BlobsStored.Add(1)
		sess.stored.Add(int64(len(b.Stored)))
		res.Stored++
	}
	if err := rp.Flush(); err != nil {
		return fmt.Errorf("commit packs: %w", err)
	}
	return writeJSON(w, res)
}

// commit stores the session's record after checking every tree and chunk
// it references (checkRefs): each is one the session may name, and in the
// store, so no record can dangle or borrow another computer's data.
func (s *Server) commit(w http.ResponseWriter, r *http.Request, c *call) error {
	sess, err := s.session(r, c)
	if err != nil {
		return err
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
	if err := rp.Flush(); err != nil {
		return err
	}
	if err := s.checkRefs(c, sess, rec.Tree); err != nil {
		return err
	}
	rec.StoredBytes = uint64(sess.stored.Load()) // what this capture really added
	id, err := rp.CommitRecord(rec)
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
