package manifest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"path"
	"slices"
	"strings"

	"smp/cas"
)

// Change kinds of a Diff.
const (
	ChangeAdded    = "added"
	ChangeRemoved  = "removed"
	ChangeModified = "modified"
	ChangeRenamed  = "renamed"
)

// Change is one difference between two records' trees.
type Change struct {
	Kind string `json:"kind"`
	Path string `json:"path"`
	// From is the old path of a renamed entry.
	From string `json:"from,omitempty"`
	Type Type   `json:"type"`
	// Size is the entry's size in the new record (the old one for a
	// removed entry); OldSize its size in the old record (modified).
	Size    uint64 `json:"size"`
	OldSize uint64 `json:"old_size,omitempty"`
	// What a modified entry changed: "content", "type", "target", "mode",
	// "owner", "mtime", "xattrs".
	What []string `json:"what,omitempty"`
}

// DiffOptions are the two trees to compare and how to read them (the two
// records may live behind different readers, as in a group of SMPs).
type DiffOptions struct {
	OldLoad, NewLoad TreeLoader
	Old, New         cas.ID
}

// diffEntry is what Diff keeps of one entry: enough to tell whether it
// changed and to match renames, not its chunk list.
type diffEntry struct {
	typ     Type
	size    uint64
	content [32]byte // hash of the chunk IDs (or link identity); zero for dirs
	target  string
	mode    uint32
	owner   [2]uint32
	mtime   int64
	xattrs  [32]byte
	subtree cas.ID
}

func summarise(e *Entry) diffEntry {
	d := diffEntry{typ: e.Type, size: e.Size, target: e.Target, mode: e.Mode, owner: [2]uint32{e.UID, e.GID},
		mtime: e.MTimeNs, subtree: e.Subtree}
	if e.Type == TypeFile {
		h := sha256.New()
		switch {
		case e.Link != nil && !e.Link.Hash.IsZero():
			h.Write([]byte("hash"))
			h.Write(e.Link.Hash[:])
		case e.Link != nil:
			// Without --hardlink-dedupe's hash a linked file is known by its
			// store object and that object's ctime, which any edit moves.
			h.Write([]byte("link\x00" + e.Link.Object + "\x00"))
			h.Write(binary.LittleEndian.AppendUint64(nil, uint64(e.Link.CTimeNs)))
		default:
			h.Write([]byte("chunks"))
			for _, c := range e.Chunks {
				h.Write(c.ID[:])
			}
		}
		h.Sum(d.content[:0])
	}
	if len(e.Xattrs) > 0 {
		h := sha256.New()
		keys := make([]string, 0, len(e.Xattrs))
		for k := range e.Xattrs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			h.Write([]byte(k + "\x00"))
			h.Write(e.Xattrs[k])
			h.Write([]byte{0})
		}
		h.Sum(d.xattrs[:0])
	}
	return d
}

// what lists how b differs from a; nil when they are the same.
func (a *diffEntry) what(b *diffEntry) []string {
	var w []string
	add := func(cond bool, s string) {
		if cond {
			w = append(w, s)
		}
	}
	add(a.typ != b.typ, "type")
	add(a.typ == b.typ && (a.content != b.content || a.size != b.size), "content")
	add(a.target != b.target, "target")
	add(a.mode != b.mode, "mode")
	add(a.owner != b.owner, "owner")
	// A directory's mtime moves with any change inside it: it is not a
	// change of its own.
	add(a.mtime != b.mtime && a.typ != TypeDir, "mtime")
	add(a.xattrs != b.xattrs, "xattrs")
	return w
}

// Diff compares the trees Old and New and returns their changes sorted by
// path: entries only in New are added, only in Old removed, in both but
// different modified (a directory only for its own metadata, not its
// contents). A non-empty file removed from one path and added at another
// with the same contents is one rename instead (its metadata may differ).
//
// Both trees are read with the one Walker. Old is walked whole; a
// directory of New whose subtree is the one Old has at the same path is
// not entered, so a small change to a large record reads little of New.
func Diff(ctx context.Context, o DiffOptions) ([]Change, error) {
	if o.Old == o.New {
		return []Change{}, nil
	}
	old := map[string]diffEntry{}
	wo := Walker{Load: o.OldLoad, Entry: func(dir string, e *Entry) error {
		old[path.Join(dir, e.Name)] = summarise(e)
		return nil
	}}
	if err := wo.Walk(ctx, o.Old); err != nil {
		return nil, err
	}
	cur := map[string]diffEntry{}
	var same []string // directories whose subtree did not change
	wn := Walker{Load: o.NewLoad, Entry: func(dir string, e *Entry) error {
		p := path.Join(dir, e.Name)
		d := summarise(e)
		cur[p] = d
		if o, ok := old[p]; ok && e.Type == TypeDir && o.typ == TypeDir && o.subtree == e.Subtree {
			same = append(same, p)
			return SkipTree
		}
		return nil
	}}
	if err := wn.Walk(ctx, o.New); err != nil {
		return nil, err
	}
	dropUnder(old, same)
	return changes(old, cur), nil
}

// dropUnder deletes every path below one of dirs from m: the contents of
// a directory both records share are the same on both sides.
func dropUnder(m map[string]diffEntry, dirs []string) {
	if len(dirs) == 0 {
		return
	}
	set := make(map[string]struct{}, len(dirs))
	for _, d := range dirs {
		set[d] = struct{}{}
	}
	for p := range m {
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := set[d]; ok {
				delete(m, p)
				break
			}
		}
	}
}

// changes turns the two path maps into the sorted change list.
func changes(old, cur map[string]diffEntry) []Change {
	out := []Change{}
	var removed, added []string
	for p, o := range old {
		n, ok := cur[p]
		if !ok {
			removed = append(removed, p)
			continue
		}
		if w := o.what(&n); w != nil {
			out = append(out, Change{Kind: ChangeModified, Path: p, Type: n.typ, Size: n.size, OldSize: o.size, What: w})
		}
	}
	for p := range cur {
		if _, ok := old[p]; !ok {
			added = append(added, p)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	from := renames(old, cur, removed, added)
	gone := map[string]bool{}
	for _, p := range added {
		n := cur[p]
		if f, ok := from[p]; ok {
			gone[f] = true
			out = append(out, Change{Kind: ChangeRenamed, Path: p, From: f, Type: TypeFile, Size: n.size})
			continue
		}
		out = append(out, Change{Kind: ChangeAdded, Path: p, Type: n.typ, Size: n.size})
	}
	for _, p := range removed {
		if !gone[p] {
			o := old[p]
			out = append(out, Change{Kind: ChangeRemoved, Path: p, Type: o.typ, Size: o.size})
		}
	}
	slices.SortFunc(out, func(a, b Change) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Kind, b.Kind)
	})
	return out
}

// renames pairs added files with removed files of the same non-empty
// contents, each removed file at most once; among several candidates, the
// one whose path shares the longest prefix with the new path (the same
// directory first). It returns new path -> old path.
func renames(old, cur map[string]diffEntry, removed, added []string) map[string]string {
	byContent := map[[32]byte][]string{}
	for _, p := range removed {
		if o := old[p]; o.typ == TypeFile && o.size > 0 {
			byContent[o.content] = append(byContent[o.content], p)
		}
	}
	from := map[string]string{}
	for _, p := range added {
		n := cur[p]
		cands := byContent[n.content]
		if n.typ != TypeFile || n.size == 0 || len(cands) == 0 {
			continue
		}
		best := 0
		// Many identical files (a directory of copies moved) would make
		// the search quadratic: the first renameScan candidates do.
		for i, c := range cands[:min(len(cands), renameScan)] {
			if commonPrefix(c, p) > commonPrefix(cands[best], p) {
				best = i
			}
		}
		from[p] = cands[best]
		byContent[n.content] = slices.Delete(cands, best, best+1)
	}
	return from
}

const renameScan = 64

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
