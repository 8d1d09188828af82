package restore

import (
	"context"
	"errors"
	"fmt"
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
)

type restorer struct {
	opts  Options
	store Store
	top   *dirHandle
	pol   *policy

	jobs      chan []*fileJob // batches: the files of one batch are restored in order by one worker
	dirCount  atomic.Uint64
	hardlinks map[string]*fileJob
	res       Result
	files     atomic.Uint64
	bytes     atomic.Uint64
	errors    atomic.Uint64
	skipped   atomic.Uint64
	symlinks  atomic.Uint64
	bufs      bufList
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

// runRestore restores with the Linux walker: every target name is created
// relative to its parent directory's descriptor.
func runRestore(ctx context.Context, store Store, rec *manifest.Record, opts Options) (*Result, error) {
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
		jobs: make(chan []*fileJob, 32), hardlinks: map[string]*fileJob{},
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

// skipExisting leaves a path alone that the target already has.
func (r *restorer) skipExisting(rel string, why string) {
	r.skipped.Add(1)
	r.opts.Progress.Skipped.Add(1)
	r.opts.Report(Problem{Path: rel, Err: errors.New(why), Warning: true, Exists: true})
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

// queue hands a batch of files to the workers; on failure it releases
// their directories.
func (r *restorer) queue(ctx context.Context, batch []*fileJob) error {
	select {
	case r.jobs <- batch:
		return nil
	case <-ctx.Done():
		for _, job := range batch {
			job.dir.release()
		}
		return ctx.Err()
	}
}

// Batches of files. Files of one directory go to the workers together, as
// one batch that one worker restores in order: workers then mostly create
// files in different directories instead of contending for one
// directory's lock (creating and renaming a name lock the directory's
// inode). A batch is cut at maxBatchFiles files or maxBatchBytes bytes, so
// a large directory still spreads over every worker.
const (
	maxBatchFiles = 64
	maxBatchBytes = 2 << 20
)

// batch collects the files a walker queues, up to a batch's bounds.
type batch struct {
	jobs  []*fileJob
	bytes uint64
}

func (b *batch) add(job *fileJob) (full bool) {
	b.jobs = append(b.jobs, job)
	b.bytes += job.entry.Size
	return len(b.jobs) >= maxBatchFiles || b.bytes >= maxBatchBytes
}

// flush queues the files collected.
func (r *restorer) flush(ctx context.Context, b *batch) error {
	if len(b.jobs) == 0 {
		return nil
	}
	jobs := b.jobs
	*b = batch{}
	return r.queue(ctx, jobs)
}

// drop releases the directories of files collected and never queued (the
// walk stopped).
func (b *batch) drop() {
	for _, job := range b.jobs {
		job.dir.release()
	}
	*b = batch{}
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
		r.skipExisting(rel, why)
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
// setuid bits) to the open file or directory fd.
func (r *restorer) setMeta(e manifest.Entry, fd int) error {
	for name, value := range e.Xattrs {
		if err := unix.Fsetxattr(fd, name, value, 0); err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	if r.opts.Owners {
		if err := unix.Fchown(fd, r.uid(e), r.gid(e)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	// The permission bits and setuid, setgid and sticky are the same bits
	// in the record's mode as in chmod(2)'s.
	if err := unix.Fchmod(fd, e.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

// uid and gid are the owner admit resolved on the target (policy.go).
func (r *restorer) uid(e manifest.Entry) int { return int(e.UID) }

func (r *restorer) gid(e manifest.Entry) int { return int(e.GID) }
