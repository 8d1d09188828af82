package capture

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"smp/cas"
	"smp/cas/manifest"
	"smp/filter"
)

// Store is what capture needs of a store (a *repo.Repo).
type Store interface {
	ChunkerParams() cas.ChunkerParams
	Reserve(t cas.BlobType, id cas.ID) (bool, error)
	AddBlob(t cas.BlobType, id cas.ID, c cas.Compression, stored []byte, rawLen int) error
	PutTree(t *manifest.Tree) (cas.ID, error)
	LoadTree(id cas.ID) (*manifest.Tree, error)
	Has(t cas.BlobType, id cas.ID) (bool, error)
	CommitRecord(rec *manifest.Record) (cas.ID, error)
	Sum(b []byte) cas.ID
}

// ProvingStore is a Store that decides whether it needs a blob only after
// seeing its bytes: a remote SMP says it holds a chunk only to a client
// that proves it has the content (remote/client.Capture). Capture uses it
// instead of Reserve when the store offers it.
type ProvingStore interface {
	ReserveData(t cas.BlobType, id cas.ID, plain []byte) (bool, error)
}

// Options select what to capture.
type Options struct {
	Computer string
	Root     string   // absolute source root; stored paths are relative to it
	Paths    []string // slash-separated, relative to Root; empty = every profile
	Users    []string // limit to these profiles
	Filter   *filter.Set
	Rules    []string // the rule lines, kept in the record
	Parent   *manifest.Record
	ParentID cas.ID
	// ParentLookup, when set, finds Parent and ParentID only when the
	// capture needs them, so the store's index may still be opening while
	// the capture starts: at once, unless Hardlink is always. Then no file
	// can reuse a parent's chunks (each is linked or the capture fails),
	// and only the record's Parent field needs it, at commit.
	ParentLookup func() (*manifest.Record, cas.ID)
	Version      string
	Workers      int // file workers; 0 = 2 x GOMAXPROCS
	// SkipDirs are absolute directories never captured (the store itself).
	SkipDirs []string
	// Report receives every skipped or failed path. Called from many
	// goroutines; Err is nil for a warning-only skip (sockets, fifos).
	Report   func(Problem)
	Progress *Progress
	Now      func() time.Time
	// Hardlink, when HardlinkAuto or HardlinkAlways, hard-links or clones
	// files into LinkDir instead of chunking them; the zero value chunks.
	Hardlink       HardlinkMode
	LinkDir        string // the store's links/ directory
	HardlinkDedupe bool   // hash files so identical ones share one object
}

// Problem is a path that was not captured, or captured with a warning.
type Problem struct {
	Path    string
	Err     error
	Warning bool
}

// Progress is updated atomically while a capture runs; a UI polls it.
type Progress struct {
	FilesSeen, BytesSeen atomic.Uint64 // found by the walker so far
	FilesDone, BytesDone atomic.Uint64 // fully processed
	NewBytes, Stored     atomic.Uint64
	Unchanged            atomic.Uint64 // files reused from the parent record
	Errors               atomic.Uint64
	Linked, Cloned       atomic.Uint64 // files held by hard link / clone
	LinkFallback         atomic.Uint64 // files chunked because no link was possible
}

// Result summarises a committed capture.
type Result struct {
	ID     cas.ID
	Record *manifest.Record
}

// Directories walked but not yet written as trees hold all their entries.
// The finisher waits for each in turn, so one large file keeps every
// directory after it queued: many may wait (dirQueue), so that the walker
// and the other workers keep going, but only up to queuedEntries entries
// in all (about 300 bytes each), so that a run of wide directories (1000s
// of files each) cannot hold a large part of the tree in memory.
const (
	dirQueue      = 1024
	queuedEntries = 16 << 10
)

// ErrNothingSelected is returned when the selection matches no path.
var ErrNothingSelected = errors.New("nothing to capture")

type capturer struct {
	opts     Options
	store    Store
	prover   ProvingStore // store as a ProvingStore, or nil
	params   cas.ChunkerParams
	progress *Progress
	skip     map[devIno]bool

	fileJobs     chan *fileJob
	compressJobs chan compressJob
	dirs         chan *dirNode
	dirEntries   *semaphore.Weighted // queuedEntries: entries of the dirs in c.dirs
	rootTree     cas.ID

	// hardlinks holds, for inodes with more than one link, the first name
	// captured until every link has been seen (walker only). It is the one
	// structure that can outlive a directory; see hardLink.
	hardlinks map[devIno]*hardLink
	direntBuf []byte // getdents buffer (walker only)
	linker    *linker
	// linkFirst: regular files are hard-linked into the store before
	// anything else (see linkByName), so the walker need not stat them.
	linkFirst bool
	names     nameCache
	bufPools  [48 - minBufClass]sync.Pool // by bufClass; chunks are at most 256 MiB
	errors    atomic.Uint64
	dirCount  atomic.Uint64
	symlinks  atomic.Uint64
	files     atomic.Uint64
	bytes     atomic.Uint64
}

type devIno struct{ dev, ino uint64 }

type fileJob struct {
	abs  string // for reports
	name string // opened in parent, never by abs
	// parent is the open directory of the file, held for the job.
	parent *dirHandle
	entry  *manifest.Entry
	prev   *manifest.Entry
	dir    *dirNode
	slot   int
	dev    uint64
	// unstatted: only the name and type are known (from the directory
	// listing); the worker links the file first and stats the link.
	unstatted bool
	// first is set on the first name of a multiply-linked inode: its
	// worker publishes the result there. linkOf is set on the later
	// names, which wait for it and reuse that result.
	first, linkOf *hardLink
	failed        bool
	// unchanged is set when the parent record's chunks were reused.
	unchanged bool
}

// hardLink is the result of capturing the first name of an inode with
// more than one link. It copies out only what later names reuse, so a
// pending link group never holds its directory's entries, the fileJob or
// the parent record's tree in memory after the directory is written.
type hardLink struct {
	done chan struct{} // closed when the fields below are final
	// left counts the links not yet seen by the walker; at zero the group
	// leaves capturer.hardlinks. Links outside the captured tree keep it
	// there to the end, so that map grows only with such inodes.
	left      uint64
	failed    bool
	unchanged bool
	size      uint64
	mtimeNs   int64
	chunks    []manifest.Chunk
	link      *manifest.Link
	xattrs    map[string][]byte
}

// publish records job's outcome for the inode's later names.
func (h *hardLink) publish(job *fileJob) {
	h.failed, h.unchanged = job.failed, job.unchanged
	if !job.failed {
		h.size, h.mtimeNs, h.chunks, h.link = job.entry.Size, job.entry.MTimeNs, job.entry.Chunks, job.entry.Link
		h.xattrs = job.entry.Xattrs
	}
	close(h.done)
}

type compressJob struct {
	id    cas.ID
	plain *[]byte
	n     int
}

// dirNode is a directory being captured: its entries are filled in by file
// workers and by the finisher of its subdirectories.
type dirNode struct {
	rel     string
	entries []manifest.Entry
	drop    []bool // entries whose capture failed
	pending sync.WaitGroup
	parent  *dirNode
	slot    int   // index in parent.entries
	queued  int64 // its weight in capturer.dirEntries
	// dev and ino identify the directory as the walk opened it.
	dev, ino uint64
}

// Run captures opts' selection into store and commits a record.
func Run(ctx context.Context, store Store, opts Options) (*Result, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Filter == nil {
		opts.Filter = filter.NewSet()
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	if opts.Report == nil {
		opts.Report = func(Problem) {}
	}
	if opts.Workers <= 0 {
		opts.Workers = 2 * runtime.GOMAXPROCS(0)
	}
	if err := manifest.CheckName("computer", opts.Computer); err != nil {
		return nil, err
	}
	sel, users, err := selectPaths(opts.Root, opts.Paths, opts.Users)
	if err != nil {
		return nil, err
	}
	prover, _ := store.(ProvingStore)
	c := &capturer{
		prover: prover,
		opts:   opts, store: store, params: store.ChunkerParams(), progress: opts.Progress,
		skip:         map[devIno]bool{},
		fileJobs:     make(chan *fileJob, 64),
		compressJobs: make(chan compressJob, 4),
		dirs:         make(chan *dirNode, dirQueue),
		dirEntries:   semaphore.NewWeighted(queuedEntries),
		hardlinks:    map[devIno]*hardLink{},
		names:        nameCache{users: map[uint32]string{}, groups: map[uint32]string{}},
	}
	for _, d := range opts.SkipDirs {
		if st, err := os.Stat(d); err == nil {
			sys := st.Sys().(*syscall.Stat_t)
			c.skip[devIno{uint64(sys.Dev), sys.Ino}] = true
		}
	}
	if opts.Hardlink.links() {
		var set [8]byte
		_, _ = rand.Read(set[:])
		c.linker, err = newLinker(opts.LinkDir, opts.Now().UTC().Format("20060102T150405Z")+"-"+hex.EncodeToString(set[:]), opts.HardlinkDedupe, store.Sum)
		if err != nil {
			return nil, err
		}
		defer c.linker.close()
		// A clone is a new inode (the user's file must then be stat'ed
		// itself), and dedupe hashes a file before placing it.
		c.linkFirst = !opts.HardlinkDedupe && c.linker.noClone.Load()
	}
	if opts.ParentLookup != nil && opts.Hardlink != HardlinkAlways {
		opts.Parent, opts.ParentID = opts.ParentLookup()
	}
	var prevRoot *manifest.Tree
	if opts.Parent != nil {
		if t, err := store.LoadTree(opts.Parent.Tree); err == nil {
			prevRoot = t
		} // an unreadable parent only costs re-reading every file
	}
	started := opts.Now()

	g, gctx := errgroup.WithContext(ctx)
	var fileWG, compressWG sync.WaitGroup
	for range opts.Workers {
		fileWG.Add(1)
		g.Go(func() error { defer fileWG.Done(); return c.fileWorker(gctx) })
	}
	for range runtime.GOMAXPROCS(0) {
		compressWG.Add(1)
		g.Go(func() error { defer compressWG.Done(); return c.compressor(gctx) })
	}
	g.Go(func() error {
		defer func() { fileWG.Wait(); close(c.compressJobs) }()
		return nil
	})
	g.Go(func() error { return c.finisher(gctx) })
	g.Go(func() error {
		defer close(c.dirs)
		defer close(c.fileJobs)
		return c.walkRoot(gctx, &dirNode{rel: ""}, sel, prevRoot)
	})
	err = g.Wait()
	for job := range c.fileJobs {
		job.parent.release() // jobs no worker took (the capture failed)
	}
	if err != nil {
		if c.linker != nil {
			os.RemoveAll(c.linker.dir) // no record will ever reference them
		}
		return nil, err
	}
	compressWG.Wait()
	if opts.ParentLookup != nil && opts.Hardlink == HardlinkAlways {
		_, opts.ParentID = opts.ParentLookup()
	}
	rec := &manifest.Record{
		Computer:    opts.Computer,
		Users:       users,
		Created:     started.UTC(),
		ToolVersion: opts.Version,
		SourceRoot:  opts.Root,
		Paths:       sel.paths(),
		Rules:       opts.Rules,
		Parent:      opts.ParentID,
		Tree:        c.rootTree,
		Files:       c.files.Load(),
		Dirs:        c.dirCount.Load(),
		Symlinks:    c.symlinks.Load(),
		Bytes:       c.bytes.Load(),
		NewBytes:    c.progress.NewBytes.Load(),
		StoredBytes: c.progress.Stored.Load(),
		Errors:      c.errors.Load(),
	}
	if c.linker != nil {
		rec.LinkedFiles, rec.ClonedFiles = c.progress.Linked.Load(), c.progress.Cloned.Load()
		if rec.LinkedFiles+rec.ClonedFiles > 0 {
			rec.LinkSet = c.linker.set
		} else {
			os.RemoveAll(c.linker.dir)
		}
	}
	id, err := store.CommitRecord(rec)
	if err != nil {
		if c.linker != nil {
			os.RemoveAll(c.linker.dir)
		}
		return nil, fmt.Errorf("commit record: %w", err)
	}
	return &Result{ID: id, Record: rec}, nil
}

// selection is a trie of the requested paths: a node with full set is
// captured whole; other nodes only lead to selected descendants.
type selection struct {
	full     bool
	children map[string]*selection
}

func (s *selection) paths() []string {
	var out []string
	var walk func(prefix string, n *selection)
	walk = func(prefix string, n *selection) {
		if n.full {
			if prefix == "" {
				prefix = "."
			}
			out = append(out, prefix)
			return
		}
		for name, ch := range n.children {
			walk(path.Join(prefix, name), ch)
		}
	}
	walk("", s)
	sort.Strings(out)
	return out
}

// selectPaths turns PATH arguments and --user names into a selection and
// the list of users whose profiles the record holds.
func selectPaths(root string, paths, users []string) (*selection, []string, error) {
	if len(paths) == 0 {
		if len(users) > 0 {
			for _, u := range users {
				if u == "root" {
					paths = append(paths, "root")
				} else {
					paths = append(paths, "home/"+u)
				}
			}
		} else {
			paths = []string{"home", "root"}
		}
	}
	top := &selection{children: map[string]*selection{}}
	userSet := map[string]bool{}
	added := 0
	for _, p := range paths {
		rel, err := cleanRel(p)
		if err != nil {
			return nil, nil, err
		}
		if _, err := os.Lstat(filepath.Join(root, filepath.FromSlash(rel))); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				if len(paths) > 1 && (rel == "root" || rel == "home") {
					continue // default profile locations need not both exist
				}
				return nil, nil, fmt.Errorf("source path %s does not exist", filepath.Join(root, rel))
			}
			return nil, nil, fmt.Errorf("source path: %w", err)
		}
		added++
		if rel == "" {
			top.full = true
			continue
		}
		n := top
		for _, part := range strings.Split(rel, "/") {
			if n.full {
				break
			}
			ch := n.children[part]
			if ch == nil {
				ch = &selection{children: map[string]*selection{}}
				n.children[part] = ch
			}
			n = ch
		}
		n.full = true
		n.children = map[string]*selection{}
	}
	if added == 0 {
		return nil, nil, fmt.Errorf("no profile found under %s (looked for home/ and root/): give PATH arguments: %w", root, ErrNothingSelected)
	}
	if len(users) > 0 {
		// Limit to the named profiles: other profiles under a selected home/
		// are excluded by the walker through allowedProfile.
		for _, u := range users {
			if err := manifest.CheckName("user", u); err != nil {
				return nil, nil, err
			}
			userSet[u] = true
		}
	}
	return top, profileUsers(root, top, userSet), nil
}

// profileUsers lists the users whose profile directories are captured.
func profileUsers(root string, sel *selection, only map[string]bool) []string {
	var users []string
	add := func(u string) {
		if (len(only) == 0 || only[u]) && !slices.Contains(users, u) {
			users = append(users, u)
		}
	}
	if sel.full {
		if entries, err := os.ReadDir(filepath.Join(root, "home")); err == nil {
			for _, e := range entries {
				if e.IsDir() {
					add(e.Name())
				}
			}
		}
		if _, err := os.Stat(filepath.Join(root, "root")); err == nil {
			add("root")
		}
	}
	if r := sel.children["root"]; r != nil {
		add("root")
	}
	if h := sel.children["home"]; h != nil {
		if h.full {
			if entries, err := os.ReadDir(filepath.Join(root, "home")); err == nil {
				for _, e := range entries {
					if e.IsDir() {
						add(e.Name())
					}
				}
			}
		}
		for name := range h.children {
			add(name)
		}
	}
	sort.Strings(users)
	return users
}

func cleanRel(p string) (string, error) {
	if strings.Contains(p, "\x00") {
		return "", fmt.Errorf("path %q contains NUL", p)
	}
	rel := path.Clean("/" + filepath.ToSlash(p))[1:]
	if strings.HasPrefix(path.Clean(filepath.ToSlash(p)), "..") {
		return "", fmt.Errorf("path %q leaves the source root: give paths relative to --root", p)
	}
	return rel, nil
}

// allowed applies --user limits and the filter to a path below the root.
func (c *capturer) allowed(rel string, isDir bool) bool {
	if len(c.opts.Users) > 0 {
		parts := strings.SplitN(rel, "/", 3)
		switch {
		case parts[0] == "home" && len(parts) >= 2:
			if !slices.Contains(c.opts.Users, parts[1]) {
				return false
			}
		case parts[0] == "root":
			if !slices.Contains(c.opts.Users, "root") {
				return false
			}
		}
	}
	return !c.opts.Filter.Excluded(rel, isDir)
}

func (c *capturer) report(p Problem) {
	if !p.Warning {
		c.errors.Add(1)
		c.progress.Errors.Add(1)
	}
	c.opts.Report(p)
}
