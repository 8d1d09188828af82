package restore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"

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

// ParseUserMapping parses --map-user OLD=NEW, two account names.
func ParseUserMapping(s string) (from, to string, err error) {
	from, to, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("--map-user %q: want OLD=NEW, e.g. alice=alice.smith", s)
	}
	for _, n := range []string{from, to} {
		if err := CheckAccountName(n); err != nil {
			return "", "", fmt.Errorf("--map-user %q: %v", s, err)
		}
	}
	if from == to {
		return "", "", fmt.Errorf("--map-user %q maps a user to itself", s)
	}
	return from, to, nil
}

// CheckAccountName refuses a name that cannot be a local account: the
// portable user name characters (letters, digits, '.', '_', '-', a
// trailing '$' for machine accounts), not starting with '-' (useradd
// would take it for an option), at most 32 bytes.
func CheckAccountName(n string) error {
	if n == "" || len(n) > 32 || n[0] == '-' {
		return fmt.Errorf("%q is not an account name", n)
	}
	for i, c := range n {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-' ||
			c == '$' && i == len(n)-1
		if !ok {
			return fmt.Errorf("%q is not an account name (letters, digits, '.', '_', '-')", n)
		}
	}
	return nil
}

// Options control a restore.
type Options struct {
	Target string // absolute directory; created when missing
	Maps   []Mapping
	// Users maps identities without moving paths (--map-user OLD=NEW):
	// what the record gives OLD, the target gives NEW.
	Users     map[string]string
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
	// Exists is set for a path left alone because the target has one
	// (--overwrite never or older).
	Exists bool
}

// Reasons a path was not restored, as a restore's summary groups them.
const (
	ReasonExists     = "exists"                // left alone by --overwrite never or older
	ReasonChanged    = "changed since capture" // a hard-link record's file was edited after it
	ReasonPermission = "permission denied"
	ReasonDiskFull   = "disk full"
	ReasonOther      = "error"
	ReasonWarning    = "left alone" // a leftover of an interrupted restore
)

// Reason classifies a problem for the restore's summary.
func (p Problem) Reason() string {
	switch {
	case p.Exists:
		return ReasonExists
	case p.Warning:
		return ReasonWarning
	case errors.Is(p.Err, ErrChangedSinceCapture):
		return ReasonChanged
	case errors.Is(p.Err, syscall.ENOSPC) || errors.Is(p.Err, syscall.EDQUOT):
		return ReasonDiskFull
	case errors.Is(p.Err, fs.ErrPermission):
		return ReasonPermission
	}
	return ReasonOther
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

// Run restores rec's tree under opts.Target.
func Run(ctx context.Context, store Store, rec *manifest.Record, opts Options) (*Result, error) {
	opts.setDefaults()
	return runRestore(ctx, store, rec, opts)
}

// setDefaults fills the options a caller may leave zero.
func (opts *Options) setDefaults() {
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
}

// ErrChangedSinceCapture marks a linked file modified after its capture.
var ErrChangedSinceCapture = errors.New("changed since capture")
