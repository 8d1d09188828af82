package cas

import (
	"bufio"
	"container/list"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// PackDir is the directory of pack files of a store:
//
//	packs/<first two hex digits>/<pack id>.pack
//	packs/tmp/<random>.tmp   (packs being written; never read)
//
// A pack becomes visible under its final name only after its trailer is
// written and the file and its directory are fsynced, so a crash leaves at
// most a stray temporary file. PackDir is safe for concurrent use.
type PackDir struct {
	dir string

	mu    sync.Mutex
	open  map[ID]*list.Element // of *openPack, LRU bounded by maxOpen
	lru   *list.List
	limit int
}

type openPack struct {
	id   ID
	f    *os.File
	size int64
	refs int
}

// NewPackDir returns the pack directory at dir, creating it when missing.
func NewPackDir(dir string) (*PackDir, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("create pack directory: %w", err)
	}
	return &PackDir{dir: dir, open: map[ID]*list.Element{}, lru: list.New(), limit: 64}, nil
}

// Path returns where pack id lives.
func (d *PackDir) Path(id ID) string {
	s := id.String()
	return filepath.Join(d.dir, s[:2], s+".pack")
}

// PendingPack is a pack being written to a temporary file.
type PendingPack struct {
	*PackWriter
	dir *PackDir
	f   *os.File
	buf *bufio.Writer
}

// Create starts a new pack in a temporary file.
func (d *PackDir) Create() (*PendingPack, error) {
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	f, err := os.OpenFile(filepath.Join(d.dir, "tmp", hex.EncodeToString(rnd[:])+".tmp"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create pack: %w", err)
	}
	buf := bufio.NewWriterSize(f, 1<<20)
	w, err := NewPackWriter(buf)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &PendingPack{PackWriter: w, dir: d, f: f, buf: buf}, nil
}

// Unwritten returns an upper bound of the bytes Commit still writes to
// the file: what is buffered, and the trailer.
func (p *PendingPack) Unwritten() int64 {
	return int64(p.buf.Buffered()) + int64(p.Count())*PackEntrySize + PackFooterSize
}

// Abort discards the pack.
func (p *PendingPack) Abort() {
	p.f.Close()
	os.Remove(p.f.Name())
}

// Commit writes the trailer, fsyncs and renames the pack to its final name.
// Only after Commit returns may the pack's blobs be indexed.
func (p *PendingPack) Commit() (ID, []PackEntry, int64, error) {
	id, entries, err := p.Finish()
	if err == nil {
		err = p.buf.Flush()
	}
	if err == nil {
		err = p.f.Sync()
	}
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p.f.Name())
		return ID{}, nil, 0, fmt.Errorf("write pack: %w", err)
	}
	final := p.dir.Path(id)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		os.Remove(p.f.Name())
		return ID{}, nil, 0, fmt.Errorf("create pack directory: %w", err)
	}
	if err := os.Rename(p.f.Name(), final); err != nil {
		os.Remove(p.f.Name())
		return ID{}, nil, 0, fmt.Errorf("rename pack into place: %w", err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return ID{}, nil, 0, err
	}
	return id, entries, int64(p.Size()), nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
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
	f, err := os.Open(d.Path(id))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("pack %s is missing: %w", id.Short(), ErrNotFound)
		}
		return nil, fmt.Errorf("open pack %s: %w", id.Short(), err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat pack %s: %w", id.Short(), err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.open[id]; ok { // lost a race; use the winner's handle
		f.Close()
		op := el.Value.(*openPack)
		op.refs++
		return op, nil
	}
	op := &openPack{id: id, f: f, size: st.Size(), refs: 1}
	d.open[id] = d.lru.PushFront(op)
	for d.lru.Len() > d.limit {
		back := d.lru.Back()
		victim := back.Value.(*openPack)
		if victim.refs > 0 {
			break
		}
		d.lru.Remove(back)
		delete(d.open, victim.id)
		victim.f.Close()
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
	return ReadBlob(op.f, e, h, buf)
}

// ReadStored reads blob e of pack id as stored (compressed or raw) without
// decompressing or verifying it: a server passes it on to a client, which
// verifies what it receives anyway. The result may alias buf.
func (d *PackDir) ReadStored(id ID, e PackEntry, buf []byte) ([]byte, error) {
	if e.StoredLen > MaxBlobSize {
		return nil, fmt.Errorf("blob %s length over limit: %w", e.ID.Short(), ErrCorrupt)
	}
	op, err := d.acquire(id)
	if err != nil {
		return nil, err
	}
	defer d.release(op)
	if e.Offset+uint64(e.StoredLen) > uint64(op.size) {
		return nil, fmt.Errorf("blob %s lies beyond the end of pack %s (truncated pack): %w", e.ID.Short(), id.Short(), ErrCorrupt)
	}
	if cap(buf) < int(e.StoredLen) {
		buf = make([]byte, e.StoredLen)
	}
	buf = buf[:e.StoredLen]
	if err := readFull(op.f, buf, e); err != nil {
		return nil, err
	}
	return buf, nil
}

// Stat returns the size of pack id.
func (d *PackDir) Stat(id ID) (int64, error) {
	st, err := os.Stat(d.Path(id))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("pack %s is missing: %w", id.Short(), ErrNotFound)
		}
		return 0, fmt.Errorf("stat pack %s: %w", id.Short(), err)
	}
	return st.Size(), nil
}

// ReadTrailer reads the trailer of pack id.
func (d *PackDir) ReadTrailer(id ID) ([]PackEntry, error) {
	f, err := os.Open(d.Path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pack %s is missing: %w", id.Short(), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open pack %s: %w", id.Short(), err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat pack %s: %w", id.Short(), err)
	}
	entries, got, err := ReadTrailer(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", id.Short(), err)
	}
	if got != id {
		return nil, fmt.Errorf("pack %s trailer hashes to %s: %w", id.Short(), got.Short(), ErrCorrupt)
	}
	return entries, nil
}

// Walk calls fn for every committed pack with its size, in no set order.
func (d *PackDir) Walk(fn func(id ID, size int64) error) error {
	return filepath.WalkDir(d.dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() {
			if de.Name() == "tmp" {
				return filepath.SkipDir
			}
			return nil
		}
		name, ok := strings.CutSuffix(de.Name(), ".pack")
		if !ok {
			return nil
		}
		id, err := ParseID(name)
		if err != nil {
			return nil // not ours; verify reports stray files separately
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		return fn(id, info.Size())
	})
}

// Close closes every cached descriptor.
func (d *PackDir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, el := range d.open {
		el.Value.(*openPack).f.Close()
		delete(d.open, id)
	}
	d.lru.Init()
	return nil
}
