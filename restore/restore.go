package restore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

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

// Prefetcher is a Store that gains from knowing which chunks will be read
// soon (a remote SMP fetches them many per request). Restore announces,
// per directory, the chunks of the files it is about to hand to its
// workers, in that order. Announcing is only a hint: every chunk is still
// read with ReadChunk.
type Prefetcher interface {
	Prefetch(chunks []manifest.Chunk)
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
	if m.To == "" {
		return Mapping{}, fmt.Errorf("--map %q: TO must name a path below the root, e.g. home/bob", s)
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
	// LinkDir is the store's links/ directory, for hard-link records.
	LinkDir string
	// Hash computes chunk IDs, to check hard-link objects recorded with a
	// hash (--hardlink-dedupe).
	Hash func([]byte) cas.ID
	// AllowSystem lifts the path and ownership policy (policy.go): the
	// record may then write anywhere under the target, setuid bits and
	// root ownership included.
	AllowSystem bool
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
	Linked, Cloned       atomic.Uint64 // files of hard-link records placed by link / clone
}

// Result summarises a restore.
type Result struct {
	Files, Dirs, Symlinks, Bytes, Errors, Skipped uint64
	// DirsKept counts directories of the record that existed in the target
	// and were left as they were (not under --overwrite always).
	DirsKept uint64
	// Dropped counts entries not written, or written without setuid bits,
	// privileged xattrs or root ownership, by the policy (policy.go);
	// DroppedPaths lists the first few, sorted, each with what was dropped.
	// Outside counts the dropped entries not written at all (each the top
	// of a subtree outside the profile paths).
	Dropped, Outside uint64
	DroppedPaths     []string
}

type restorer struct {
	opts  Options
	store Store
	top   *dirHandle
	pol   *policy

	jobs      chan *fileJob
	dirCount  atomic.Uint64
	hardlinks map[string]*fileJob
	res       Result
	files     atomic.Uint64
	bytes     atomic.Uint64
	errors    atomic.Uint64
	skipped   atomic.Uint64
	symlinks  atomic.Uint64
	bufs      sync.Pool
	treeLoads chan struct{} // bounds the subtree loads running ahead of the walk

	// Subdirectories are walked by up to cap(walkers) extra goroutines, so
	// directory creation, which the kernel makes slow (a mkdirat took
	// 170 us here, a hard-link restore is mostly mkdirs), runs on every
	// core instead of one.
	walkers chan struct{}
	walkG   *errgroup.Group
	walkCtx context.Context
	linkMu  sync.Mutex // guards hardlinks, and keeps their jobs queued in registration order

	// Target directories (dir_linux.go): the descriptors held, and what
	// is known of each directory with an open handle.
	fds       fdCache
	dirMu     sync.Mutex
	dirStates map[dirKey]*dirState
	dirsKept  atomic.Uint64
}

// treeAhead is how many subdirectories' trees of one directory are loaded
// ahead of the walk. Loading a tree (read, decompress, decode) and creating
// a directory then overlap instead of alternating on one goroutine, and a
// remote store gets the loads as one batched fetch instead of one round
// trip each. Memory: at most treeAhead trees per level of the walk.
const treeAhead = 8

// treeLoad is a subtree being loaded ahead of the walk.
type treeLoad struct {
	tree *manifest.Tree
	err  error
	done chan struct{}
}

func (r *restorer) loadTreeAhead(id cas.ID) *treeLoad {
	l := &treeLoad{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		r.treeLoads <- struct{}{}
		defer func() { <-r.treeLoads }()
		l.tree, l.err = r.store.LoadTree(id)
	}()
	return l
}

type fileJob struct {
	dir    *dirHandle
	name   string // path relative to dir: a single name unless --map moved it
	rel    string // target-relative path
	stored string
	entry  manifest.Entry
	linkOf *fileJob
	done   chan struct{}
	ok     bool
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
	pol, err := newPolicy(store, rec, opts)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Target, 0o755); err != nil {
		return nil, fmt.Errorf("create restore target: %w", err)
	}
	// The target itself is the caller's choice and may be reached through
	// a symlink; nothing below it is.
	fd, err := unix.Open(opts.Target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open restore target: %w", err)
	}
	r := &restorer{opts: opts, store: store, pol: pol,
		jobs: make(chan *fileJob, 128), hardlinks: map[string]*fileJob{},
		treeLoads: make(chan struct{}, 2*runtime.GOMAXPROCS(0)),
		dirStates: map[dirKey]*dirState{}, fds: fdCache{max: idleLimit()}}
	if r.top, err = r.newHandle(fd, nil, "", "", nil, false); err != nil {
		return nil, fmt.Errorf("open restore target: %w", err)
	}
	if err := r.top.pin(); err != nil { // for the whole restore
		return nil, err
	}
	defer r.top.release()
	defer r.top.unpin()
	if err := r.checkMapTargets(); err != nil {
		return nil, err
	}
	tree, err := store.LoadTree(rec.Tree)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", rec.Computer, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	for range opts.Workers {
		g.Go(func() error { return r.worker(gctx) })
	}
	r.walkers = make(chan struct{}, runtime.GOMAXPROCS(0))
	r.walkG, r.walkCtx = errgroup.WithContext(gctx)
	r.walkG.Go(func() error { return r.walk(r.walkCtx, tree, "", r.top) })
	g.Go(func() error {
		defer close(r.jobs)
		return r.walkG.Wait()
	})
	err = g.Wait()
	for _, first := range r.hardlinks {
		first.dir.release()
	}
	if err != nil {
		return nil, err
	}
	r.res.Files = r.files.Load()
	r.res.Bytes = r.bytes.Load()
	r.res.Errors = r.errors.Load()
	r.res.Skipped = r.skipped.Load()
	r.res.Dirs = r.dirCount.Load()
	r.res.Symlinks = r.symlinks.Load()
	r.res.DirsKept = r.dirsKept.Load()
	r.res.Dropped, r.res.Outside, r.res.DroppedPaths = pol.dropped.Load(), pol.outside.Load(), pol.droppedPaths()
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

// queue hands a file to the workers.
func (r *restorer) queue(ctx context.Context, job *fileJob) error {
	select {
	case r.jobs <- job:
		return nil
	case <-ctx.Done():
		job.dir.release()
		return ctx.Err()
	}
}

// walk visits a tree depth first, creating directories and symlinks itself
// and handing files to the workers; a subdirectory goes to an extra walker
// when one is free.
func (r *restorer) walk(ctx context.Context, tree *manifest.Tree, storedDir string, dir *dirHandle) error {
	if pf, ok := r.store.(Prefetcher); ok {
		var chunks []manifest.Chunk
		for _, e := range tree.Entries {
			stored := path.Join(storedDir, e.Name)
			if e.Type == manifest.TypeFile && e.Link == nil && !r.opts.Filter.Excluded(stored, false) && r.opts.Filter.Selected(stored, false) && r.mayWriteFile(stored) {
				chunks = append(chunks, e.Chunks...)
			}
		}
		if len(chunks) > 0 {
			pf.Prefetch(chunks)
		}
	}
	// Subtrees the loop below will descend into, loaded ahead of it.
	var dirs []int
	for i, e := range tree.Entries {
		if e.Type != manifest.TypeDir || manifest.ValidName(e.Name) != nil {
			continue
		}
		if stored := path.Join(storedDir, e.Name); !r.opts.Filter.Excluded(stored, true) && r.opts.Filter.Selected(stored, true) {
			dirs = append(dirs, i)
		}
	}
	loads := map[int]*treeLoad{}
	nextLoad := 0
	loadAhead := func() {
		for nextLoad < len(dirs) && len(loads) < treeAhead {
			i := dirs[nextLoad]
			loads[i] = r.loadTreeAhead(tree.Entries[i].Subtree)
			nextLoad++
		}
	}
	// Loads still running when the walk stops early must not outlive it
	// (they use the store).
	defer func() {
		for _, l := range loads {
			<-l.done
		}
	}()
	loadAhead()
	for i, e := range tree.Entries {
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
		v := r.admit(stored, rel, &e)
		if v == admitDrop && (!isDir || loads[i] == nil) {
			continue
		}
		switch e.Type {
		case manifest.TypeDir:
			var sub *manifest.Tree
			if l := loads[i]; l != nil {
				<-l.done
				sub, err = l.tree, l.err
				delete(loads, i)
				loadAhead()
			} else {
				sub, err = r.store.LoadTree(e.Subtree)
			}
			if v == admitDrop {
				continue // its subtree was loaded ahead of the walk
			}
			if err != nil {
				r.fail(stored+"/", fmt.Errorf("directory contents lost: %w", err))
				continue
			}
			if v == admitThrough {
				if err := r.walkThrough(ctx, sub, stored); err != nil {
					return err
				}
				continue
			}
			parent, name, err := r.place(dir, rel)
			if err != nil {
				r.fail(rel, err)
				continue
			}
			h, err := r.openChild(parent, name, rel, e)
			parent.release()
			if err != nil {
				r.fail(rel, err)
				continue
			}
			select {
			case r.walkers <- struct{}{}:
				r.walkG.Go(func() error {
					defer func() { <-r.walkers }()
					defer h.release()
					return r.walk(r.walkCtx, sub, stored, h)
				})
			default: // every extra walker is busy: walk it here
				err = r.walk(ctx, sub, stored, h)
				h.release()
				if err != nil {
					return err
				}
			}
		case manifest.TypeSymlink:
			h, name, err := r.place(dir, rel)
			if err != nil {
				r.fail(rel, err)
				continue
			}
			if err := h.pin(); err != nil {
				r.fail(rel, err)
			} else if err := r.symlink(h, name, rel, e); err != nil {
				h.unpin()
				r.fail(rel, err)
			} else {
				h.unpin()
				r.symlinks.Add(1)
			}
			h.release()
		case manifest.TypeFile:
			h, name, err := r.place(dir, rel)
			if err != nil {
				r.fail(rel, err)
				continue
			}
			job := &fileJob{dir: h, name: name, rel: rel, stored: stored, entry: e, done: make(chan struct{})}
			if e.HardLink == "" {
				if err := r.queue(ctx, job); err != nil {
					return err
				}
				continue
			}
			// The first name of a hard-linked file is queued before any
			// name waiting for it (the lock spans registration and queueing
			// across walkers): workers take jobs in order, so the one
			// restoring the first is never itself waiting.
			r.linkMu.Lock()
			if first := r.hardlinks[e.HardLink]; first != nil {
				job.linkOf = first
			} else {
				// Later links need first's directory open; Run releases
				// it once every file is done.
				h.acquire()
				r.hardlinks[e.HardLink] = job
			}
			err = r.queue(ctx, job)
			r.linkMu.Unlock()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// place returns a held directory handle and the single name under which
// target path rel is created: the current directory's handle when rel lies
// directly in it (the common case), else a handle on rel's parent after
// creating it (when --map moved the entry elsewhere). Callers release it.
func (r *restorer) place(dir *dirHandle, rel string) (*dirHandle, string, error) {
	parent := path.Dir(rel)
	if parent == "." {
		parent = ""
	}
	if parent == dir.rel {
		dir.acquire()
		return dir, path.Base(rel), nil
	}
	if parent == "" {
		r.top.acquire()
		return r.top, rel, nil
	}
	h, err := r.openPath(parent)
	if err != nil {
		return nil, "", err
	}
	return h, path.Base(rel), nil
}

// replaceable decides whether an existing path may be replaced by an entry.
// It returns ok=false with a reason to skip, or an error.
func (r *restorer) replaceable(dir *dirHandle, name string, e manifest.Entry) (bool, string) {
	if dir.fresh {
		return true, ""
	}
	var st unix.Stat_t
	err := unix.Fstatat(dir.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return true, ""
	}
	if err != nil {
		return false, err.Error()
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return false, "exists as a directory; not replaced"
	}
	switch r.opts.Overwrite {
	case OverwriteAlways:
		return true, ""
	case OverwriteOlder:
		if st.Mtim.Nano() < e.MTimeNs {
			return true, ""
		}
		return false, "exists and is not older than the record's copy; left alone"
	}
	return false, "exists; left alone (use --overwrite always or older)"
}

func timespecs(ns int64) []unix.Timespec {
	return []unix.Timespec{unix.NsecToTimespec(ns), unix.NsecToTimespec(ns)}
}

func (r *restorer) symlink(dir *dirHandle, name, rel string, e manifest.Entry) error {
	if ok, why := r.replaceable(dir, name, e); !ok {
		r.skip(rel, why)
		return nil
	}
	tmp := tempName()
	if err := unix.Symlinkat(e.Target, dir.fd, tmp); err != nil {
		return fmt.Errorf("create symlink: %w", err)
	}
	if r.opts.Owners {
		if err := unix.Fchownat(dir.fd, tmp, r.uid(e), r.gid(e), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			unix.Unlinkat(dir.fd, tmp, 0)
			return fmt.Errorf("chown symlink: %w", err)
		}
	}
	_ = unix.UtimesNanoAt(dir.fd, tmp, timespecs(e.MTimeNs), unix.AT_SYMLINK_NOFOLLOW)
	if err := unix.Renameat(dir.fd, tmp, dir.fd, name); err != nil {
		unix.Unlinkat(dir.fd, tmp, 0)
		return fmt.Errorf("rename symlink into place: %w", err)
	}
	return nil
}

// setMeta applies xattrs, ownership and mode (in that order: chown clears
// setuid bits) to an open file or directory.
func (r *restorer) setMeta(e manifest.Entry, f *os.File) error {
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
	return nil
}

// uid and gid are the owner admit resolved on the target (policy.go).
func (r *restorer) uid(e manifest.Entry) int { return int(e.UID) }

func (r *restorer) gid(e manifest.Entry) int { return int(e.GID) }
