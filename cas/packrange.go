package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ReadRange returns n bytes of pack id from offset off, read from the
// storage in one request (one ranged GET on object storage): a reader
// that knows which blobs it needs next reads the neighbours of one pack
// together and decodes each with BlobFrom. The result may alias buf.
func (d *PackDir) ReadRange(id ID, off, n int64, buf []byte) ([]byte, error) {
	b, err := d.st.Get(context.Background(), d.Name(id), off, n, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("pack %s: range %d+%d lies beyond its end (truncated pack): %w", id.Short(), off, n, ErrCorrupt)
	}
	if err != nil {
		return nil, missing(id, "read", err)
	}
	return b, nil
}

// BlobFrom decodes and verifies blob e of pack id from span, the bytes of
// that pack from offset base that ReadRange returned: the blob must lie
// wholly inside it. The result may alias buf.
func (d *PackDir) BlobFrom(id ID, e PackEntry, span []byte, base int64, h *Hasher, buf []byte) ([]byte, error) {
	s, err := d.spanSealer(id, e, span, base)
	if err != nil {
		return nil, err
	}
	return ReadBlobWith(spanReader{span, base}, e, h, s, buf)
}

// spanSealer checks that blob e lies wholly inside span (pack id's bytes
// from offset base) and returns the sealer of that pack's blobs.
func (d *PackDir) spanSealer(id ID, e PackEntry, span []byte, base int64) (*Sealer, error) {
	if base < 0 || e.Offset < uint64(base) || e.Offset-uint64(base)+uint64(e.StoredLen) > uint64(len(span)) {
		return nil, fmt.Errorf("blob %s of pack %s is not in the range read (%d+%d)", e.ID.Short(), id.Short(), base, len(span))
	}
	if !d.clear {
		return d.sealer, nil
	}
	op, err := d.acquire(id)
	if err != nil {
		return nil, err
	}
	defer d.release(op)
	return op.sealer, nil
}

// spanReader reads a pack's bytes from the part of it held in memory.
type spanReader struct {
	b    []byte
	base int64
}

func (r spanReader) ReadAt(p []byte, off int64) (int, error) {
	if off < r.base || off-r.base > int64(len(r.b)) {
		return 0, io.EOF
	}
	n := copy(p, r.b[off-r.base:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// StoredFrom is ReadStored of blob e of pack id from span, the bytes of
// that pack from offset base that ReadRange returned: the blob as stored
// (a sealed one authenticated and opened), neither decompressed nor
// verified. The result may alias buf.
func (d *PackDir) StoredFrom(id ID, e PackEntry, span []byte, base int64, buf []byte) ([]byte, error) {
	s, err := d.spanSealer(id, e, span, base)
	if err != nil {
		return nil, err
	}
	r := spanReader{span, base}
	if s != nil {
		if e.StoredLen < SealOverhead || e.StoredLen-SealOverhead > MaxBlobSize {
			return nil, fmt.Errorf("blob %s of pack %s has a bad length: %w", e.ID.Short(), id.Short(), ErrCorrupt)
		}
		return readUnseal(r, e, s, buf[:0])
	}
	if e.StoredLen > MaxBlobSize {
		return nil, fmt.Errorf("blob %s length over limit: %w", e.ID.Short(), ErrCorrupt)
	}
	if cap(buf) < int(e.StoredLen) {
		buf = make([]byte, e.StoredLen)
	}
	buf = buf[:e.StoredLen]
	if err := readFull(r, buf, e); err != nil {
		return nil, err
	}
	return buf, nil
}
