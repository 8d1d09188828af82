package cas

import (
	"bufio"
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"smp/keys"

	"smp/storage"
	"smp/storage/local"
)

// PackDir is the pack files of a store, kept in a storage.Storage:
//
//	packs/<first two hex digits>/<pack id>.pack
//
// (the names are relative to the storage, under the PackDir's prefix). A
// pack is written as a stream (storage.NewWriter: on a local directory a
// temporary file, fsynced and renamed) and becomes visible under its final
// name only after its trailer is written and it is durable, so a crash
// leaves at most a stray temporary object. PackDir is safe for concurrent
// use. Its methods take no context: the local storage ignores it.
type PackDir struct {
	st     storage.Storage
	prefix string
	sealer *Sealer // an encrypted store's; nil: packs in clear
	// clear, with a sealer, reads unsealed (version 1) packs too: a store
	// being converted to encryption (smp encrypt) holds both until every
	// clear pack is rewritten. Packs are still written sealed.
	clear bool

	mu    sync.Mutex
	open  map[ID]*list.Element // of *openPack, LRU bounded by maxOpen
	lru   *list.List
	limit int
	// expect is the size a new pack is expected to reach (ExpectSize).
	expect int64
}

type openPack struct {
	id     ID
	obj    storage.Object
	size   int64
	refs   int
	sealer *Sealer // what opens its blobs: d.sealer, or nil for a clear pack of a mixed store
}

// NewPacks returns the packs kept in st under prefix ("packs/" in a store).
// Close drops cached handles but leaves st open: its owner closes it.
func NewPacks(st storage.Storage, prefix string) *PackDir {
	return &PackDir{st: st, prefix: prefix, open: map[ID]*list.Element{}, lru: list.New(), limit: 64}
}

// Seal makes d write sealed packs with s and read only sealed packs
// (a nil s: unsealed packs, as for an unencrypted store). It must be
// called before d is used. It returns d.
func (d *PackDir) Seal(s *Sealer) *PackDir {
	d.sealer = s
	return d
}

// ExpectSize tells d that the packs it creates grow to about n bytes
// (the store's pack size): a storage that buffers a pack until it is
// complete (object storage) reserves that much at once. It must be called
// before d is used. It returns d.
func (d *PackDir) ExpectSize(n int64) *PackDir {
	d.expect = n
	return d
}

// Sealer returns the sealer of d's packs, nil when they are in clear.
func (d *PackDir) Sealer() *Sealer { return d.sealer }

// AcceptClear makes a sealing d read unsealed (version 1) packs as well,
// each pack as its header says: the mixed state of a store being
// converted to encryption. It must be called before d is used. It
// returns d.
func (d *PackDir) AcceptClear() *PackDir {
	d.clear = d.sealer != nil
	return d
}

// sealerOf returns what opens the blobs and trailer of the pack r (of
// that size): d's sealer, or nil for a clear pack d accepts.
func (d *PackDir) sealerOf(r io.ReaderAt) (*Sealer, error) {
	if !d.clear {
		return d.sealer, nil
	}
	v, err := PackVersionOf(r)
	if err != nil {
		return nil, err
	}
	if v == PackVersion {
		return nil, nil
	}
	if err := d.sealer.accepts(v); err != nil {
		return nil, err
	}
	return d.sealer, nil
}

// KeyOf reports whether pack id is sealed and with which master key (the
// key that sealed its trailer, which is the key that sealed every blob in
// it: a pack writer seals with one sealer's current key throughout).
func (d *PackDir) KeyOf(id ID) (sealed bool, kid keys.KeyID, err error) {
	obj, err := d.Open(id)
	if err != nil {
		return false, 0, err
	}
	defer obj.Close()
	v, err := PackVersionOf(obj)
	if err != nil || v == PackVersion {
		return false, 0, err
	}
	size := obj.Size()
	footer := make([]byte, PackFooterSize)
	if _, err := obj.ReadAt(footer, size-PackFooterSize); err != nil {
		return false, 0, fmt.Errorf("pack %s: read footer: %w", id.Short(), err)
	}
	n, err := SealedTrailerLen(footer, size)
	if err != nil {
		return false, 0, fmt.Errorf("pack %s: %w", id.Short(), err)
	}
	var b [4]byte
	if _, err := obj.ReadAt(b[:], size-n); err != nil {
		return false, 0, fmt.Errorf("pack %s: read trailer: %w", id.Short(), err)
	}
	return true, keys.KeyID(binary.LittleEndian.Uint32(b[:])), nil
}

// NewPackDir returns the packs of the local directory dir (packs at
// dir/xx/id.pack, temporary files in dir/tmp), creating it when missing:
// for tools and tests that look at a store's pack directory alone.
func NewPackDir(dir string) (*PackDir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create pack directory: %w", err)
	}
	st, err := local.Open(dir, local.Options{TempDir: "tmp"})
	if err != nil {
		return nil, fmt.Errorf("create pack directory: %w", err)
	}
	return NewPacks(st, ""), nil
}

// Name returns the storage name of pack id.
func (d *PackDir) Name(id ID) string {
	s := id.String()
	return d.prefix + s[:2] + "/" + s + ".pack"
}

// Path returns the local file of pack id, for tests and for messages that
// name a damaged file; "" when the storage is not a local directory.
func (d *PackDir) Path(id ID) string {
	if l, ok := d.st.(interface{ Path(string) string }); ok {
		return l.Path(d.Name(id))
	}
	return ""
}

// missing maps the storage's not-found to ErrNotFound, naming the pack.
func missing(id ID, op string, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("pack %s is missing: %w", id.Short(), ErrNotFound)
	}
	return fmt.Errorf("%s pack %s: %w", op, id.Short(), err)
}

// PendingPack is a pack being written.
type PendingPack struct {
	*PackWriter
	dir *PackDir
	w   storage.Writer
	buf *bufio.Writer // nil when w gathers writes itself (storage.Gatherer)
}

// packWriteBuffer is what a pending pack buffers before it writes to a
// storage writer that does not gather writes itself (a local file of an
// object expected to be small). Every such pack open for writing or
// waiting for its commit holds one (a repo writes data and trees into two
// packs, and queues full ones for its committer).
const packWriteBuffer = 256 << 10

// Create starts a new pack.
func (d *PackDir) Create() (*PendingPack, error) {
	sw, err := storage.NewWriterSize(context.Background(), d.st, d.expect)
	if err != nil {
		return nil, fmt.Errorf("create pack: %w", err)
	}
	var out io.Writer = sw
	var buf *bufio.Writer
	if !storage.Gathers(sw) {
		buf = bufio.NewWriterSize(sw, packWriteBuffer)
		out = buf
	}
	w, err := NewSealedPackWriter(out, d.sealer)
	if err != nil {
		sw.Abort()
		return nil, err
	}
	return &PendingPack{PackWriter: w, dir: d, w: sw, buf: buf}, nil
}

// Unwritten returns an upper bound of the bytes Commit still writes to a
// local file: what is buffered (here or in a gathering storage writer),
// and the trailer.
func (p *PendingPack) Unwritten() int64 {
	var n int64
	if p.buf != nil {
		n = int64(p.buf.Buffered())
	} else if g, ok := p.w.(storage.Gatherer); ok {
		n = g.Buffered()
	}
	return n + int64(p.Count())*PackEntrySize + PackFooterSize + SealOverhead
}

// Abort discards the pack.
func (p *PendingPack) Abort() { p.w.Abort() }

// Commit writes the trailer and stores the pack durably under its final
// name. Only after Commit returns may the pack's blobs be indexed.
func (p *PendingPack) Commit() (ID, []PackEntry, int64, error) {
	id, entries, err := p.Finish()
	if err == nil && p.buf != nil {
		err = p.buf.Flush()
	}
	if err != nil {
		p.w.Abort()
		return ID{}, nil, 0, fmt.Errorf("write pack: %w", err)
	}
	if err := p.w.Commit(context.Background(), p.dir.Name(id)); err != nil {
		return ID{}, nil, 0, fmt.Errorf("write pack: %w", err)
	}
	return id, entries, int64(p.Size()), nil
}

// acquire returns an open handle to pack id from a small LRU of descriptors,
// so restores do not reopen a pack per chunk yet never hold unbounded fds.
func (d *PackDir) acquire(id ID) (*openPack, error) {
	d.mu.Lock()
	if el, ok := d.open[id]; ok {
		op := el.Value.(*openPack)
		op.refs++
		d.lru.MoveToFront(el)
		d.mu.Unlock()
		return op, nil
	}
	d.mu.Unlock()
	obj, err := storage.Open(context.Background(), d.st, d.Name(id))
	if err != nil {
		return nil, missing(id, "open", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.open[id]; ok { // lost a race; use the winner's handle
		obj.Close()
		op := el.Value.(*openPack)
		op.refs++
		return op, nil
	}
	s, err := d.sealerOf(obj)
	if err != nil {
		obj.Close()
		return nil, fmt.Errorf("pack %s: %w", id.Short(), err)
	}
	op := &openPack{id: id, obj: obj, size: obj.Size(), refs: 1, sealer: s}
	d.open[id] = d.lru.PushFront(op)
	for d.lru.Len() > d.limit {
		back := d.lru.Back()
		victim := back.Value.(*openPack)
		if victim.refs > 0 {
			break
		}
		d.lru.Remove(back)
		delete(d.open, victim.id)
		victim.obj.Close()
	}
	return op, nil
}

func (d *PackDir) release(op *openPack) {
	d.mu.Lock()
	op.refs--
	d.mu.Unlock()
}

// ReadBlob reads and verifies blob e of pack id.
func (d *PackDir) ReadBlob(id ID, e PackEntry, h *Hasher, buf []byte) ([]byte, error) {
	op, err := d.acquire(id)
	if err != nil {
		return nil, err
	}
	defer d.release(op)
	if e.Offset+uint64(e.StoredLen) > uint64(op.size) {
		return nil, fmt.Errorf("blob %s lies beyond the end of pack %s (truncated pack): %w", e.ID.Short(), id.Short(), ErrCorrupt)
	}
	return ReadBlobWith(op.obj, e, h, op.sealer, buf)
}

// ReadStored reads blob e of pack id as stored (compressed or raw) without
// decompressing or verifying it: a server passes it on to a client, which
// verifies what it receives anyway. A sealed blob is authenticated and
// opened: the result is its compressed form. The result may alias buf.
func (d *PackDir) ReadStored(id ID, e PackEntry, buf []byte) ([]byte, error) {
	op, err := d.acquire(id)
	if err != nil {
		return nil, err
	}
	defer d.release(op)
	if op.sealer != nil {
		if e.StoredLen < SealOverhead || e.StoredLen-SealOverhead > MaxBlobSize || e.Offset+uint64(e.StoredLen) > uint64(op.size) {
			return nil, fmt.Errorf("blob %s lies beyond the end of pack %s or has a bad length: %w", e.ID.Short(), id.Short(), ErrCorrupt)
		}
		return readUnseal(op.obj, e, op.sealer, buf[:0])
	}
	if e.StoredLen > MaxBlobSize {
		return nil, fmt.Errorf("blob %s length over limit: %w", e.ID.Short(), ErrCorrupt)
	}
	if e.Offset+uint64(e.StoredLen) > uint64(op.size) {
		return nil, fmt.Errorf("blob %s lies beyond the end of pack %s (truncated pack): %w", e.ID.Short(), id.Short(), ErrCorrupt)
	}
	if cap(buf) < int(e.StoredLen) {
		buf = make([]byte, e.StoredLen)
	}
	buf = buf[:e.StoredLen]
	if err := readFull(op.obj, buf, e); err != nil {
		return nil, err
	}
	return buf, nil
}

// Unseal returns the stored (compressed) form of blob e read as raw bytes
// from pack id, authenticating it when that pack is sealed; for a pack in
// clear it returns raw itself. The result may alias buf.
func (d *PackDir) Unseal(id ID, e PackEntry, raw, buf []byte) ([]byte, error) {
	s := d.sealer
	if d.clear {
		op, err := d.acquire(id)
		if err != nil {
			return nil, err
		}
		s = op.sealer
		d.release(op)
	}
	if s == nil {
		return raw, nil
	}
	return s.OpenBlob(buf[:0], e, raw)
}

// Stat returns the size of pack id.
func (d *PackDir) Stat(id ID) (int64, error) {
	info, err := d.Info(id)
	return info.Size, err
}

// Info returns the size of pack id and when it was written, by the
// storage's clock.
func (d *PackDir) Info(id ID) (storage.Info, error) {
	info, err := d.st.Stat(context.Background(), d.Name(id))
	if err != nil {
		return storage.Info{}, missing(id, "stat", err)
	}
	return info, nil
}

// Open returns a handle for reading pack id, which the caller closes.
func (d *PackDir) Open(id ID) (storage.Object, error) {
	obj, err := storage.Open(context.Background(), d.st, d.Name(id))
	if err != nil {
		return nil, missing(id, "open", err)
	}
	return obj, nil
}

// Remove deletes pack id; a missing pack is ErrNotFound.
func (d *PackDir) Remove(id ID) error {
	if err := d.st.Delete(context.Background(), d.Name(id)); err != nil {
		return missing(id, "delete", err)
	}
	return nil
}

// ReadTrailer reads the trailer of pack id.
func (d *PackDir) ReadTrailer(id ID) ([]PackEntry, error) {
	obj, err := d.Open(id)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	s, err := d.sealerOf(obj)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", id.Short(), err)
	}
	entries, got, err := ReadTrailerWith(obj, obj.Size(), s)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", id.Short(), err)
	}
	if got != id {
		return nil, fmt.Errorf("pack %s trailer hashes to %s: %w", id.Short(), got.Short(), ErrCorrupt)
	}
	return entries, nil
}

// Walk calls fn for every committed pack with its size, in ascending ID
// order. Objects under the prefix that are not named as packs are skipped
// (verify reports stray files separately).
func (d *PackDir) Walk(fn func(id ID, size int64) error) error {
	return d.WalkInfo(func(id ID, info storage.Info) error { return fn(id, info.Size) })
}

// WalkInfo is Walk with each pack's storage Info (its size, and when it
// was written by the storage's clock).
func (d *PackDir) WalkInfo(fn func(id ID, info storage.Info) error) error {
	return storage.Walk(context.Background(), d.st, d.prefix, func(info storage.Info) error {
		base := info.Name[strings.LastIndexByte(info.Name, '/')+1:]
		name, ok := strings.CutSuffix(base, ".pack")
		if !ok {
			return nil
		}
		id, err := ParseID(name)
		if err != nil {
			return nil
		}
		return fn(id, info)
	})
}

// Close closes every cached handle (the PackDir stays usable: handles
// are opened again as needed), not the storage.
func (d *PackDir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, el := range d.open {
		el.Value.(*openPack).obj.Close()
		delete(d.open, id)
	}
	d.lru.Init()
	return nil
}
