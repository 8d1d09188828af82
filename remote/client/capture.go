package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"smp/cas"
	"smp/cas/manifest"
	"smp/remote/wire"
)

// Upload batching: a batch is sent when it holds this many bytes or
// blobs; at most Streams batches are in flight and one more is filling,
// which bounds the client's memory whatever the file sizes.
//
// Offers: a have-query carries up to haveBatchMax entries, and up to
// haveStreams queries are in flight, so the capture never waits a round
// trip per chunk. Offers waiting for their answer hold their plaintext
// (it is compressed and uploaded if the SMP lacks it): at most offerBytes
// of it and haveQueue offers wait, whatever the tree.
const (
	uploadBatchBytes = 8 << 20
	uploadBatchBlobs = wire.MaxBatchBlobs
	haveBatchMax     = 2048
	haveStreams      = 4
	haveQueue        = 2 * haveBatchMax
	offerBytes       = 32 << 20
	haveLingerBelow  = 256
	haveLinger       = 5 * time.Millisecond
)

// Capture is one capture session on an SMP. It implements capture.Store
// (and capture's proving-store extension): every chunk is first offered
// with a proof of possession, and only those the SMP lacks are uploaded.
type Capture struct {
	c      *Client
	ctx    context.Context
	cancel context.CancelFunc
	sess   wire.Session
	prover *wire.Prover
	parent *Reader // the computer's previous record, for change detection
	prev   *parentTrees

	seenMu sync.Mutex
	seen   map[cas.BlobKey]struct{} // by type and ID: a chunk with a tree's ID is not that tree

	haves    chan haveReq
	uploads  chan []byte
	haveWG   sync.WaitGroup
	uploadWG sync.WaitGroup

	// offerMu guards the sends on haves against their close: an offer
	// sends under the read lock, closeHaves closes under the write lock.
	offerMu     sync.RWMutex
	havesClosed bool
	offerSem    *semaphore.Weighted // plaintext bytes of offers waiting for their answer
	dataOffers  sync.WaitGroup      // OfferData offers not yet answered
	treeOffers  sync.WaitGroup      // PutTree offers not yet answered (and uploaded if needed)

	batchMu sync.Mutex
	batch   []byte
	batchN  int
	// spare holds emptied batch buffers for reuse: a fresh 8 MiB buffer
	// per batch costs more in zeroing and growth than the upload itself.
	spare chan []byte

	errMu sync.Mutex
	err   error

	committing atomic.Bool

	// Counters: blobs and stored bytes uploaded, blobs the SMP already held.
	SentBlobs, SentBytes, HeldBlobs atomic.Int64
}

// haveReq is one offer: answer is called once with whether the SMP holds
// the blob (or the error that ended the capture); weight is what it holds
// of offerSem.
type haveReq struct {
	e      wire.HaveEntry
	answer func(held bool, err error)
	weight int64
	urgent bool // a caller waits for the answer (offer): no lingering
}

// StartCapture opens a capture session for computer. parent is the ID of
// the computer's last record (zero for none): its trees are read for
// change detection.
func (c *Client) StartCapture(ctx context.Context, computer string, parent cas.ID) (*Capture, error) {
	return c.OpenCapture(ctx, CaptureStart{Computer: computer, Parent: parent})
}

// CaptureStart is what a capture session starts from.
type CaptureStart struct {
	Computer string
	Parent   cas.ID // the computer's last record (zero: none), for change detection
	// Expected are the walk totals (capture.Count) the SMP shows the
	// session's progress against; sent only to an SMP whose Info lists
	// wire.FeatureCaptureTotals (an older one refuses the field). Nil: none.
	Expected *wire.CaptureTotals
}

// OpenCapture opens a capture session as StartCapture does, with the
// walk totals when the SMP takes them.
func (c *Client) OpenCapture(ctx context.Context, cs CaptureStart) (*Capture, error) {
	req := wire.StartCapture{Computer: cs.Computer}
	if c.info.HasFeature(wire.FeatureCaptureTotals) {
		req.Expected = cs.Expected
	}
	return c.startSession(ctx, req, cs.Parent)
}

// StartEstimate opens an estimate session (smp capture --estimate): its
// have-queries are answered as a capture's are, but the SMP reserves, pins
// and records nothing for them, and refuses uploads and a commit. Run the
// capture against Estimate(). An SMP that does not know estimate sessions
// refuses the request, or answers a session that does not say it is one:
// both are an error here, before anything is offered.
func (c *Client) StartEstimate(ctx context.Context, computer string, parent cas.ID) (*Capture, error) {
	cp, err := c.startSession(ctx, wire.StartCapture{Computer: computer, Estimate: true}, parent)
	if err != nil {
		var se *Error
		if errors.As(err, &se) && se.Status == http.StatusBadRequest {
			return nil, fmt.Errorf("this SMP does not know estimate sessions (smp capture --estimate): upgrade it, or estimate against its store directory: %w", err)
		}
		return nil, err
	}
	if !cp.sess.Estimate {
		cp.Close()
		return nil, fmt.Errorf("this SMP answered a capture session, not an estimate session: upgrade it, or estimate against its store directory")
	}
	return cp, nil
}

func (c *Client) startSession(ctx context.Context, req wire.StartCapture, parent cas.ID) (*Capture, error) {
	var sess wire.Session
	if err := c.postJSON(ctx, "/captures", req, &sess); err != nil {
		return nil, err
	}
	if len(sess.Nonce) != 32 || sess.ID == "" {
		return nil, fmt.Errorf("SMP session: %w", wire.ErrMalformed)
	}
	ctx, cancel := context.WithCancel(ctx)
	cp := &Capture{
		c: c, ctx: ctx, cancel: cancel, sess: sess, prover: wire.NewProver(sess.Nonce),
		seen:     map[cas.BlobKey]struct{}{},
		haves:    make(chan haveReq, haveQueue),
		uploads:  make(chan []byte, 1),
		spare:    make(chan []byte, c.opts.Streams+2),
		offerSem: semaphore.NewWeighted(offerBytes),
	}
	if !parent.IsZero() {
		cp.parent = c.Reader(parent)
		cp.prev = newParentTrees(cp.parent)
	}
	for range haveStreams {
		cp.haveWG.Add(1)
		go cp.haveWorker()
	}
	for range c.opts.Streams {
		cp.uploadWG.Add(1)
		go cp.uploader()
	}
	return cp, nil
}

func (cp *Capture) path(op string) string { return "/captures/" + cp.sess.ID + "/" + op }

func (cp *Capture) setErr(err error) {
	cp.errMu.Lock()
	if cp.err == nil {
		cp.err = err
		cp.cancel()
	}
	cp.errMu.Unlock()
}

// Err returns the first error of a background upload.
func (cp *Capture) Err() error {
	cp.errMu.Lock()
	defer cp.errMu.Unlock()
	return cp.err
}

// ChunkerParams implements capture.Store.
func (cp *Capture) ChunkerParams() cas.ChunkerParams { return cp.c.info.Chunker }

// Sum implements capture.Store.
func (cp *Capture) Sum(b []byte) cas.ID { return cp.c.hasher.Sum(b) }

// firstSight reports whether blob id of type t is new to this session.
func (cp *Capture) firstSight(t cas.BlobType, id cas.ID) bool {
	k := cas.BlobKey{Type: t, ID: id}
	cp.seenMu.Lock()
	defer cp.seenMu.Unlock()
	if _, ok := cp.seen[k]; ok {
		return false
	}
	cp.seen[k] = struct{}{}
	return true
}

// Reserve implements capture.Store for callers without the bytes at hand:
// it dedupes within the session only, and the blob is uploaded.
func (cp *Capture) Reserve(t cas.BlobType, id cas.ID) (bool, error) {
	return cp.firstSight(t, id), cp.Err()
}

// ReserveData reports whether the chunk must be uploaded: false when this
// session already took it or the SMP holds it (proven with plain).
func (cp *Capture) ReserveData(t cas.BlobType, id cas.ID, plain []byte) (bool, error) {
	if !cp.firstSight(t, id) {
		return false, cp.Err()
	}
	held, err := cp.offer(t, id, plain)
	if held {
		cp.HeldBlobs.Add(1)
	}
	return !held && err == nil, err
}

// offer asks the SMP, with a proof, whether it holds the blob, and waits
// for the answer; the SMP reserves room for it when it does not.
func (cp *Capture) offer(t cas.BlobType, id cas.ID, plain []byte) (held bool, err error) {
	type reply struct {
		held bool
		err  error
	}
	ch := make(chan reply, 1)
	cp.enqueue(t, id, plain, 0, true, func(held bool, err error) { ch <- reply{held, err} })
	r := <-ch
	return r.held, r.err
}

// OfferData implements capture.OfferingStore: the chunk is offered in the
// next have-query and answer says whether to upload it; the file worker
// goes on meanwhile. A chunk this session already offered is answered
// "not needed" at once.
func (cp *Capture) OfferData(t cas.BlobType, id cas.ID, plain []byte, answer func(need bool, err error)) {
	if !cp.firstSight(t, id) {
		answer(false, cp.Err())
		return
	}
	cp.offerLater(&cp.dataOffers, t, id, plain, func(held bool, err error) {
		if held {
			cp.HeldBlobs.Add(1)
		}
		answer(!held && err == nil, err)
	})
}

// WaitOffers implements capture.OfferingStore.
func (cp *Capture) WaitOffers() { cp.dataOffers.Wait() }

// offerLater queues the offer of plain (held, by its capacity, against
// offerBytes until answered) and counts it in wg until answer returns.
func (cp *Capture) offerLater(wg *sync.WaitGroup, t cas.BlobType, id cas.ID, plain []byte, answer func(held bool, err error)) {
	wg.Add(1)
	cp.enqueue(t, id, plain, int64(cap(plain)), false, func(held bool, err error) {
		defer wg.Done()
		answer(held, err)
	})
}

// enqueue queues an offer of plain, whose proof is made here; weight bytes
// of offerSem (the memory plain holds, its capacity) are held until it is
// answered. After an error, or once the session's offers are closed, it
// is answered with the error at once.
func (cp *Capture) enqueue(t cas.BlobType, id cas.ID, plain []byte, weight int64, urgent bool, answer func(held bool, err error)) {
	weight = min(weight, offerBytes)
	if err := cp.Err(); err != nil {
		answer(false, err)
		return
	}
	if err := cp.offerSem.Acquire(cp.ctx, weight); err != nil {
		answer(false, cp.ctxErr())
		return
	}
	req := haveReq{
		e:      wire.HaveEntry{Type: t, ID: id, Len: uint32(len(plain)), Proof: cp.prover.Proof(t, id, plain)},
		answer: answer, weight: weight, urgent: urgent,
	}
	cp.offerMu.RLock()
	defer cp.offerMu.RUnlock()
	if cp.havesClosed {
		cp.offerSem.Release(weight)
		answer(false, errors.New("capture session already committed or closed"))
		return
	}
	cp.haves <- req // the have workers drain the queue until it is closed
}

// closeHaves ends the have workers once the queue is drained; no offer
// may be made after it.
func (cp *Capture) closeHaves() {
	cp.offerMu.Lock()
	if !cp.havesClosed {
		cp.havesClosed = true
		close(cp.haves)
	}
	cp.offerMu.Unlock()
	cp.haveWG.Wait()
}

func (cp *Capture) ctxErr() error {
	if err := cp.Err(); err != nil {
		return err
	}
	return cp.ctx.Err()
}

// haveWorker sends the queued offers in have-queries: whatever is waiting
// when a query can go out goes together, so queries grow with the load and
// a lone offer is not delayed. Each offer is answered, after an error too
// (with the error, without asking the SMP), until the queue is closed.
func (cp *Capture) haveWorker() {
	defer cp.haveWG.Done()
	for first := range cp.haves {
		batch := cp.gather(first)
		err := cp.ctxErr()
		var held wire.HaveBitmap
		if err == nil {
			if held, err = cp.askHave(batch); err != nil {
				cp.setErr(err)
			}
		}
		for i, r := range batch {
			cp.offerSem.Release(r.weight)
			r.answer(err == nil && held.Has(i), err)
		}
	}
}

// gather returns first and the offers queued behind it, up to
// haveBatchMax. A batch under haveLingerBelow waits up to haveLinger for
// more, unless a caller waits for one of its answers: offers that trickle
// in (the trees of an incremental capture, one per directory the walk
// finishes) would otherwise cost a request each, and nothing in the
// capture waits for their answers but the commit.
func (cp *Capture) gather(first haveReq) []haveReq {
	batch := []haveReq{first}
	urgent := first.urgent
	var linger <-chan time.Time
	for len(batch) < haveBatchMax {
		select {
		case r, ok := <-cp.haves:
			if !ok {
				return batch
			}
			batch = append(batch, r)
			urgent = urgent || r.urgent
			continue
		default:
		}
		if urgent || len(batch) >= haveLingerBelow {
			return batch
		}
		if linger == nil {
			linger = time.After(haveLinger)
		}
		select {
		case r, ok := <-cp.haves:
			if !ok {
				return batch
			}
			batch = append(batch, r)
			urgent = urgent || r.urgent
		case <-linger:
			return batch
		}
	}
	return batch
}

func (cp *Capture) askHave(batch []haveReq) (wire.HaveBitmap, error) {
	entries := make([]wire.HaveEntry, len(batch))
	for i, r := range batch {
		entries[i] = r.e
	}
	resp, err := cp.c.do(cp.ctx, http.MethodPost, cp.path("have"), "application/octet-stream", bytes.NewReader(wire.EncodeHave(entries)))
	if err != nil {
		return nil, fmt.Errorf("ask SMP which chunks it holds: %w", err)
	}
	defer resp.Body.Close()
	want := (len(batch) + 7) / 8
	bm, err := io.ReadAll(io.LimitReader(resp.Body, int64(want)+1))
	if err != nil {
		return nil, fmt.Errorf("have answer: %w", err)
	}
	if len(bm) != want {
		return nil, fmt.Errorf("have answer of %d bytes for %d entries: %w", len(bm), len(batch), wire.ErrMalformed)
	}
	return wire.HaveBitmap(bm), nil
}

// AddBlob implements capture.Store: the blob joins the current upload
// batch, which is sent when full.
func (cp *Capture) AddBlob(t cas.BlobType, id cas.ID, c cas.Compression, stored []byte, rawLen int) error {
	if err := cp.Err(); err != nil {
		return err
	}
	cp.batchMu.Lock()
	if cp.batch == nil {
		cp.batch = cp.newBatch()
	}
	cp.batch = wire.AppendBlob(cp.batch, wire.Blob{Type: t, Compression: c, ID: id, RawLen: rawLen, Stored: stored})
	cp.batchN++
	var full []byte
	if len(cp.batch) >= uploadBatchBytes || cp.batchN >= uploadBatchBlobs {
		full, cp.batch, cp.batchN = cp.batch, nil, 0
	}
	cp.batchMu.Unlock()
	if full == nil {
		return nil
	}
	select {
	case cp.uploads <- full:
		return nil
	case <-cp.ctx.Done():
		return cp.ctxErr()
	}
}

// newBatch returns an empty batch buffer, reused when one is spare.
func (cp *Capture) newBatch() []byte {
	select {
	case b := <-cp.spare:
		return b[:0]
	default:
		return make([]byte, 0, uploadBatchBytes+cp.c.info.Chunker.Max+wire.BlobHeaderLen)
	}
}

func (cp *Capture) uploader() {
	defer cp.uploadWG.Done()
	for {
		select {
		case b, ok := <-cp.uploads:
			if !ok {
				return
			}
			if err := cp.send(b); err != nil {
				cp.setErr(err)
				return
			}
			select {
			case cp.spare <- b:
			default:
			}
		case <-cp.ctx.Done():
			return
		}
	}
}

func (cp *Capture) send(batch []byte) error {
	resp, err := cp.c.do(cp.ctx, http.MethodPost, cp.path("blobs"), "application/octet-stream", bytes.NewReader(batch))
	if err != nil {
		return fmt.Errorf("upload chunks: %w", err)
	}
	defer resp.Body.Close()
	var res wire.UploadResult
	if err := decodeJSON(resp.Body, &res); err != nil {
		return err
	}
	cp.SentBlobs.Add(int64(res.Stored + res.Duplicate))
	cp.SentBytes.Add(int64(len(batch)))
	return nil
}

// PutTree implements capture.Store: the tree is offered like a chunk and
// its ID returned at once; once the SMP answers, a tree it lacks is
// compressed and joins the upload batch. CommitRecord waits for all of
// them.
func (cp *Capture) PutTree(t *manifest.Tree) (cas.ID, error) {
	b, err := t.Encode()
	if err != nil {
		return cas.ID{}, err
	}
	id := cp.c.hasher.SumBlob(cas.BlobTree, b)
	if !cp.firstSight(cas.BlobTree, id) {
		return id, cp.Err()
	}
	cp.offerLater(&cp.treeOffers, cas.BlobTree, id, b, func(held bool, err error) {
		if err != nil {
			cp.setErr(err)
			return
		}
		if held {
			cp.HeldBlobs.Add(1)
			return
		}
		stored, comp := cas.Compress(nil, b)
		if err := cp.AddBlob(cas.BlobTree, id, comp, stored, len(b)); err != nil {
			cp.setErr(err)
		}
	})
	return id, cp.Err()
}

// TotalsLater reports whether the SMP takes the walk totals during the
// session (SendTotals), so the count can run alongside the capture.
func (cp *Capture) TotalsLater() bool { return cp.c.info.HasFeature(wire.FeatureTotalsLater) }

// SendTotals sends the walk totals (capture.Count) of this session's
// capture to an SMP that lists wire.FeatureTotalsLater; they are shown in
// its console and used for nothing else.
func (cp *Capture) SendTotals(ctx context.Context, t wire.CaptureTotals) error {
	if !cp.TotalsLater() {
		return errors.New("this SMP takes walk totals only at the session's start")
	}
	return cp.c.postJSON(ctx, cp.path("expected"), t, nil)
}

// LoadsTreesAhead tells capture that LoadTree fetches each tree's
// subtrees ahead itself (capture.TreesAhead).
func (cp *Capture) LoadsTreesAhead() {}

// LoadTree implements capture.Store: trees of the parent record.
func (cp *Capture) LoadTree(id cas.ID) (*manifest.Tree, error) {
	if cp.parent == nil {
		return nil, fmt.Errorf("tree %s: no parent record: %w", id.Short(), cas.ErrNotFound)
	}
	return cp.prev.LoadTree(id)
}

// Has implements capture.Store. It is asked only about chunks of the
// parent record, which the SMP holds while that record is live; the commit
// re-checks every reference, so a wrong answer fails the commit, never
// stores a dangling record.
func (cp *Capture) Has(cas.BlobType, cas.ID) (bool, error) { return cp.parent != nil, nil }

// CommitRecord implements capture.Store: it sends the last batch, waits
// for every upload, then commits the record.
func (cp *Capture) CommitRecord(rec *manifest.Record) (cas.ID, error) {
	if !cp.committing.CompareAndSwap(false, true) {
		return cas.ID{}, errors.New("capture session already committed or committing")
	}
	defer cp.cancel()
	// Every offer is answered, and every blob the SMP lacks is in a
	// batch, before the last batch goes.
	cp.treeOffers.Wait()
	cp.dataOffers.Wait()
	cp.closeHaves()
	cp.batchMu.Lock()
	last := cp.batch
	cp.batch, cp.batchN = nil, 0
	cp.batchMu.Unlock()
	if len(last) > 0 {
		select {
		case cp.uploads <- last:
		case <-cp.ctx.Done():
			return cas.ID{}, cp.ctxErr()
		}
	}
	close(cp.uploads)
	cp.uploadWG.Wait()
	if err := cp.Err(); err != nil {
		return cas.ID{}, err
	}
	if err := cp.ctx.Err(); err != nil {
		return cas.ID{}, err
	}
	b, err := rec.Encode()
	if err != nil {
		return cas.ID{}, err
	}
	var res wire.Committed
	resp, err := cp.c.do(cp.ctx, http.MethodPost, cp.path("commit"), "application/json", bytes.NewReader(b))
	if err != nil {
		return cas.ID{}, err
	}
	defer resp.Body.Close()
	if err := decodeJSON(resp.Body, &res); err != nil {
		return cas.ID{}, err
	}
	id, err := cas.ParseID(res.ID)
	if err != nil {
		return cas.ID{}, fmt.Errorf("commit answer %q: %w", res.ID, wire.ErrMalformed)
	}
	return id, nil
}

// Close ends the session's workers; a capture that fails calls it instead
// of CommitRecord. What was uploaded stays on the SMP, so a re-run does
// not send it again.
func (cp *Capture) Close() {
	cp.cancel()
	cp.treeOffers.Wait()
	cp.dataOffers.Wait()
	cp.closeHaves()
	cp.uploadWG.Wait()
	if cp.parent != nil {
		cp.parent.Close()
	}
}
