package capture

import (
	"context"
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
	"sync/atomic"
	"time"

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

// HoldingStore is a Store that keeps every chunk of the records it holds
// for as long as the capture runs: no gc and no forget can run meanwhile
// (a local store, which one process holds at a time). HoldsRecordChunks
// says whether it does; when it does, a file unchanged since the parent
// record reuses the parent's chunks without asking the store about each
// (a shared store, which gc on another machine may be emptying, and a
// store that cannot say, are asked, chunk by chunk).
type HoldingStore interface {
	HoldsRecordChunks() (bool, error)
}

// ProvingStore is a Store that decides whether it needs a blob only after
// seeing its bytes: a remote SMP says it holds a chunk only to a client
// that proves it has the content (remote/client.Capture). Capture uses it
// instead of Reserve when the store offers it.
type ProvingStore interface {
	ReserveData(t cas.BlobType, id cas.ID, plain []byte) (bool, error)
}

// OfferingStore is a ProvingStore whose answer comes later: OfferData
// queues the offer of a chunk and returns at once, so a file worker goes
// on to its next chunk while the store asks about many chunks in one
// round trip (remote/client.Capture). answer is called exactly once, from
// any goroutine and possibly before OfferData returns, with whether the
// store needs the blob; plain stays the caller's and unchanged until then.
// WaitOffers returns once every offer made before it was called has been
// answered and its answer has returned. Capture uses it instead of
// ReserveData when the store offers it.
type OfferingStore interface {
	OfferData(t cas.BlobType, id cas.ID, plain []byte, answer func(need bool, err error))
	WaitOffers()
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
	// ChunkBuffers is how many files at most are chunked at once in a
	// buffer of the chunker's full size (those of the store's minimum
	// chunk size or more; see chunkbuf.go); 0 = GOMAXPROCS, at least 2.
	ChunkBuffers int
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
	// Compression is how hard the compressors work on new chunks; the
	// zero value is cas.DefaultLevel. Any level reads back the same, so
	// captures into one store may differ.
	Compression cas.Level
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

// IngestResult describes a hard-link record turned into a chunked one.
type IngestResult struct {
	ID       cas.ID
	Record   *manifest.Record
	Ingested uint64 // files read from the store's links and chunked
}

// ErrNothingSelected is returned when the selection matches no path.
var ErrNothingSelected = errors.New("nothing to capture")

// Run captures opts' selection into store and commits a record.
func Run(ctx context.Context, store Store, opts Options) (*Result, error) {
	opts.setDefaults()
	if err := manifest.CheckName("computer", opts.Computer); err != nil {
		return nil, err
	}
	sel, users, err := selectPaths(opts.Root, opts.Paths, opts.Users)
	if err != nil {
		return nil, err
	}
	return runCapture(ctx, store, opts, sel, users)
}

// setDefaults fills the options a caller may leave zero.
func (opts *Options) setDefaults() {
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
	if opts.ChunkBuffers <= 0 {
		opts.ChunkBuffers = max(2, runtime.GOMAXPROCS(0))
	}
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
