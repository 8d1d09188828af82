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
// chunks pack by pack before it walks the records: the walk locates each
// chunk the records reference, once (the chunks located are in checked),
// and every verifyBatch located chunks, and at the end, sorts them by pack
// and offset and reads neighbouring chunks by one ranged GET (nextSpan:
// gaps up to 256 KiB, at most 8 MiB), the next read while the current is
// checked (readSpansAhead: at most three spans in memory). A pack's chunks
// that lie together are one request, not one each, except where a batch
// ends between them. A span whose read fails is read again chunk by chunk
// (checkBlob), which names each chunk's error.
//
// Memory: checked holds every chunk's verdict, as Verify keeps it on any
// store (a map entry of a 33-byte key and a pointer, about 60 to 110
// bytes with the map's overhead); besides it, one batch of located chunks
// (88 bytes each, at most verifyBatch: about 11 MiB), each span a
// sub-slice of it, and one entry per tree and per pack.

// verifyBatch is how many located chunks verify --read-data sorts and
// reads at a time: it bounds the located list, not the number of chunks.
var verifyBatch = 1 << 17

// verifyDataByPack checks every data chunk of records, recording each
// one's damage (nil: sound) in checked, counting them in rep and reporting
// progress as Verify does.
func (r *Repo) verifyDataByPack(records []RecordInfo, checked map[cas.BlobKey]*Damage, packSize map[cas.ID]int64, rep *VerifyReport, progress func(int)) error {
	v := &packVerifier{r: r, checked: checked, packSize: packSize, rep: rep, progress: progress}
	trees := map[cas.ID]struct{}{} // entered: a subtree common to several records is walked once
	for _, rec := range records {
		w := manifest.Walker{Load: r,
			Enter: func(id cas.ID, _ string) error {
				if _, ok := trees[id]; ok {
					return manifest.SkipTree
				}
				trees[id] = struct{}{}
				return nil
			},
			Tree: func(cas.ID, string, *manifest.Tree, error) error { return nil }, // reported by Verify's walk
			Entry: func(_ string, e *manifest.Entry) error {
				for _, ch := range e.Chunks {
					if err := v.locate(ch.ID); err != nil {
						return err
					}
				}
				if len(v.located) >= verifyBatch {
					v.readLocated()
				}
				return nil
			},
		}
		if err := w.Walk(context.Background(), rec.Tree); err != nil {
			return err
		}
	}
	v.readLocated()
	return nil
}

// packVerifier is the state of one verifyDataByPack.
type packVerifier struct {
	r        *Repo
	checked  map[cas.BlobKey]*Damage
	packSize map[cas.ID]int64
	rep      *VerifyReport
	progress func(int)
	located  []index.Location // in checked (nil) but not yet read
	buf      []byte
}

// record sets chunk k's verdict and counts it.
func (v *packVerifier) record(k cas.BlobKey, d *Damage) {
	v.checked[k] = d
	if d != nil {
		v.rep.Damaged = append(v.rep.Damaged, d)
	}
	v.rep.Chunks++
	if v.progress != nil && v.rep.Chunks%256 == 0 {
		v.progress(v.rep.Chunks)
	}
}

// locate adds chunk id to the located list unless checked has it: when
// it is not located in a pack that is there and long enough (not read),
// its damage is recorded at once.
func (v *packVerifier) locate(id cas.ID) error {
	k := cas.BlobKey{Type: cas.BlobData, ID: id}
	if _, ok := v.checked[k]; ok {
		return nil
	}
	if d := v.r.checkBlob(id, cas.BlobData, false, v.packSize, &v.buf, &v.rep.BytesRead); d != nil {
		v.record(k, d)
		return nil
	}
	loc, err := v.r.ix.Get(cas.BlobData, id)
	if err != nil {
		return err
	}
	v.checked[k] = nil // taken: its verdict is recorded when it is read
	v.located = append(v.located, loc)
	return nil
}

// readLocated sorts the located chunks by pack and offset, reads and
// checks them span by span, records each verdict, and empties the list.
func (v *packVerifier) readLocated() {
	slices.SortFunc(v.located, func(a, b index.Location) int {
		if c := bytes.Compare(a.Pack[:], b.Pack[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.Offset, b.Offset)
	})
	r, rep := v.r, v.rep
	ready, stop := r.readSpansAhead(v.located)
	defer stop()
	for sp := range ready {
		for _, loc := range sp.locs {
			k := loc.Key()
			if sp.err != nil {
				v.record(k, r.checkBlob(loc.ID, cas.BlobData, true, v.packSize, &v.buf, &rep.BytesRead))
				continue
			}
			plain, err := r.packs.BlobFrom(loc.Pack, loc.PackEntry, sp.data, sp.start, r.Hasher, v.buf)
			if err != nil {
				v.record(k, &Damage{Blob: loc.ID.String(), Type: cas.BlobData.String(), Pack: loc.Pack.String(), Reason: err.Error()})
				continue
			}
			if cap(plain) > cap(v.buf) {
				v.buf = plain[:0]
			}
			rep.BytesRead += uint64(loc.StoredLen)
			v.record(k, nil)
		}
		sp.data = nil
	}
	v.located = v.located[:0]
}
