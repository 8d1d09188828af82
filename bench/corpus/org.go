package corpus

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// OrgOptions describe a generated organisation.
type OrgOptions struct {
	Out   string // DIR: profiles go to DIR/home/userNN
	Users int
	Size  int64 // total bytes of file data across all users (approximate)
	Seed  uint64
	Shape Shape // how the bytes are spread over files (default ShapeRealistic)
}

// OrgInfo summarises a generated or mutated corpus.
type OrgInfo struct {
	Root      string   `json:"root"`  // DIR (capture with --root DIR)
	Users     []string `json:"users"` // user01, user02, ...
	Files     int      `json:"files"`
	Bytes     int64    `json:"bytes"`
	ZstdRatio float64  `json:"zstd_ratio"` // 0 when not measured

	Dirs     int `json:"dirs"`     // directories under DIR/home, DIR/home included
	Symlinks int `json:"symlinks"` //

	// GenerateOrg only.
	Shape          string              `json:"shape,omitempty"`            // realistic or large-files
	MedianFileSize int64               `json:"median_file_size,omitempty"` // bytes; with P90FileSize and P99FileSize, the size distribution by count
	P90FileSize    int64               `json:"p90_file_size,omitempty"`
	P99FileSize    int64               `json:"p99_file_size,omitempty"`
	DistinctBytes  int64               `json:"distinct_bytes,omitempty"` // bytes of distinct files (each shared file once)
	Kinds          map[string]int64    `json:"kinds,omitempty"`          // bytes by origin: org, dept, unique, edited, config
	Classes        map[string]int64    `json:"classes,omitempty"`        // bytes by content: text, binary, compressed (mixed files split by recipe)
	Departments    map[string][]string `json:"departments,omitempty"`    // department → its users

	// MutateOrg only.
	Added        int   `json:"added,omitempty"`         // files created
	Modified     int   `json:"modified,omitempty"`      // files edited, appended to or rewritten
	Deleted      int   `json:"deleted,omitempty"`       // files removed
	Renamed      int   `json:"renamed,omitempty"`       // files moved to a new name, contents untouched
	ChangedBytes int64 `json:"changed_bytes,omitempty"` // bytes of the added and modified files (what a capture re-reads)
	// Changes lists every file MutateOrg added, modified, deleted or
	// renamed, sorted by path.
	Changes []OrgChange `json:"changes,omitempty"`
}

// OrgChange is one file MutateOrg changed.
type OrgChange struct {
	Kind string `json:"kind"` // added, modified, deleted or renamed
	Path string `json:"path"` // slash path relative to DIR (home/userNN/...)
	From string `json:"from,omitempty"`
}

// Now is the corpus' "now": generated modification times fall in the
// three years before it. MutateOrg moves a week past the newest mtime.
var Now = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

const corpusSpan = 3 * 365 * 24 * time.Hour

// corpusRatioSample is how many bytes GenerateOrg compresses to measure
// ZstdRatio (every k-th 1 MiB block when the corpus is larger).
const corpusRatioSample = 256 << 20

// GenerateOrg writes a deterministic organisation: DIR/home/user01 ...
// userNN, each a Linux-like profile (Documents, Desktop, Pictures,
// Downloads, .config, .local/share, sometimes .cache, .ssh). DIR/home must
// not exist yet. Per user, by bytes:
//
//   - org (35%): files identical in every profile, at the same paths —
//     installers (the largest file, up to Size/Users/6, capped at 400 MiB),
//     templates, policies, a handbook, tools, fonts, wallpapers;
//   - dept (20%): files shared by the members of one of 2-4 departments
//     (at most Users-1, so with 3+ users some files are shared by more than
//     one user but not all): spreadsheets, reports, a large dataset, decks;
//   - unique (about 25%): the user's own documents, photos, downloads,
//     projects, a large mailbox or video; odd names (spaces, unicode,
//     leading dash, a 200-byte name, an empty file);
//   - edited (about 10%): copies of org and dept text/binary files with
//     bytes inserted and deleted mid-file, so only content-defined chunking
//     finds what they share with the original;
//   - config (10%): dozens of 1-8 KiB config files (json, ini, xml, yaml,
//     prefs.js), shell history, ssh keys, logs, databases and caches; the
//     shell start-up files are identical for everyone.
//
// The contents come from gen.go's material (spliced real text, pieces of
// real executables, gzip of those, real .gz/.png files): no random filler.
// Compressed files (.docx, .jpg, .zip) are gzip streams; installers, PDFs
// and mailboxes mix text, binary and gzip segments. Modes are 0644, 0600
// (private files, keys), 0755 (tools, scripts) and 0700 directories
// (profiles, .ssh, keyrings, Private); mtimes are spread over the three
// years before Now (logs and configs recent), copies of a shared file
// keep its mtime, directory mtimes are their newest entry's. Each profile
// has relative symlinks (to a file, to a directory, one dangling) and
// empty directories. The same options on the same machine give the same
// tree: paths, bytes, modes and mtimes.
//
// ZstdRatio is measured on up to 256 MiB of 1 MiB blocks sampled evenly
// across the corpus (MeasureRatio).
func GenerateOrg(o OrgOptions) (*OrgInfo, error) {
	if o.Users < 1 || o.Users > 99 {
		return nil, fmt.Errorf("corpus: %d users, want 1-99", o.Users)
	}
	if o.Size/int64(o.Users) < 1<<20 {
		return nil, fmt.Errorf("corpus: size %d is under 1 MiB per user", o.Size)
	}
	if o.Out == "" {
		return nil, fmt.Errorf("corpus: no output directory")
	}
	if o.Shape != ShapeRealistic && o.Shape != ShapeLargeFiles {
		return nil, fmt.Errorf("corpus: unknown shape %v", o.Shape)
	}
	home := filepath.Join(o.Out, "home")
	if _, err := os.Lstat(home); err == nil {
		return nil, fmt.Errorf("corpus: %s already exists", home)
	}
	c, err := loadMaterial()
	if err != nil {
		return nil, err
	}
	p := planCorpus(c, o)
	if err := p.write(c, o.Out, o.Seed); err != nil {
		return nil, err
	}
	info := p.info(o.Out)
	r, err := MeasureRatio(home, corpusRatioSample)
	if err != nil {
		return nil, err
	}
	info.ZstdRatio = r.Total()
	return info, nil
}
