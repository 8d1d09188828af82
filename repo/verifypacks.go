package repo

import (
	"bytes"
	"cmp"
	"context"
	"slices"

	"smp/cas"
	"smp/cas/manifest"
	"smp/index"
)

// On a store read by request (S3), verify --read-data reads the data
// chunks pack by pack before it walks the records: every chunk the
// records reference is located, the locations sorted by pack and offset,
// and neighbouring chunks read by one ranged GET (storedSpans: gaps up to
// 256 KiB, at most 8 MiB), the next read while the current is checked
// (readSpansAhead: at most three spans in memory). A pack's chunks that lie together are
// one request, not one each. A span whose read fails is read again chunk
// by chunk (checkBlob), which names each chunk's error.

// verifyDataByPack checks every data chunk of records, recording each
// one's damage (nil: sound) in checked, counting them in rep and reporting
// progress as Verify does.
func (r *Repo) verifyDataByPack(records []RecordInfo, checked map[cas.BlobKey]*Damage, packSize map[cas.ID]int64, rep *VerifyReport, progress func(int)) error {
	chunks := map[cas.ID]struct{}{}
	for _, rec := range records {
		w := manifest.Walker{Load: r, Seen: map[cas.BlobKey]struct{}{},
			Tree: func(cas.ID, string, *manifest.Tree, error) error { return nil }, // reported by Verify's walk
			Entry: func(_ string, e *manifest.Entry) error {
				for _, ch := range e.Chunks {
					chunks[ch.ID] = struct{}{}
				}
				return nil
			},
		}
		if err := w.Walk(context.Background(), rec.Tree); err != nil {
			return err
		}
	}
	record := func(k cas.BlobKey, d *Damage) {
		checked[k] = d
		if d != nil {
			rep.Damaged = append(rep.Damaged, d)
		}
		rep.Chunks++
		if progress != nil && rep.Chunks%256 == 0 {
			progress(rep.Chunks)
		}
	}
	var buf []byte
	locs := make([]index.Location, 0, len(chunks))
	for id := range chunks {
		// Located, in a pack that is there and long enough; not read.
		if d := r.checkBlob(id, cas.BlobData, false, packSize, &buf, &rep.BytesRead); d != nil {
			record(cas.BlobKey{Type: cas.BlobData, ID: id}, d)
			continue
		}
		loc, err := r.ix.Get(cas.BlobData, id)
		if err != nil {
			return err
		}
		locs = append(locs, loc)
	}
	clear(chunks)
	slices.SortFunc(locs, func(a, b index.Location) int {
		if c := bytes.Compare(a.Pack[:], b.Pack[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.Offset, b.Offset)
	})
	spans := storedSpans(locs)
	ready, stop := r.readSpansAhead(spans)
	defer stop()
	for sp := range ready {
		for _, loc := range sp.locs {
			k := loc.Key()
			if sp.err != nil {
				record(k, r.checkBlob(loc.ID, cas.BlobData, true, packSize, &buf, &rep.BytesRead))
				continue
			}
			plain, err := r.packs.BlobFrom(loc.Pack, loc.PackEntry, sp.data, sp.start, r.Hasher, buf)
			if err != nil {
				record(k, &Damage{Blob: loc.ID.String(), Type: cas.BlobData.String(), Pack: loc.Pack.String(), Reason: err.Error()})
				continue
			}
			if cap(plain) > cap(buf) {
				buf = plain[:0]
			}
			rep.BytesRead += uint64(loc.StoredLen)
			record(k, nil)
		}
		sp.data = nil
	}
	return nil
}
