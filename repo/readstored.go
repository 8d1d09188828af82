package repo

import (
	"smp/index"
)

// storedSpan is one ranged read of neighbouring blobs for ReadStoredAll
// and verify --read-data.
type storedSpan struct {
	locs       []index.Location // a sub-slice of the locations read, not a copy
	start, end int64
	data       []byte
	err        error
}

// ReadStoredAll calls each with every blob of locs as stored (ReadStored),
// in order, and stops at the first error. Given in pack order (by pack,
// then offset), on a store read by request (S3) the neighbouring blobs of
// a pack are read by one ranged request (gaps up to 256 KiB, at most
// 8 MiB), the next read while each handles the current: at most three
// spans in memory. A span that fails is read again blob by blob, which
// reports the error. The slice given to each is valid only during the
// call.
func (r *Repo) ReadStoredAll(locs []index.Location, each func(index.Location, []byte) error) error {
	var buf []byte
	one := func(loc index.Location) error {
		stored, err := r.ReadStored(loc, buf)
		if err != nil {
			return err
		}
		buf = stored[:0]
		return each(loc, stored)
	}
	if r.ahead == nil {
		for _, loc := range locs {
			if err := one(loc); err != nil {
				return err
			}
		}
		return nil
	}
	ready, stop := r.readSpansAhead(locs)
	defer stop()
	for sp := range ready {
		for _, loc := range sp.locs {
			if sp.err != nil {
				if err := one(loc); err != nil {
					return err
				}
				continue
			}
			stored, err := r.packs.StoredFrom(loc.Pack, loc.PackEntry, sp.data, sp.start, buf)
			if err != nil {
				return err
			}
			buf = stored[:0]
			if err := each(loc, stored); err != nil {
				return err
			}
		}
	}
	return nil
}

// readSpansAhead reads the spans of locs (in pack order; nextSpan) in
// order into their data (or err), ahead of the consumer: at most three
// spans' bytes are held at once (the one being consumed, one waiting in
// ready, one being read). Each span is cut from locs as it is read, its
// locs a sub-slice of locs: nothing per blob is copied or held besides
// locs. ready is closed after the last span; stop, which the consumer must
// call, ends the reads early. locs must not change until ready is closed
// or stop called.
func (r *Repo) readSpansAhead(locs []index.Location) (ready <-chan *storedSpan, stop func()) {
	out := make(chan *storedSpan, 1)
	done := make(chan struct{})
	go func() {
		defer close(out)
		for rest := locs; len(rest) > 0; {
			sp := nextSpan(rest)
			rest = rest[len(sp.locs):]
			sp.data, sp.err = r.packs.ReadRange(sp.locs[0].Pack, sp.start, sp.end-sp.start, nil)
			select {
			case out <- sp:
			case <-done:
				return
			}
		}
	}()
	return out, func() { close(done) }
}

// nextSpan returns the first ranged read of locs (in pack order, not
// empty): the blobs that follow the first in its pack, with gaps up to
// maxGap, up to maxSpan bytes in all. Its locs is locs[:n], not a copy.
func nextSpan(locs []index.Location) *storedSpan {
	first := locs[0]
	sp := &storedSpan{start: int64(first.Offset), end: int64(first.Offset) + int64(first.StoredLen)}
	n := 1
	for ; n < len(locs); n++ {
		loc := locs[n]
		off, end := int64(loc.Offset), int64(loc.Offset)+int64(loc.StoredLen)
		if loc.Pack != first.Pack || off < sp.end || off-sp.end > maxGap || end-sp.start > maxSpan {
			break
		}
		sp.end = end
	}
	sp.locs = locs[:n:n]
	return sp
}
