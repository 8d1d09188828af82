package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"smp/cas"
)

// Versions of the encodings below; see docs/FORMAT.md.
const (
	TreeVersion   = 1
	RecordVersion = 1
)

// Type is an entry's file type.
type Type string

const (
	TypeFile    Type = "file"
	TypeDir     Type = "dir"
	TypeSymlink Type = "symlink"
)

// Chunk is one piece of a file's contents.
type Chunk struct {
	ID   cas.ID `json:"id"`
	Size uint32 `json:"size"`
}

// Entry is one name in a directory.
type Entry struct {
	Name     string            `json:"name"`
	Type     Type              `json:"type"`
	Mode     uint32            `json:"mode"` // permission and setuid/setgid/sticky bits (fs.FileMode bits, no type bits)
	UID      uint32            `json:"uid"`
	GID      uint32            `json:"gid"`
	User     string            `json:"user,omitempty"`
	Group    string            `json:"group,omitempty"`
	MTimeNs  int64             `json:"mtime_ns"`
	CTimeNs  int64             `json:"ctime_ns,omitempty"` // change detection only; never restored
	Inode    uint64            `json:"inode,omitempty"`    // change detection only
	Size     uint64            `json:"size,omitempty"`
	Target   string            `json:"target,omitempty"` // symlink target
	Xattrs   map[string][]byte `json:"xattrs,omitempty"`
	Chunks   []Chunk           `json:"chunks,omitempty"`
	Subtree  cas.ID            `json:"subtree,omitzero"`
	HardLink string            `json:"hardlink,omitempty"` // same value = same inode in the source
	// Link is set when the file's contents are held by a hard link or clone
	// in the store's links/ directory instead of chunks (local refresh).
	Link *Link `json:"link,omitempty"`
	// NameRaw and TargetRaw carry a name or symlink target that is not valid
	// UTF-8 (legal on Linux, not representable in a JSON string). They exist
	// only in the encoding: Encode fills them, DecodeTree folds them back.
	NameRaw    []byte `json:"name_raw,omitempty"`
	TargetRaw  []byte `json:"target_raw,omitempty"`
	Incomplete bool   `json:"incomplete,omitempty"`
}

// Link methods: how a linked file's store object was made.
const (
	LinkHard  = "hardlink" // same inode as the user's file
	LinkClone = "clone"    // FICLONE copy-on-write copy: shares blocks only
)

// Link locates the store object holding a file captured by link.
type Link struct {
	Method string `json:"method"`
	// Object is the path below the store's links/ directory:
	// "<link set>/<bucket>/<n>", each part a valid name.
	Object string `json:"object"`
	// CTimeNs is the store object's ctime right after it was made: any later
	// change to the object (through the user's hard-linked name) moves it.
	CTimeNs int64 `json:"ctime_ns"`
	// Nlink is the object's link count at that moment. Adding or removing a
	// name (the OS reinstall deleting the user's copy, a restore linking a
	// new one) moves the ctime too; a ctime change with a different link
	// count and the same size and mtime is such a change, not an edit.
	Nlink uint64 `json:"nlink,omitempty"`
	// Hash is the chunk-style ID of the whole file, recorded with
	// --hardlink-dedupe; zero otherwise.
	Hash cas.ID `json:"hash,omitzero"`
}

// CheckObject validates a link object path read from a record.
func CheckObject(obj string) error {
	// Checked for every linked file of every tree encoded or decoded: no
	// strings.Split allocation.
	if n := strings.Count(obj, "/") + 1; n < 2 || n > 4 {
		return fmt.Errorf("link object %q: want set/bucket/name: %w", obj, cas.ErrCorrupt)
	}
	for rest, more := obj, true; more; {
		var p string
		p, rest, more = strings.Cut(rest, "/")
		if err := ValidName(p); err != nil {
			return fmt.Errorf("link object %q: %w", obj, err)
		}
	}
	return nil
}

// Tree is one directory's entries, sorted by name.
type Tree struct {
	Version int     `json:"v"`
	Entries []Entry `json:"entries"`
}

// MaxName bounds a name's length in bytes (Linux NAME_MAX).
const MaxName = 255

// ValidName reports whether name can be a single path component on restore.
func ValidName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("invalid name %q: %w", name, cas.ErrCorrupt)
	case len(name) > MaxName:
		return fmt.Errorf("name of %d bytes is too long: %w", len(name), cas.ErrCorrupt)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("name %q contains '/' or NUL: %w", name, cas.ErrCorrupt)
	}
	return nil
}

// Check validates a tree's structure.
func (t *Tree) Check() error {
	if t.Version != TreeVersion {
		return fmt.Errorf("tree version %d not supported (want %d): %w", t.Version, TreeVersion, cas.ErrCorrupt)
	}
	for i := range t.Entries {
		e := &t.Entries[i]
		if err := ValidName(e.Name); err != nil {
			return err
		}
		if i > 0 && t.Entries[i-1].Name >= e.Name {
			return fmt.Errorf("tree entries not sorted or duplicated at %q: %w", e.Name, cas.ErrCorrupt)
		}
		if e.Mode&^0o7777 != 0 {
			return fmt.Errorf("entry %q has invalid mode %o: %w", e.Name, e.Mode, cas.ErrCorrupt)
		}
		switch e.Type {
		case TypeFile:
			var sum uint64
			for _, c := range e.Chunks {
				if c.Size == 0 || c.Size > cas.MaxBlobSize {
					return fmt.Errorf("entry %q has a chunk of %d bytes: %w", e.Name, c.Size, cas.ErrCorrupt)
				}
				sum += uint64(c.Size)
			}
			if e.Link != nil {
				if len(e.Chunks) > 0 || (e.Link.Method != LinkHard && e.Link.Method != LinkClone) {
					return fmt.Errorf("linked entry %q has chunks or an unknown method: %w", e.Name, cas.ErrCorrupt)
				}
				if err := CheckObject(e.Link.Object); err != nil {
					return err
				}
			} else if sum != e.Size && !e.Incomplete {
				return fmt.Errorf("entry %q: chunks hold %d bytes, size says %d: %w", e.Name, sum, e.Size, cas.ErrCorrupt)
			}
			if !e.Subtree.IsZero() || e.Target != "" {
				return fmt.Errorf("file entry %q has a subtree or target: %w", e.Name, cas.ErrCorrupt)
			}
		case TypeDir:
			if e.Subtree.IsZero() || len(e.Chunks) > 0 || e.Link != nil {
				return fmt.Errorf("dir entry %q needs a subtree and no chunks: %w", e.Name, cas.ErrCorrupt)
			}
		case TypeSymlink:
			if e.Target == "" || strings.Contains(e.Target, "\x00") || len(e.Chunks) > 0 || e.Link != nil {
				return fmt.Errorf("symlink entry %q has an invalid target: %w", e.Name, cas.ErrCorrupt)
			}
		default:
			return fmt.Errorf("entry %q has unknown type %q: %w", e.Name, e.Type, cas.ErrCorrupt)
		}
		if !utf8.ValidString(e.User) || !utf8.ValidString(e.Group) || e.NameRaw != nil || e.TargetRaw != nil {
			return fmt.Errorf("entry %q has non-UTF-8 owner names or unfolded raw fields: %w", e.Name, cas.ErrCorrupt)
		}
		for k := range e.Xattrs {
			if k == "" || strings.Contains(k, "\x00") || !utf8.ValidString(k) {
				return fmt.Errorf("entry %q has an invalid xattr name: %w", e.Name, cas.ErrCorrupt)
			}
		}
	}
	return nil
}

// Encode returns the canonical encoding of t (sorted entries, sorted map
// keys), so identical directories produce identical blobs and IDs.
func (t *Tree) Encode() ([]byte, error) {
	return t.AppendEncode(make([]byte, 0, 64+256*len(t.Entries)))
}

// AppendEncode appends Encode's bytes to dst, so a caller storing many
// trees can reuse one buffer.
func (t *Tree) AppendEncode(dst []byte) ([]byte, error) {
	wire, err := t.wire()
	if err != nil {
		return nil, err
	}
	if b, ok := appendCanonicalTree(dst, &wire); ok {
		return b, nil
	}
	b, err := json.Marshal(&wire)
	if err != nil {
		return nil, err
	}
	return append(dst, b...), nil
}

// wire sorts and checks t, and returns it as it is encoded: names and
// targets that are not UTF-8 moved to their raw fields.
func (t *Tree) wire() (Tree, error) {
	t.Version = TreeVersion
	slices.SortFunc(t.Entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	if err := t.Check(); err != nil {
		return Tree{}, fmt.Errorf("encode tree: %w", err)
	}
	wire := *t
	for i, e := range t.Entries {
		if utf8.ValidString(e.Name) && utf8.ValidString(e.Target) {
			continue
		}
		if wire.Entries == nil || &wire.Entries[0] == &t.Entries[0] {
			wire.Entries = slices.Clone(t.Entries)
		}
		w := &wire.Entries[i]
		if !utf8.ValidString(e.Name) {
			w.NameRaw, w.Name = []byte(e.Name), ""
		}
		if !utf8.ValidString(e.Target) {
			w.TargetRaw, w.Target = []byte(e.Target), ""
		}
	}
	return wire, nil
}

// unwire folds raw names and targets back, accepting only the canonical
// form Encode writes (raw fields only for bytes that are not UTF-8).
func (e *Entry) unwire() error {
	if e.NameRaw != nil {
		if e.Name != "" || utf8.Valid(e.NameRaw) {
			return fmt.Errorf("entry with non-canonical name_raw: %w", cas.ErrCorrupt)
		}
		e.Name, e.NameRaw = string(e.NameRaw), nil
	}
	if e.TargetRaw != nil {
		if e.Target != "" || utf8.Valid(e.TargetRaw) {
			return fmt.Errorf("entry %q with non-canonical target_raw: %w", e.Name, cas.ErrCorrupt)
		}
		e.Target, e.TargetRaw = string(e.TargetRaw), nil
	}
	return nil
}

// DecodeTree decodes and validates a tree blob.
func DecodeTree(b []byte) (*Tree, error) {
	t, ok := decodeCanonicalTree(b)
	if !ok {
		t = Tree{}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return nil, fmt.Errorf("decode tree: %v: %w", err, cas.ErrCorrupt)
		}
		if len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) > 0 {
			return nil, fmt.Errorf("decode tree: trailing data: %w", cas.ErrCorrupt)
		}
	}
	for i := range t.Entries {
		if err := t.Entries[i].unwire(); err != nil {
			return nil, fmt.Errorf("decode tree: %w", err)
		}
	}
	if err := t.Check(); err != nil {
		return nil, fmt.Errorf("decode tree: %w", err)
	}
	return &t, nil
}

// Record is a state record: one capture of one computer.
type Record struct {
	Version     int       `json:"v"`
	Computer    string    `json:"computer"`
	Users       []string  `json:"users"`
	Created     time.Time `json:"created"`
	ToolVersion string    `json:"tool_version"`
	SourceRoot  string    `json:"source_root"`
	Paths       []string  `json:"paths"`
	Rules       []string  `json:"rules,omitempty"`
	Parent      cas.ID    `json:"parent,omitzero"` // previous record used for change detection
	Tree        cas.ID    `json:"tree"`
	Files       uint64    `json:"files"`
	Dirs        uint64    `json:"dirs"`
	Symlinks    uint64    `json:"symlinks"`
	Bytes       uint64    `json:"bytes"`
	NewBytes    uint64    `json:"new_bytes"`
	StoredBytes uint64    `json:"stored_bytes"`
	Errors      uint64    `json:"errors"`
	// LinkSet names the directory below links/ holding this record's
	// hard-linked or cloned files; empty for a fully chunked record.
	LinkSet     string `json:"link_set,omitempty"`
	LinkedFiles uint64 `json:"linked_files,omitempty"`
	ClonedFiles uint64 `json:"cloned_files,omitempty"`
}

// MaxComputerName bounds computer and user names.
const MaxComputerName = 255

// CheckName validates a computer or user name given on the command line or
// read from a record.
func CheckName(kind, name string) error {
	if name == "" || len(name) > MaxComputerName || !utf8.ValidString(name) || strings.ContainsAny(name, "/\x00\n\r") {
		return fmt.Errorf("invalid %s name %q: use 1-%d printable characters without '/'", kind, name, MaxComputerName)
	}
	return nil
}

// Check validates a record's structure.
func (r *Record) Check() error {
	if r.Version != RecordVersion {
		return fmt.Errorf("record version %d not supported (want %d): %w", r.Version, RecordVersion, cas.ErrCorrupt)
	}
	if err := CheckName("computer", r.Computer); err != nil {
		return fmt.Errorf("%w: %w", err, cas.ErrCorrupt)
	}
	for _, u := range r.Users {
		if err := CheckName("user", u); err != nil {
			return fmt.Errorf("%w: %w", err, cas.ErrCorrupt)
		}
	}
	if r.Tree.IsZero() {
		return fmt.Errorf("record has no tree: %w", cas.ErrCorrupt)
	}
	if r.LinkSet != "" {
		if err := ValidName(r.LinkSet); err != nil {
			return fmt.Errorf("record link set: %w", err)
		}
	}
	return nil
}

// Encode returns the record's canonical encoding.
func (r *Record) Encode() ([]byte, error) {
	r.Version = RecordVersion
	if err := r.Check(); err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	return json.Marshal(r)
}

// DecodeRecord decodes and validates a record blob.
func DecodeRecord(b []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode record: %v: %w", err, cas.ErrCorrupt)
	}
	if err := r.Check(); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	return &r, nil
}
