package restore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"smp/cas"
	"smp/cas/manifest"
	"smp/filter"
)

// Store is what restore needs of a store (a *repo.Repo).
type Store interface {
	LoadTree(id cas.ID) (*manifest.Tree, error)
	ReadChunk(id cas.ID, buf []byte) ([]byte, error)
}

// Overwrite says what to do with a path that already exists in the target.
type Overwrite string

const (
	OverwriteNever  Overwrite = "never"
	OverwriteAlways Overwrite = "always"
	OverwriteOlder  Overwrite = "older" // replace only files older than the record's
)

// ParseOverwrite validates a --overwrite value.
func ParseOverwrite(s string) (Overwrite, error) {
	switch o := Overwrite(s); o {
	case OverwriteNever, OverwriteAlways, OverwriteOlder:
		return o, nil
	}
	return "", fmt.Errorf("--overwrite %q: want never, always or older", s)
}

// Mapping rewrites a stored path prefix: From "home/alice" To "home/bob".
type Mapping struct{ From, To string }

// ParseMapping parses FROM=TO; both are paths relative to the root.
func ParseMapping(s string) (Mapping, error) {
	from, to, ok := strings.Cut(s, "=")
	if !ok {
		return Mapping{}, fmt.Errorf("--map %q: want FROM=TO, e.g. home/alice=home/bob", s)
	}
	m := Mapping{From: strings.Trim(path.Clean("/"+from), "/"), To: strings.Trim(path.Clean("/"+to), "/")}
	if m.From == "" || strings.ContainsRune(s, 0) {
		return Mapping{}, fmt.Errorf("--map %q: FROM must name a path below the root", s)
	}
	return m, nil
}

// Options control a restore.
type Options struct {
	Target    string // absolute directory; created when missing
	Maps      []Mapping
	Filter    *filter.Set // applied to stored paths with Selected
	Overwrite Overwrite
	Owners    bool // restore uid/gid (needs root)
	Workers   int
	Report    func(Problem)
	Progress  *Progress
}

// Problem is a path that was not restored (Err) or left alone (Warning).
type Problem struct {
	Path    string
	Err     error
	Warning bool
}

// Progress is updated atomically while a restore runs.
type Progress struct {
	FilesDone, BytesDone atomic.Uint64
	Errors, Skipped      atomic.Uint64
}

// Result summarises a restore.
type Result struct {
	Files, Dirs, Symlinks, Bytes, Errors, Skipped uint64
}

type restorer struct {
	opts  Options
	store Store
	root  *os.Root
	users map[string]string // owner name remaps implied by --map home/X=home/Y

	jobs      chan *fileJob
	dirs      []dirMeta
	hardlinks map[string]*fileJob
	res       Result
	files     atomic.Uint64
	bytes     atomic.Uint64
	errors    atomic.Uint64
	skipped   atomic.Uint64
	symlinks  atomic.Uint64
	idCache   sync.Map // "u:name"/"g:name" -> int
	bufs      sync.Pool
}

type fileJob struct {
	rel    string // target-relative path
	stored string
	entry  manifest.Entry
	linkOf *fileJob
	done   chan struct{}
	ok     bool
}

type dirMeta struct {
	rel   string
	entry manifest.Entry
}

// Run restores rec's tree under opts.Target.
func Run(ctx context.Context, store Store, rec *manifest.Record, opts Options) (*Result, error) {
	if opts.Filter == nil {
		opts.Filter = filter.NewSet()
	}
	if opts.Overwrite == "" {
		opts.Overwrite = OverwriteNever
	}
	if opts.Workers <= 0 {
		opts.Workers = 2 * runtime.GOMAXPROCS(0)
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	if opts.Report == nil {
		opts.Report = func(Problem) {}
	}
	if err := os.MkdirAll(opts.Target, 0o755); err != nil {
		return nil, fmt.Errorf("create restore target: %w", err)
	}
	root, err := os.OpenRoot(opts.Target)
	if err != nil {
		return nil, fmt.Errorf("open restore target: %w", err)
	}
	defer root.Close()
	r := &restorer{opts: opts, store: store, root: root, users: map[string]string{},
		jobs: make(chan *fileJob, 128), hardlinks: map[string]*fileJob{}}
	for _, m := range opts.Maps {
		fu, fok := strings.CutPrefix(m.From, "home/")
		tu, tok := strings.CutPrefix(m.To, "home/")
		if fok && tok && !strings.Contains(fu, "/") && !strings.Contains(tu, "/") {
			r.users[fu] = tu
		}
	}
	tree, err := store.LoadTree(rec.Tree)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", rec.Computer, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	for range opts.Workers {
		g.Go(func() error { return r.worker(gctx) })
	}
	g.Go(func() error {
		defer close(r.jobs)
		return r.walk(gctx, tree, "")
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Directories last, deepest first: their mtimes would move while their
	// contents are written, and a read-only mode would block the writes.
	sort.SliceStable(r.dirs, func(i, j int) bool { return strings.Count(r.dirs[i].rel, "/") > strings.Count(r.dirs[j].rel, "/") })
	for _, d := range r.dirs {
		if err := r.setMeta(d.rel, d.entry, nil); err != nil {
			r.fail(d.rel, err)
		}
	}
	r.res.Files = r.files.Load()
	r.res.Bytes = r.bytes.Load()
	r.res.Errors = r.errors.Load()
	r.res.Skipped = r.skipped.Load()
	r.res.Dirs = uint64(len(r.dirs))
	r.res.Symlinks = r.symlinks.Load()
	return &r.res, nil
}

func (r *restorer) fail(rel string, err error) {
	r.errors.Add(1)
	r.opts.Progress.Errors.Add(1)
	r.opts.Report(Problem{Path: rel, Err: err})
}

func (r *restorer) skip(rel string, why string) {
	r.skipped.Add(1)
	r.opts.Progress.Skipped.Add(1)
	r.opts.Report(Problem{Path: rel, Err: errors.New(why), Warning: true})
}

// mapPath applies the longest matching --map prefix to a stored path.
func (r *restorer) mapPath(stored string) (string, error) {
	best := -1
	for i, m := range r.opts.Maps {
		if (stored == m.From || strings.HasPrefix(stored, m.From+"/")) && (best < 0 || len(m.From) > len(r.opts.Maps[best].From)) {
			best = i
		}
	}
	if best < 0 {
		return stored, nil
	}
	m := r.opts.Maps[best]
	out := path.Join(m.To, strings.TrimPrefix(stored, m.From))
	if out == "." || out == "" || strings.HasPrefix(out, "../") || out == ".." {
		return "", fmt.Errorf("--map %s=%s maps %s outside the target", m.From, m.To, stored)
	}
	return out, nil
}

// walk visits a tree depth first, creating directories and symlinks itself
// and handing files to the workers.
func (r *restorer) walk(ctx context.Context, tree *manifest.Tree, storedDir string) error {
	for _, e := range tree.Entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := manifest.ValidName(e.Name); err != nil {
			r.fail(path.Join(storedDir, e.Name), err) // DecodeTree already rejects this; belt and braces
			continue
		}
		stored := path.Join(storedDir, e.Name)
		isDir := e.Type == manifest.TypeDir
		// Excludes win over includes, also when they name an ancestor.
		if r.opts.Filter.Excluded(stored, isDir) || !r.opts.Filter.Selected(stored, isDir) {
			continue
		}
		rel, err := r.mapPath(stored)
		if err != nil {
			r.fail(stored, err)
			continue
		}
		switch e.Type {
		case manifest.TypeDir:
			sub, err := r.store.LoadTree(e.Subtree)
			if err != nil {
				r.fail(stored+"/", fmt.Errorf("directory contents lost: %w", err))
				continue
			}
			if err := r.mkdir(rel); err != nil {
				r.fail(rel, err)
				continue
			}
			r.dirs = append(r.dirs, dirMeta{rel: rel, entry: e})
			if err := r.walk(ctx, sub, stored); err != nil {
				return err
			}
		case manifest.TypeSymlink:
			if err := r.ensureParents(rel); err != nil {
				r.fail(rel, err)
				continue
			}
			if err := r.symlink(rel, e); err != nil {
				r.fail(rel, err)
			} else {
				r.symlinks.Add(1)
			}
		case manifest.TypeFile:
			if err := r.ensureParents(rel); err != nil {
				r.fail(rel, err)
				continue
			}
			job := &fileJob{rel: rel, stored: stored, entry: e, done: make(chan struct{})}
			if e.HardLink != "" {
				if first := r.hardlinks[e.HardLink]; first != nil {
					job.linkOf = first
				} else {
					r.hardlinks[e.HardLink] = job
				}
			}
			select {
			case r.jobs <- job:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// ensureParents creates missing parent directories of rel (needed when a
// mapping or a partial restore lands in a directory the record lacks).
func (r *restorer) ensureParents(rel string) error {
	dir := path.Dir(rel)
	if dir == "." {
		return nil
	}
	if st, err := r.root.Lstat(dir); err == nil && st.IsDir() {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		if err := r.mkdir(strings.Join(parts[:i+1], "/")); err != nil {
			return err
		}
	}
	return nil
}

// mkdir makes sure rel is a real directory, never a symlink to one.
func (r *restorer) mkdir(rel string) error {
	st, err := r.root.Lstat(rel)
	switch {
	case err == nil && st.IsDir():
		return nil
	case err == nil && r.opts.Overwrite == OverwriteAlways:
		if err := r.root.Remove(rel); err != nil {
			return fmt.Errorf("replace %s with a directory: %w", describe(st), err)
		}
	case err == nil:
		return fmt.Errorf("exists as %s where the record has a directory; not replaced (use --overwrite always)", describe(st))
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if err := r.root.Mkdir(rel, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

func describe(st fs.FileInfo) string {
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		return "a symlink"
	case st.IsDir():
		return "a directory"
	case st.Mode().IsRegular():
		return "a file"
	}
	return "a special file"
}

// replaceable decides whether an existing path may be replaced by an entry.
// It returns ok=false with a reason to skip, or an error.
func (r *restorer) replaceable(rel string, e manifest.Entry) (bool, string) {
	st, err := r.root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return true, ""
	}
	if err != nil {
		return false, err.Error()
	}
	if st.IsDir() {
		return false, "exists as a directory; not replaced"
	}
	switch r.opts.Overwrite {
	case OverwriteAlways:
		return true, ""
	case OverwriteOlder:
		if st.ModTime().Before(time.Unix(0, e.MTimeNs)) {
			return true, ""
		}
		return false, "exists and is not older than the record's copy; left alone"
	}
	return false, "exists; left alone (use --overwrite always or older)"
}

func tempName(rel string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return path.Join(path.Dir(rel), ".smp-"+hex.EncodeToString(b[:])+".tmp")
}

func (r *restorer) symlink(rel string, e manifest.Entry) error {
	if ok, why := r.replaceable(rel, e); !ok {
		r.skip(rel, why)
		return nil
	}
	tmp := tempName(rel)
	if err := r.root.Symlink(e.Target, tmp); err != nil {
		return fmt.Errorf("create symlink: %w", err)
	}
	if r.opts.Owners {
		if err := r.root.Lchown(tmp, r.uid(e), r.gid(e)); err != nil {
			r.root.Remove(tmp)
			return fmt.Errorf("chown symlink: %w", err)
		}
	}
	// Only the link's own times change, so naming it by full path (racy
	// parents) cannot write anything outside the target.
	ts := []unix.Timespec{unix.NsecToTimespec(e.MTimeNs), unix.NsecToTimespec(e.MTimeNs)}
	_ = unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(r.opts.Target, filepath.FromSlash(tmp)), ts, unix.AT_SYMLINK_NOFOLLOW)
	if err := r.root.Rename(tmp, rel); err != nil {
		r.root.Remove(tmp)
		return fmt.Errorf("rename symlink into place: %w", err)
	}
	return nil
}

func (r *restorer) worker(ctx context.Context) error {
	var buf []byte
	for job := range r.jobs {
		if ctx.Err() != nil {
			close(job.done)
			return ctx.Err()
		}
		var err error
		buf, err = r.restoreFile(job, buf)
		if err != nil {
			r.fail(job.rel, err)
		}
		close(job.done)
	}
	return nil
}

// zeros backs the sparse check: an all-zero chunk becomes a hole.
var zeros = make([]byte, 1<<20)

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

func (r *restorer) restoreFile(job *fileJob, buf []byte) ([]byte, error) {
	e := job.entry
	if ok, why := r.replaceable(job.rel, e); !ok {
		r.skip(job.rel, why)
		return buf, nil
	}
	if job.linkOf != nil {
		<-job.linkOf.done
		if job.linkOf.ok {
			tmp := tempName(job.rel)
			if err := r.root.Link(job.linkOf.rel, tmp); err == nil {
				if err := r.root.Rename(tmp, job.rel); err != nil {
					r.root.Remove(tmp)
					return buf, fmt.Errorf("rename hard link into place: %w", err)
				}
				job.ok = true
				r.files.Add(1)
				r.opts.Progress.FilesDone.Add(1)
				return buf, nil
			}
			// Linking can fail (EXDEV after a --map, link limits): copy instead.
		}
	}
	if e.Incomplete {
		return buf, errors.New("the record holds only part of this file (it failed during capture); not restored")
	}
	tmp := tempName(job.rel)
	f, err := r.root.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return buf, fmt.Errorf("create: %w", err)
	}
	fail := func(err error) ([]byte, error) {
		f.Close()
		r.root.Remove(tmp)
		return buf, err
	}
	var off int64
	err = r.readChunks(e.Chunks, &buf, func(i int, data []byte) error {
		ch := e.Chunks[i]
		if len(data) != int(ch.Size) {
			return fmt.Errorf("chunk %s is %d bytes, record says %d: %w", ch.ID.Short(), len(data), ch.Size, cas.ErrCorrupt)
		}
		if !isZero(data) {
			if _, err := f.WriteAt(data, off); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		off += int64(len(data))
		r.opts.Progress.BytesDone.Add(uint64(len(data)))
		return nil
	})
	if err != nil {
		return fail(err)
	}
	if err := f.Truncate(off); err != nil { // extends over trailing holes
		return fail(fmt.Errorf("set size: %w", err))
	}
	if err := r.setMeta(tmp, e, f); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		r.root.Remove(tmp)
		return buf, fmt.Errorf("close: %w", err)
	}
	if err := r.root.Chtimes(tmp, time.Unix(0, e.MTimeNs), time.Unix(0, e.MTimeNs)); err != nil {
		r.root.Remove(tmp)
		return buf, fmt.Errorf("set mtime: %w", err)
	}
	if err := r.root.Rename(tmp, job.rel); err != nil {
		r.root.Remove(tmp)
		return buf, fmt.Errorf("rename into place: %w", err)
	}
	job.ok = true
	r.files.Add(1)
	r.bytes.Add(uint64(off))
	r.opts.Progress.FilesDone.Add(1)
	return buf, nil
}

// readAhead is how many chunks of one file are read, decompressed and
// verified ahead of the writer, so a single large file uses every core.
var readAhead = runtime.GOMAXPROCS(0) + 1

type chunkResult struct {
	data []byte
	buf  *[]byte
	err  error
}

// readChunks calls write for each chunk in order. Chunks of a multi-chunk
// file are read by up to readAhead goroutines at once; memory stays bounded
// by readAhead chunk buffers per file worker.
func (r *restorer) readChunks(chunks []manifest.Chunk, buf *[]byte, write func(int, []byte) error) error {
	chunkErr := func(i int, err error) error {
		return fmt.Errorf("chunk %d (%s) of %d: %w", i+1, chunks[i].ID.Short(), len(chunks), err)
	}
	if len(chunks) <= 1 {
		for i, ch := range chunks {
			data, err := r.store.ReadChunk(ch.ID, *buf)
			if err != nil {
				return chunkErr(i, err)
			}
			*buf = data[:0]
			if err := write(i, data); err != nil {
				return err
			}
		}
		return nil
	}
	futures := make(chan chan chunkResult, readAhead)
	stop := make(chan struct{})
	var stopOnce sync.Once
	cancel := func() { stopOnce.Do(func() { close(stop) }) }
	defer cancel()
	go func() {
		defer close(futures)
		for _, ch := range chunks {
			fut := make(chan chunkResult, 1)
			select {
			case futures <- fut:
			case <-stop:
				return
			}
			go func(id cas.ID) {
				b := r.getBuf()
				data, err := r.store.ReadChunk(id, *b)
				fut <- chunkResult{data: data, buf: b, err: err}
			}(ch.ID)
		}
	}()
	i := 0
	var firstErr error
	for fut := range futures {
		res := <-fut
		if firstErr == nil {
			if res.err != nil {
				firstErr = chunkErr(i, res.err)
			} else {
				firstErr = write(i, res.data)
			}
			if firstErr != nil {
				cancel()
			}
		}
		if cap(res.data) > cap(*res.buf) {
			*res.buf = res.data[:0]
		}
		r.bufs.Put(res.buf)
		i++
	}
	return firstErr
}

func (r *restorer) getBuf() *[]byte {
	if b, ok := r.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 1<<20)
	return &b
}

// setMeta applies xattrs, ownership and mode (in that order: chown clears
// setuid bits) to an open file, or to directory rel when f is nil, whose
// mtime it also sets.
func (r *restorer) setMeta(rel string, e manifest.Entry, f *os.File) error {
	if f == nil {
		d, err := r.root.Open(rel)
		if err != nil {
			return fmt.Errorf("open directory: %w", err)
		}
		defer d.Close()
		if st, err := d.Stat(); err != nil || !st.IsDir() {
			return fmt.Errorf("%s is no longer a directory", rel)
		}
		f = d
	}
	for name, value := range e.Xattrs {
		if err := unix.Fsetxattr(int(f.Fd()), name, value, 0); err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	if r.opts.Owners {
		if err := f.Chown(r.uid(e), r.gid(e)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	mode := fs.FileMode(e.Mode & 0o777)
	if e.Mode&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if e.Mode&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if e.Mode&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if e.Type == manifest.TypeDir {
		t := time.Unix(0, e.MTimeNs)
		if err := r.root.Chtimes(rel, t, t); err != nil {
			return fmt.Errorf("set mtime: %w", err)
		}
	}
	return nil
}

// uid prefers the owner's name on this system (uids differ between
// machines), after any --map home/X=home/Y rename, then the stored number.
func (r *restorer) uid(e manifest.Entry) int {
	name := e.User
	if to, ok := r.users[name]; ok {
		name = to
	}
	return r.lookupID("u:", name, int(e.UID), func(n string) (string, error) {
		u, err := user.Lookup(n)
		if err != nil {
			return "", err
		}
		return u.Uid, nil
	})
}

func (r *restorer) gid(e manifest.Entry) int {
	name := e.Group
	if to, ok := r.users[name]; ok {
		name = to
	}
	return r.lookupID("g:", name, int(e.GID), func(n string) (string, error) {
		g, err := user.LookupGroup(n)
		if err != nil {
			return "", err
		}
		return g.Gid, nil
	})
}

func (r *restorer) lookupID(kind, name string, fallback int, lookup func(string) (string, error)) int {
	if name == "" {
		return fallback
	}
	if v, ok := r.idCache.Load(kind + name); ok {
		return v.(int)
	}
	id := fallback
	if s, err := lookup(name); err == nil {
		if n, err := strconv.Atoi(s); err == nil {
			id = n
		}
	}
	r.idCache.Store(kind+name, id)
	return id
}
