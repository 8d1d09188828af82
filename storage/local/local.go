// Package local is the storage.Storage of a directory on a local file
// system: object "a/b/c" is the file DIR/a/b/c. Every path is opened
// through an os.Root, so no name or symbolic link reaches outside DIR, and
// the final element is opened without following a link.
//
// Writes go to a temporary file in Options.TempDir, which is fsynced and
// then renamed (Put, Writer.Commit) or hard-linked (PutIfAbsent) into
// place, and the directory is fsynced: a crash leaves the old state and at
// most a stray temporary file (RemoveTemporary). The temporary directory is
// not part of the namespace: it is never listed and its names are refused.
// A stream expected to be large (NewWriterSize) is written past the page
// cache where the file system allows it (writer.go); the fsync, rename and
// directory fsync are the same.
//
// Swap serialises compare-and-swaps with a mutex and, on Linux, an
// exclusive flock on DIR, so processes sharing the directory take turns;
// a version is the SHA-256 of the object's bytes.
//
// Files that are not objects may share DIR (a store keeps its Badger index,
// lock file and hard-link sets there): callers list by prefix.
package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"smp/storage"
)

// Options configure a local storage.
type Options struct {
	// TempDir is where writes in progress are kept, a name relative to
	// the directory ("tmp" when empty). It must be on the same file
	// system as the objects, so a rename or link moves a file into place.
	TempDir string
}

// Storage is a directory of objects.
type Storage struct {
	dir  string
	root *os.Root
	tmp  string
	swap sync.Mutex // with swapLock, one Swap at a time
	// noDirect makes NewWriterSize buffer without O_DIRECT (tests of
	// the fallback).
	noDirect bool
}

var (
	_ storage.Storage       = (*Storage)(nil)
	_ storage.Streamer      = (*Storage)(nil)
	_ storage.SizedStreamer = (*Storage)(nil)
	_ storage.Opener        = (*Storage)(nil)
	_ storage.Sweeper       = (*Storage)(nil)
)

// Open returns the storage in dir, which must exist, creating its
// temporary directory when missing.
func Open(dir string, opts Options) (*Storage, error) {
	tmp := opts.TempDir
	if tmp == "" {
		tmp = "tmp"
	}
	if err := storage.CheckName(tmp); err != nil {
		return nil, fmt.Errorf("local storage temporary directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	if err := root.MkdirAll(tmp, 0o700); err != nil {
		root.Close()
		return nil, fmt.Errorf("create storage directory: %w", err)
	}
	return &Storage{dir: dir, root: root, tmp: tmp}, nil
}

// Path returns the file holding object name, for tests and messages that
// name a damaged file.
func (s *Storage) Path(name string) string { return filepath.Join(s.dir, filepath.FromSlash(name)) }

// Close releases the directory.
func (s *Storage) Close() error { return s.root.Close() }

// Now returns the local clock, which stamps the files.
func (s *Storage) Now(context.Context) (time.Time, error) { return time.Now(), nil }

// check validates name and refuses the temporary directory.
func (s *Storage) check(name string) error {
	if err := storage.CheckName(name); err != nil {
		return err
	}
	if name == s.tmp || strings.HasPrefix(name, s.tmp+"/") {
		return fmt.Errorf("%q is in the temporary directory: %w", name, storage.ErrInvalidName)
	}
	return nil
}

// notFound maps a missing file (or a directory, which is no object) to
// storage.ErrNotFound.
func notFound(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", name, storage.ErrNotFound)
	}
	return err
}

// openRegular opens object name for reading and returns it with its size,
// taken from the opened descriptor.
func (s *Storage) openRegular(name string) (*os.File, fs.FileInfo, error) {
	if err := s.check(name); err != nil {
		return nil, nil, err
	}
	f, err := s.root.OpenFile(name, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, nil, notFound(name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is not a file: %w", name, storage.ErrNotFound)
	}
	return f, st, nil
}

// Get reads a range of name.
func (s *Storage) Get(_ context.Context, name string, offset, length int64, buf []byte) ([]byte, error) {
	f, st, err := s.openRegular(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if length < 0 {
		length = st.Size() - offset
	}
	if offset < 0 || length < 0 || offset+length > st.Size() {
		return nil, fmt.Errorf("%s: range [%d,+%d) beyond its %d bytes: %w", name, offset, length, st.Size(), io.ErrUnexpectedEOF)
	}
	if int64(cap(buf)) < length {
		buf = make([]byte, length)
	}
	buf = buf[:length]
	if _, err := f.ReadAt(buf, offset); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return buf, nil
}

// Stat describes name; Created is the file's modification time.
func (s *Storage) Stat(_ context.Context, name string) (storage.Info, error) {
	f, st, err := s.openRegular(name)
	if err != nil {
		return storage.Info{}, err
	}
	f.Close()
	return storage.Info{Name: name, Size: st.Size(), Created: st.ModTime()}, nil
}

// Open returns the open file of name for ranged reads.
func (s *Storage) Open(_ context.Context, name string) (storage.Object, error) {
	f, st, err := s.openRegular(name)
	if err != nil {
		return nil, err
	}
	return &object{File: f, size: st.Size()}, nil
}

type object struct {
	*os.File
	size int64
}

func (o *object) Size() int64 { return o.size }

// Put writes data under name.
func (s *Storage) Put(ctx context.Context, name string, data []byte) error {
	if err := s.check(name); err != nil {
		return err
	}
	w, err := s.newWriter()
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return err
	}
	return w.Commit(ctx, name)
}

// PutIfAbsent writes data to a temporary file and hard-links it to name:
// link(2) fails when name exists, so of racing callers exactly one wins,
// and the object appears whole.
func (s *Storage) PutIfAbsent(_ context.Context, name string, data []byte) error {
	if err := s.check(name); err != nil {
		return err
	}
	w, err := s.newWriter()
	if err != nil {
		return err
	}
	defer w.Abort() // removes the temporary name; the link keeps the file
	if _, err := w.Write(data); err != nil {
		return err
	}
	if err := w.sync(); err != nil {
		return err
	}
	if err := s.root.MkdirAll(path.Dir(name), 0o700); err != nil {
		return fmt.Errorf("create directory of %s: %w", name, err)
	}
	if err := s.root.Link(w.tmp, name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", name, storage.ErrExists)
		}
		return fmt.Errorf("create %s: %w", name, err)
	}
	return s.syncDir(path.Dir(name))
}

// Delete removes name.
func (s *Storage) Delete(_ context.Context, name string) error {
	if err := s.check(name); err != nil {
		return err
	}
	st, err := s.root.Lstat(name)
	if err != nil {
		return notFound(name, err)
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory: %w", name, storage.ErrNotFound)
	}
	if err := s.root.Remove(name); err != nil {
		return notFound(name, err)
	}
	return s.syncDir(path.Dir(name))
}

// GetVersioned reads name and its version.
func (s *Storage) GetVersioned(ctx context.Context, name string) ([]byte, storage.Version, error) {
	b, err := s.Get(ctx, name, 0, -1, nil)
	if err != nil {
		return nil, storage.NoVersion, err
	}
	return b, versionOf(b), nil
}

func versionOf(b []byte) storage.Version {
	sum := sha256.Sum256(b)
	return storage.Version("sha256:" + hex.EncodeToString(sum[:]))
}

// Swap replaces name if its version is old.
func (s *Storage) Swap(ctx context.Context, name string, old storage.Version, data []byte) (storage.Version, error) {
	if err := s.check(name); err != nil {
		return storage.NoVersion, err
	}
	s.swap.Lock()
	defer s.swap.Unlock()
	unlock, err := s.swapLock()
	if err != nil {
		return storage.NoVersion, err
	}
	defer unlock()
	_, cur, err := s.GetVersioned(ctx, name)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return storage.NoVersion, err
	}
	if cur != old {
		return storage.NoVersion, fmt.Errorf("%s: %w", name, storage.ErrConflict)
	}
	if err := s.Put(ctx, name, data); err != nil {
		return storage.NoVersion, err
	}
	return versionOf(data), nil
}

// List pages through the objects under prefix in ascending name order.
func (s *Storage) List(_ context.Context, prefix, cursor string, limit int) ([]storage.Info, string, error) {
	if limit <= 0 {
		limit = 1000
	}
	dir := "."
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		dir = prefix[:i]
		if err := storage.CheckName(dir); err != nil {
			return nil, "", err
		}
	}
	l := lister{s: s, prefix: prefix, cursor: cursor, limit: limit + 1}
	if err := l.walk(dir); err != nil && !errors.Is(err, errPageFull) {
		return nil, "", err
	}
	if len(l.page) > limit {
		return l.page[:limit], l.page[limit-1].Name, nil
	}
	return l.page, "", nil
}

var errPageFull = errors.New("page full")

type lister struct {
	s              *Storage
	prefix, cursor string
	limit          int
	page           []storage.Info
}

// walk lists dir depth first in name order: a directory's entries sort
// among its siblings as "name/", so the names come out in byte order.
func (l *lister) walk(dir string) error {
	f, err := l.s.root.OpenFile(dir, os.O_RDONLY|openFlags, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	if st, err := f.Stat(); err != nil || !st.IsDir() {
		f.Close()
		return nil // a file where the prefix names a directory holds no objects
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	key := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(key(a), key(b)) })
	for _, e := range entries {
		name := e.Name()
		if dir != "." {
			name = dir + "/" + name
		}
		if e.IsDir() {
			sub := name + "/"
			if name == l.s.tmp || !(strings.HasPrefix(sub, l.prefix) || strings.HasPrefix(l.prefix, sub)) {
				continue
			}
			if l.cursor >= sub && !strings.HasPrefix(l.cursor, sub) {
				continue // everything in it sorts before the cursor
			}
			if err := l.walk(name); err != nil {
				return err
			}
			continue
		}
		if !e.Type().IsRegular() || !strings.HasPrefix(name, l.prefix) || name <= l.cursor {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", name, err)
		}
		l.page = append(l.page, storage.Info{Name: name, Size: info.Size(), Created: info.ModTime()})
		if len(l.page) >= l.limit {
			return errPageFull
		}
	}
	return nil
}

// RemoveTemporary deletes the temporary files of interrupted writes.
func (s *Storage) RemoveTemporary(context.Context) error {
	f, err := s.root.Open(s.tmp)
	if err != nil {
		return fmt.Errorf("open temporary directory: %w", err)
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			s.root.Remove(s.tmp + "/" + e.Name())
		}
	}
	return err
}

func (s *Storage) syncDir(dir string) error {
	f, err := s.root.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", filepath.Join(s.dir, dir), err)
	}
	return nil
}
