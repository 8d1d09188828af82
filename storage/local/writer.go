package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"unsafe"

	"smp/storage"
)

// directBuffer is what a large object's writer holds before it writes:
// one write(2) per directBuffer bytes, and with O_DIRECT the unit the
// device is handed. It is a multiple of every alignment accepted for
// direct writes (directAlignment).
const directBuffer = 1 << 20

// directMin is the expected size from which a writer buffers and tries
// O_DIRECT: smaller objects (records, index files) take the plain path.
const directMin = directBuffer

// NewWriter starts an object in a temporary file.
func (s *Storage) NewWriter(context.Context) (storage.Writer, error) { return s.newWriter() }

// NewWriterSize starts an object expected to be about size bytes. From
// directMin bytes it is written through an aligned buffer with O_DIRECT
// when the file system accepts it, so a pack written once and read later
// does not pass through (and evict) the page cache; else as NewWriter.
func (s *Storage) NewWriterSize(_ context.Context, size int64) (storage.Writer, error) {
	w, err := s.newWriter()
	if err != nil || size < directMin {
		return w, err
	}
	if !s.noDirect {
		if align, ok := setDirect(w.f); ok {
			w.buf = getBuffer(align)
			w.align = align
			w.bg = w.background(getBuffer(align))
			return w, nil
		}
	}
	w.buf = getBuffer(1)
	return w, nil
}

// writer writes an object to a temporary file. With a buffer (buf not
// nil) the file holds the first written bytes and buf the rest, in order;
// while the file is in direct mode (align > 0) every write to it is a
// whole number of align-byte blocks from buf, which starts on an aligned
// address, at an aligned offset.
type writer struct {
	s     *Storage
	f     *os.File
	tmp   string // name of the temporary file in s.root
	buf   []byte
	align int   // O_DIRECT is set on f; 0: plain writes
	err   error // a failed write: the writer only aborts or fails to commit
	bg    *background
}

func (s *Storage) newWriter() (*writer, error) {
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	tmp := s.tmp + "/" + hex.EncodeToString(rnd[:]) + ".tmp"
	f, err := s.root.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY|openFlags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create temporary file: %w", err)
	}
	return &writer{s: s, f: f, tmp: tmp}, nil
}

// buffers keeps the buffers of finished writers (*[]byte of capacity
// directBuffer) for the next, so a capture's packs do not each allocate
// theirs.
var buffers sync.Pool

// getBuffer returns an empty buffer of capacity directBuffer starting at
// a multiple of align.
func getBuffer(align int) []byte {
	if b, ok := buffers.Get().(*[]byte); ok {
		if uintptr(unsafe.Pointer(unsafe.SliceData(*b)))&uintptr(align-1) == 0 {
			return (*b)[:0]
		}
	}
	return alignedBuffer(directBuffer, max(align, 4096))
}

// putBuffer gives b, no longer used, to the next writer.
func putBuffer(b []byte) {
	if cap(b) == directBuffer {
		buffers.Put(&b)
	}
}

// alignedBuffer returns an empty slice of capacity n whose first byte is
// at a multiple of align (a power of two).
func alignedBuffer(n, align int) []byte {
	b := make([]byte, n+align)
	off := int(uintptr(unsafe.Pointer(&b[0])) & uintptr(align-1))
	if off > 0 {
		off = align - off
	}
	return b[off : off : off+n]
}

func (w *writer) Write(p []byte) (int, error) {
	if w.buf == nil {
		return w.f.Write(p)
	}
	if w.bg != nil && w.bg.failed.Load() {
		w.wait()
	}
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		c := min(len(p), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, p[:c]...)
		p, n = p[c:], n+c
		if len(w.buf) < cap(w.buf) {
			continue
		}
		if w.bg != nil {
			w.bg.full <- w.buf
			w.buf = <-w.bg.free
		} else if err := w.flush(len(w.buf)); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Gathers reports whether w writes through a buffer of directBuffer
// bytes (an object expected to reach directMin bytes).
func (w *writer) Gathers() bool { return w.buf != nil }

// Buffered is what buf holds, and the full buffer the background writer
// has not given back yet, if any: of its two buffers, the one that is
// neither buf nor waiting in free is queued or being written. A buffer
// given back just after the look is counted once more, never less.
func (w *writer) Buffered() int64 {
	n := int64(len(w.buf))
	if w.bg != nil && len(w.bg.free) == 0 {
		n += directBuffer
	}
	return n
}

// flush writes the first n buffered bytes (a multiple of align in direct
// mode) and keeps the rest at the start of buf. A direct write the file
// system refuses (EINVAL) is done again without O_DIRECT from the first
// byte it did not write, so the file gets every byte once.
func (w *writer) flush(n int) error {
	if err := w.writeAll(w.buf[:n]); err != nil {
		w.err = err
		return err
	}
	w.buf = w.buf[:copy(w.buf, w.buf[n:])]
	return nil
}

// writeAll writes b to the file, falling back from direct mode as flush
// says.
func (w *writer) writeAll(b []byte) error {
	done, err := w.write(b)
	if err != nil && w.align > 0 && errors.Is(err, errDirectRefused) {
		if err = w.undirect(); err == nil {
			_, err = w.f.Write(b[done:])
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", w.tmp, err)
	}
	return nil
}

// write is f.Write; in direct mode through writeDirect.
func (w *writer) write(b []byte) (int, error) {
	if w.align > 0 {
		return writeDirect(w.f, b)
	}
	return w.f.Write(b)
}

// undirect turns the file's direct mode off: later writes may be of any
// length.
func (w *writer) undirect() error {
	if err := clearDirect(w.f); err != nil {
		return err
	}
	w.align = 0
	return nil
}

// background writes the full buffers of a direct-mode writer in order
// from a goroutine, so the wait for the device overlaps the filling of
// the next buffer. The goroutine owns f and align until done closes.
type background struct {
	full   chan []byte // buffers to write, in order
	free   chan []byte // buffers written (or dropped after a failure): two in all
	done   chan struct{}
	err    error       // the first failed write; read after done closes
	failed atomic.Bool // err is set: Write fails early
}

func (w *writer) background(spare []byte) *background {
	bg := &background{full: make(chan []byte, 1), free: make(chan []byte, 2), done: make(chan struct{})}
	bg.free <- spare
	go func() {
		defer close(bg.done)
		for b := range bg.full {
			if bg.err == nil {
				if bg.err = w.writeAll(b); bg.err != nil {
					bg.failed.Store(true)
				}
			}
			bg.free <- b[:0]
		}
	}()
	return bg
}

// wait stops the background writer after its last write and releases
// the spare buffer.
func (w *writer) wait() {
	if w.bg != nil {
		close(w.bg.full)
		<-w.bg.done
		if w.err == nil {
			w.err = w.bg.err
		}
		putBuffer(<-w.bg.free)
		w.bg = nil
	}
}

// release gives the buffer back once nothing is left in it to write.
func (w *writer) release() {
	if w.buf != nil {
		putBuffer(w.buf)
		w.buf = nil
	}
}

// finish writes what is buffered: the whole blocks directly, then the
// tail after leaving direct mode.
func (w *writer) finish() error {
	w.wait()
	if w.err != nil || w.buf == nil {
		return w.err
	}
	if w.align > 0 {
		if n := len(w.buf) &^ (w.align - 1); n > 0 {
			if err := w.flush(n); err != nil {
				return err
			}
		}
		if w.align > 0 && len(w.buf) > 0 {
			if err := w.undirect(); err != nil {
				return fmt.Errorf("write %s: %w", w.tmp, err)
			}
		}
	}
	if len(w.buf) > 0 {
		if err := w.flush(len(w.buf)); err != nil {
			return err
		}
	}
	w.release()
	return nil
}

// sync writes what is buffered, makes the file's bytes durable (fsync
// covers direct writes as any other) and closes it.
func (w *writer) sync() error {
	if err := w.finish(); err != nil {
		w.f.Close()
		return err
	}
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", w.tmp, err)
	}
	return nil
}

func (w *writer) Abort() {
	w.wait()
	w.f.Close()
	w.s.root.Remove(w.tmp)
	w.release()
}

// Commit fsyncs the file, renames it to name and fsyncs the directory.
func (w *writer) Commit(_ context.Context, name string) error {
	if err := w.s.check(name); err != nil {
		w.Abort()
		return err
	}
	if err := w.sync(); err != nil {
		w.s.root.Remove(w.tmp)
		return err
	}
	dir := path.Dir(name)
	if err := w.s.root.MkdirAll(dir, 0o700); err != nil {
		w.s.root.Remove(w.tmp)
		return fmt.Errorf("create directory of %s: %w", name, err)
	}
	if err := w.s.root.Rename(w.tmp, name); err != nil {
		w.s.root.Remove(w.tmp)
		return fmt.Errorf("rename %s into place: %w", name, err)
	}
	return w.s.syncDir(dir)
}
