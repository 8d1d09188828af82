package repo

import (
	"smp/index"
)

// storedSpan is one ranged read of neighbouring blobs for ReadStoredAll.
type storedSpan struct {
	locs       []index.Location
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
	spans := storedSpans(locs)
	ready, stop := r.readSpansAhead(spans)
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

// storedSpans groups locs (in pack order) into ranged reads.
// readSpansAhead reads spans in order into their data (or err), ahead of
// the consumer: at most three spans' bytes are held at once (the one being
// consumed, one waiting in ready, one being read). ready is closed after
// the last span; stop, which the consumer must call, ends the reads early.
func (r *Repo) readSpansAhead(spans []*storedSpan) (ready <-chan *storedSpan, stop func()) {
	out := make(chan *storedSpan, 1)
	done := make(chan struct{})
	go func() {
		defer close(out)
		for _, sp := range spans {
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

func storedSpans(locs []index.Location) []*storedSpan {
	var out []*storedSpan
	var cur *storedSpan
	for _, loc := range locs {
		off, end := int64(loc.Offset), int64(loc.Offset)+int64(loc.StoredLen)
		if cur != nil && loc.Pack == cur.locs[0].Pack && off >= cur.end && off-cur.end <= maxGap && end-cur.start <= maxSpan {
			cur.locs = append(cur.locs, loc)
			cur.end = end
			continue
		}
		cur = &storedSpan{locs: []index.Location{loc}, start: off, end: end}
		out = append(out, cur)
	}
	return out
}
