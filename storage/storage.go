// Package storage is the interface beneath repo through which a store's
// objects (packs, config) are kept: a flat namespace of named byte strings.
// The local directory (storage/local) is its first implementation; object
// storage goes beneath it, and encryption in the blob and pack codec above
// it (package cas), so every backend gets it. The models are restic's
// backend.Backend and kopia's blob.Storage.
//
// # Names
//
// A name is a relative, slash-separated path ("packs/1f/1f….pack",
// "config.json"): no empty, "." or ".." element, no leading or trailing
// slash, no backslash or NUL. Every method refuses another name with
// ErrInvalidName.
//
// # Contract
//
// Immutable objects (packs) are written once under a name derived from
// their contents and then only read and deleted. A few mutable objects
// (config, access, settings) are replaced only through Swap, a
// compare-and-swap on an opaque Version.
//
//   - Atomicity: Put, PutIfAbsent, Swap and Writer.Commit make an object
//     visible whole or not at all, and durable before they return; a
//     reader never sees a partly written object, and a failed or
//     interrupted write leaves the previous state (at most an invisible
//     temporary object, which a storage may sweep, see Sweeper).
//   - Not found: every method that names a missing object returns an
//     error wrapping ErrNotFound, Delete included (callers that do not
//     care ignore it with errors.Is).
//   - Create-if-absent: of concurrent PutIfAbsent calls for one name,
//     exactly one succeeds; the others return ErrExists and the object
//     holds the winner's bytes.
//   - Compare-and-swap: Swap(name, old, data) replaces the object only if
//     its current version is old (NoVersion: only if it is absent);
//     otherwise it returns ErrConflict and changes nothing. Of concurrent
//     Swaps from one version exactly one succeeds. Versions are opaque and
//     compared only for equality; a storage may derive them from the
//     contents, so writing back identical bytes need not change it.
//   - Ordering: an operation that returned is seen by every operation that
//     starts after it (read-after-write, list-after-write and
//     list-after-delete), in the storage's single view of its objects.
//   - Listing: List returns names in ascending byte order, a page at a
//     time. An object that exists for the whole of a listing is returned
//     exactly once across its pages; one put or deleted during it may or
//     may not be. Temporary objects of writes in progress are never
//     listed.
//   - Time: Info.Created is when the object was written, by the storage's
//     clock (the file system's, the object store's), not the caller's:
//     compare it with Now (Clock), never with time.Now of another host.
//
// # Optional capabilities
//
// A storage may also implement Streamer (write an object as a stream whose
// name is known only at its end: the local directory writes a temporary
// file and renames it) and Opener (a random-access handle for many ranged
// reads: the local directory keeps an open file). NewWriter and Open use
// them when present and fall back to Put and Get otherwise, so callers are
// written once for every backend.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Errors every implementation wraps.
var (
	ErrNotFound    = errors.New("not found")
	ErrExists      = errors.New("already exists")
	ErrConflict    = errors.New("changed by someone else (version conflict)")
	ErrInvalidName = errors.New("invalid object name")
)

// Version identifies one state of a mutable object for Swap. It is opaque:
// only compared for equality.
type Version string

// NoVersion is the version of an absent object.
const NoVersion Version = ""

// Info describes a stored object.
type Info struct {
	Name    string
	Size    int64
	Created time.Time // by the storage's clock
}

// Storage is a flat namespace of named objects; see the package comment for
// the contract every implementation keeps. It is safe for concurrent use.
type Storage interface {
	// Get returns length bytes of name starting at offset (length < 0:
	// to the end), in buf when it is large enough. A range beyond the
	// end of the object fails with io.ErrUnexpectedEOF.
	Get(ctx context.Context, name string, offset, length int64, buf []byte) ([]byte, error)
	// Put stores data under name, replacing any object there.
	Put(ctx context.Context, name string, data []byte) error
	// PutIfAbsent stores data under name unless an object is there
	// (ErrExists).
	PutIfAbsent(ctx context.Context, name string, data []byte) error
	// Delete removes name.
	Delete(ctx context.Context, name string) error
	// Stat describes name.
	Stat(ctx context.Context, name string) (Info, error)
	// List returns up to limit objects (limit <= 0: an
	// implementation-chosen page) whose names start with prefix and sort
	// after cursor (cursor "": from the first), in ascending order, and
	// the cursor of the next page, "" after the last.
	List(ctx context.Context, prefix, cursor string, limit int) (page []Info, next string, err error)
	// GetVersioned returns the whole of name and its current version.
	GetVersioned(ctx context.Context, name string) ([]byte, Version, error)
	// Swap replaces name with data if its version is old (NoVersion:
	// creates it if absent), returning the new version; else ErrConflict.
	Swap(ctx context.Context, name string, old Version, data []byte) (Version, error)
	// Now is the storage's clock, the one Info.Created is read from.
	Now(ctx context.Context) (time.Time, error)
	// Close releases the storage's resources.
	Close() error
}

// Writer streams a new object whose name is known only when it is complete
// (a pack is named by the hash of its trailer).
type Writer interface {
	io.Writer
	// Commit makes what was written durable and visible under name (as
	// Put: replacing any object there). The Writer is done either way.
	Commit(ctx context.Context, name string) error
	// Abort discards what was written.
	Abort()
}

// Streamer is the optional capability of writing objects as streams.
type Streamer interface {
	NewWriter(ctx context.Context) (Writer, error)
}

// SizedStreamer is a Streamer told the size an object is expected to
// reach (size <= 0: unknown), so it can choose how to write it (the local
// directory writes a large one past the page cache). The object may end
// up any size.
type SizedStreamer interface {
	NewWriterSize(ctx context.Context, size int64) (Writer, error)
}

// Gatherer is the optional capability of a Writer that gathers small
// writes into large ones itself, so that a caller need not buffer in
// front of it (which would copy every byte once more).
type Gatherer interface {
	// Gathers reports whether this writer does (a writer may gather
	// for large objects only).
	Gathers() bool
	// Buffered is an upper bound of the bytes written to it that it
	// holds in memory and has yet to write to a local file: what a
	// commit still needs room for on the local file system.
	Buffered() int64
}

// Gathers reports whether w gathers small writes itself (Gatherer).
func Gathers(w Writer) bool {
	g, ok := w.(Gatherer)
	return ok && g.Gathers()
}

// Object is an open handle for ranged reads of one object.
type Object interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Opener is the optional capability of opening an object for many reads.
// Reads from a handle see the object as it was opened; a deleted object
// may stay readable through a handle opened before.
type Opener interface {
	Open(ctx context.Context, name string) (Object, error)
}

// ChangeGetter is the optional capability of reading a mutable object
// only when it changed: a conditional request (If-None-Match) that
// answers "not modified" without the bytes. See GetIfChanged.
type ChangeGetter interface {
	// GetIfChanged returns the whole of name and its version, or
	// changed false (and no bytes) while its version is still have
	// (NoVersion: always read). An object of more than limit bytes
	// (limit > 0) is refused before it is read.
	GetIfChanged(ctx context.Context, name string, have Version, limit int64) (data []byte, v Version, changed bool, err error)
}

// ErrTooLarge is returned by GetIfChanged for an object over its limit.
var ErrTooLarge = errors.New("object larger than its limit")

// GetIfChanged returns the whole of name and its current version, or
// changed false while the version is still have (NoVersion: always read);
// an object of more than limit bytes (limit > 0) is refused with
// ErrTooLarge before it is read. It is s's own when s is a ChangeGetter,
// otherwise a Stat and a GetVersioned compared with have. A reader
// polling a mutable object (the access file several servers share) uses
// it so that an unchanged object costs no transfer.
func GetIfChanged(ctx context.Context, s Storage, name string, have Version, limit int64) ([]byte, Version, bool, error) {
	if cg, ok := s.(ChangeGetter); ok {
		return cg.GetIfChanged(ctx, name, have, limit)
	}
	if limit > 0 {
		info, err := s.Stat(ctx, name)
		if err != nil {
			return nil, NoVersion, false, err
		}
		if info.Size > limit {
			return nil, NoVersion, false, fmt.Errorf("%s: %d bytes: %w (%d)", name, info.Size, ErrTooLarge, limit)
		}
	}
	b, v, err := s.GetVersioned(ctx, name)
	if err != nil {
		return nil, NoVersion, false, err
	}
	if limit > 0 && int64(len(b)) > limit {
		return nil, NoVersion, false, fmt.Errorf("%s: %d bytes: %w (%d)", name, len(b), ErrTooLarge, limit)
	}
	if have != NoVersion && v == have {
		return nil, v, false, nil
	}
	return b, v, true, nil
}

// Sweeper is the optional capability of a storage that keeps temporary
// objects of writes in progress: RemoveTemporary deletes them. The caller
// must know that no write is in progress (it holds the store's lock).
type Sweeper interface {
	RemoveTemporary(ctx context.Context) error
}

// UploadAborter is the optional capability of a storage on which an
// interrupted write of another program (or an older smp) may leave an
// invisible, billed remnant: an S3 multipart upload never completed.
// AbortUploads aborts every such upload under the storage's prefix
// started before before (the storage's clock) and returns how many. The
// caller must know no write started before then is still in progress
// (gc on a shared store passes now minus its grace).
type UploadAborter interface {
	AbortUploads(ctx context.Context, before time.Time) (int, error)
}

// NewWriter returns a streaming writer for s: its own when it is a
// Streamer, otherwise one that buffers the object in memory and Puts it on
// Commit.
func NewWriter(ctx context.Context, s Storage) (Writer, error) {
	return NewWriterSize(ctx, s, 0)
}

// NewWriterSize is NewWriter for an object expected to be about size
// bytes: a SizedStreamer is told, and a buffering writer reserves that
// much at once instead of growing (and copying) its buffer as the object
// grows.
func NewWriterSize(ctx context.Context, s Storage, size int64) (Writer, error) {
	if st, ok := s.(SizedStreamer); ok {
		return st.NewWriterSize(ctx, size)
	}
	if st, ok := s.(Streamer); ok {
		return st.NewWriter(ctx)
	}
	return &bufferedWriter{s: s, buf: make([]byte, 0, max(size, 0))}, nil
}

type bufferedWriter struct {
	s    Storage
	buf  []byte
	done bool
}

func (w *bufferedWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("write to a finished object")
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// Gathers is true: the object is one buffer until Commit.
func (w *bufferedWriter) Gathers() bool { return true }

// Buffered is 0: the object is Put to its storage, not to a local file.
func (w *bufferedWriter) Buffered() int64 { return 0 }

func (w *bufferedWriter) Commit(ctx context.Context, name string) error {
	if w.done {
		return errors.New("commit of a finished object")
	}
	w.done = true
	err := w.s.Put(ctx, name, w.buf)
	w.buf = nil
	return err
}

func (w *bufferedWriter) Abort() { w.done, w.buf = true, nil }

// Open returns a handle for ranged reads of name: s's own when it is an
// Opener, otherwise one that reads each range with Get.
func Open(ctx context.Context, s Storage, name string) (Object, error) {
	if o, ok := s.(Opener); ok {
		return o.Open(ctx, name)
	}
	info, err := s.Stat(ctx, name)
	if err != nil {
		return nil, err
	}
	return &rangeObject{ctx: ctx, s: s, name: name, size: info.Size}, nil
}

type rangeObject struct {
	ctx  context.Context
	s    Storage
	name string
	size int64
}

func (o *rangeObject) ReadAt(p []byte, off int64) (int, error) {
	if off >= o.size {
		return 0, io.EOF
	}
	n := int64(len(p))
	short := off+n > o.size
	if short {
		n = o.size - off
	}
	b, err := o.s.Get(o.ctx, o.name, off, n, p)
	if err != nil {
		return 0, err
	}
	copied := copy(p, b)
	if short {
		return copied, io.EOF
	}
	return copied, nil
}

func (o *rangeObject) Size() int64  { return o.size }
func (o *rangeObject) Close() error { return nil }

// Walk calls fn for every object whose name starts with prefix, in
// ascending order, listing a page at a time. An error from fn stops it and
// is returned.
func Walk(ctx context.Context, s Storage, prefix string, fn func(Info) error) error {
	cursor := ""
	for {
		page, next, err := s.List(ctx, prefix, cursor, 0)
		if err != nil {
			return err
		}
		for _, info := range page {
			if err := fn(info); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// CheckName returns an error wrapping ErrInvalidName unless name is a
// valid object name (see the package comment).
func CheckName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.ContainsAny(name, "\\\x00") {
		return fmt.Errorf("%q: %w", name, ErrInvalidName)
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == "" || elem == "." || elem == ".." {
			return fmt.Errorf("%q: %w", name, ErrInvalidName)
		}
	}
	return nil
}
