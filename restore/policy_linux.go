package restore

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"smp/cas"
	"smp/cas/manifest"
)

// The path and ownership policy. A record is hostile input: whoever holds
// a client token (a compromised source computer) commits whatever tree it
// likes, and an associated destination restores it as root onto /. So,
// unless the admin passes --allow-system, a restore writes only the
// profile paths of the target, decided on the target path (after --map):
//
//   - home/<name>/... is <name>'s profile and root/... is root's; the
//     profile's own directory (home/<name>, root) must be a directory in
//     the record;
//   - home itself is a directory holding profiles: it is created when
//     missing (0755, owned by root) but the record's mode, owner and xattrs
//     for it are ignored;
//   - everything else (etc/, usr/, var/, boot/, a file directly in home/,
//     ...) is not written. A directory outside the profiles is still
//     descended into when a --map below it moves something into a profile.
//
// The record's own claims (its users list, its source root) are not
// consulted: they come from the same untrusted source as the tree.
//
// Inside a profile, entries lose setuid bits (and setgid bits except on
// directories, where setgid only makes new files inherit the directory's
// group), security.* and trusted.* xattrs (file capabilities are a
// setuid by another name), and, when ownership is restored, root ownership
// in a user's profile: uid 0 and gid 0 become the profile owner's uid and
// primary gid. A hard link in the record joins only names of one profile.
// Each entry that lost something is counted in Result.Dropped.

// verdict is the policy's decision on one record entry.
type verdict int

const (
	admitWrite   verdict = iota
	admitDrop            // not written (nor anything below it)
	admitThrough         // not written, but a --map below it lands in a profile: descend
)

// area classifies a target-relative path.
type area int

const (
	areaSystem  area = iota // outside the profiles
	areaAbove               // home: the directory holding the profiles
	areaProfile             // home/<name> or root: a profile's own directory
	areaInside              // below a profile's directory
)

// classify returns rel's area and, for a profile or a path inside one, the
// profile's user name.
func classify(rel string) (area, string) {
	first, rest, _ := strings.Cut(rel, "/")
	switch first {
	case "root":
		if rest == "" {
			return areaProfile, "root"
		}
		return areaInside, "root"
	case "home":
		if rest == "" {
			return areaAbove, ""
		}
		name, below, _ := strings.Cut(rest, "/")
		if below == "" {
			return areaProfile, name
		}
		return areaInside, name
	}
	return areaSystem, ""
}

// maxDroppedPaths bounds the dropped paths a Result lists.
const maxDroppedPaths = 10

// nobodyID owns what root owned in the profile of a user who has no
// account on the target and whose profile directory the record gives to
// root too (the kernel's overflow uid and gid).
const nobodyID = 65534

type policy struct {
	allowSystem bool
	owners      bool // ownership is restored (the restore runs as root)
	acc         accounts
	// users maps a profile's user to another, from --map home/X=home/Y
	// (and root): their files, and their groups, change hands.
	users map[string]string
	// primary is the record's group of a mapped user's profile directory:
	// the best the record says about that user's primary group.
	primary map[string]string
	// profileOwners remembers the owner the record gives a profile's
	// directory, for profiles whose user has no account on the target.
	profileOwners sync.Map // name -> passwdEntry

	dropped atomic.Uint64
	outside atomic.Uint64 // of dropped: entries not written at all
	mu      sync.Mutex
	sample  []string
}

// userMaps returns the user renames implied by --map between profiles:
// home/X=home/Y, or home/X=root. A rename applies to X's files wherever
// they are in the record, so root is never renamed (root=home/admin would
// hand every root-owned file of the record to admin; in admin's profile the
// policy gives root's files to admin anyway).
func userMaps(maps []Mapping) map[string]string {
	users := map[string]string{}
	for _, m := range maps {
		fa, fu := classify(m.From)
		ta, tu := classify(m.To)
		if fa == areaProfile && ta == areaProfile && fu != tu && fu != "root" {
			users[fu] = tu
		}
	}
	return users
}

// drop counts an entry that lost something to the policy.
func (p *policy) drop(rel, what string) {
	p.dropped.Add(1)
	p.mu.Lock()
	if len(p.sample) < maxDroppedPaths {
		p.sample = append(p.sample, rel+" ("+what+")")
	}
	p.mu.Unlock()
}

func (p *policy) droppedPaths() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := slices.Clone(p.sample)
	slices.Sort(s)
	return s
}

// owner resolves e's owner on the target and stores the numbers in e
// (clearing the names): a mapped user's files and groups go to the
// destination account; other names resolve in the target's accounts; a
// name the target lacks keeps the record's number.
func (p *policy) owner(e *manifest.Entry) {
	uid, gid := int(e.UID), int(e.GID)
	to, mapped := p.users[e.User]
	if mapped {
		if u, _, ok := p.acc.user(to); ok {
			uid = u
		}
	} else if u, _, ok := p.acc.user(e.User); e.User != "" && ok {
		uid = u
	}
	switch gto, named := p.users[e.Group]; {
	case named: // the group named like a mapped user
		gid = p.mappedGroup(gto, gid)
	case mapped && e.Group != "" && e.Group == p.primary[e.User]:
		gid = p.mappedGroup(to, gid)
	case e.Group != "":
		if g, ok := p.acc.group(e.Group); ok {
			gid = g
		}
	}
	e.UID, e.GID, e.User, e.Group = uint32(uid), uint32(gid), "", ""
}

// mappedGroup is the group a mapped user's group becomes: the target's
// group named like the destination user, else that user's primary group.
func (p *policy) mappedGroup(to string, fallback int) int {
	if g, ok := p.acc.group(to); ok {
		return g
	}
	if _, g, ok := p.acc.user(to); ok {
		return g
	}
	return fallback
}

// profileOwner returns the uid and gid that replace root's in name's
// profile.
func (p *policy) profileOwner(name string) (int, int) {
	if uid, gid, ok := p.acc.user(name); ok {
		return uid, gid
	}
	if v, ok := p.profileOwners.Load(name); ok {
		e := v.(passwdEntry)
		return e.uid, e.gid
	}
	return nobodyID, nobodyID
}

// admit applies the policy to a record entry at stored path stored, to be
// written at target path rel, adjusting e in place.
func (r *restorer) admit(stored, rel string, e *manifest.Entry) verdict {
	p := r.pol
	if p.owners {
		p.owner(e)
	}
	if p.allowSystem {
		return admitWrite
	}
	ar, name := classify(rel)
	isDir := e.Type == manifest.TypeDir
	switch {
	case ar == areaSystem || (ar == areaAbove || ar == areaProfile) && !isDir:
		v := admitDrop
		if isDir && r.mapsBelow(stored) {
			v = admitThrough
		}
		if !r.passedThrough(path.Dir(stored)) {
			what := "outside the profile paths"
			if ar != areaSystem {
				what = fmt.Sprintf("%s where a directory is expected", describeType(e.Type))
			}
			p.drop(rel, what)
			p.outside.Add(1)
		}
		return v
	case ar == areaAbove:
		// Created when missing, never changed to the record's liking.
		e.Mode, e.Xattrs, e.UID, e.GID = 0o755, nil, 0, 0
		return admitWrite
	}
	var lost []string
	if bits := e.Mode & 0o6000; bits != 0 && !(isDir && bits == 0o2000) {
		e.Mode &^= 0o4000
		if !isDir {
			e.Mode &^= 0o2000
		}
		lost = append(lost, "setuid/setgid bits")
	}
	var xlost []string
	var keep map[string][]byte // a copy: e.Xattrs is the loaded tree's map
	for k, v := range e.Xattrs {
		if strings.HasPrefix(k, "security.") || strings.HasPrefix(k, "trusted.") {
			xlost = append(xlost, "xattr "+k)
			continue
		}
		if keep == nil {
			keep = map[string][]byte{}
		}
		keep[k] = v
	}
	if len(keep) < len(e.Xattrs) {
		e.Xattrs = keep
		slices.Sort(xlost)
		lost = append(lost, xlost...)
	}
	if p.owners && name != "root" {
		if ar == areaProfile && e.UID != 0 {
			gid := int(e.GID)
			if gid == 0 {
				gid = nobodyID
			}
			p.profileOwners.LoadOrStore(name, passwdEntry{int(e.UID), gid})
		}
		if e.UID == 0 || e.GID == 0 {
			uid, gid := p.profileOwner(name)
			if e.UID == 0 {
				e.UID = uint32(uid)
			}
			if e.GID == 0 {
				e.GID = uint32(gid)
			}
			lost = append(lost, "root ownership")
		}
	}
	if e.HardLink != "" {
		// A hard link never joins two profiles: a record could otherwise
		// make a user's file the same inode as root's authorized_keys.
		e.HardLink = name + "/" + e.HardLink
	}
	if len(lost) > 0 {
		p.drop(rel, strings.Join(lost, ", "))
	}
	return admitWrite
}

func describeType(t manifest.Type) string {
	switch t {
	case manifest.TypeFile:
		return "a file"
	case manifest.TypeSymlink:
		return "a symlink"
	}
	return "a " + string(t)
}

// mapsBelow reports whether a --map moves something below stored.
func (r *restorer) mapsBelow(stored string) bool {
	for _, m := range r.opts.Maps {
		if strings.HasPrefix(m.From, stored+"/") {
			return true
		}
	}
	return false
}

// passedThrough reports whether the walk descended into stored directory
// dir without writing it (admitThrough): entries below it that stay
// outside the profiles were counted with it.
func (r *restorer) passedThrough(dir string) bool {
	if dir == "." || dir == "" {
		return false
	}
	rel, err := r.mapPath(dir)
	if err != nil {
		return false
	}
	ar, _ := classify(rel)
	return ar == areaSystem && r.mapsBelow(dir)
}

// newPolicy prepares the policy before anything is written: it reads the
// target's accounts and refuses a --map to a user the target lacks (the
// old code kept the old uid without a word).
func newPolicy(store Store, rec *manifest.Record, opts Options) (*policy, error) {
	p := &policy{allowSystem: opts.AllowSystem, owners: opts.Owners, users: userMaps(opts.Maps), primary: map[string]string{}}
	for from, to := range opts.Users {
		p.users[from] = to
	}
	if !p.owners {
		return p, nil // nothing is chowned: names need no resolving
	}
	acc, err := loadAccounts(opts.Target)
	if err != nil {
		return nil, err
	}
	p.acc = acc
	for from, to := range opts.Users {
		if _, _, ok := acc.user(to); !ok {
			return nil, fmt.Errorf("--map-user %s=%s: no user %q in %s: create the account on the target first (or restore with --create-users), or map to one that exists", from, to, to, acc.where())
		}
		if e := findEntry(store, rec.Tree, profilePath(from)); e != nil {
			p.primary[from] = e.Group
		}
	}
	for _, m := range opts.Maps {
		_, from := classify(m.From)
		to, ok := p.users[from]
		if !ok {
			continue
		}
		if _, _, ok := acc.user(to); !ok {
			return nil, fmt.Errorf("--map %s=%s: no user %q in %s: create the account on the target first (or restore with --create-users), or map to one that exists", m.From, m.To, to, acc.where())
		}
		if e := findEntry(store, rec.Tree, m.From); e != nil {
			p.primary[from] = e.Group
		}
	}
	return p, nil
}

// findEntry returns the record's entry at stored path p, or nil when it
// has none (or a tree on the way cannot be read: the walk reports that).
func findEntry(store Store, root cas.ID, p string) *manifest.Entry {
	id := root
	var found *manifest.Entry
	for part := range strings.SplitSeq(p, "/") {
		if found != nil {
			if found.Type != manifest.TypeDir {
				return nil
			}
			id = found.Subtree
		}
		t, err := store.LoadTree(id)
		if err != nil {
			return nil
		}
		i, ok := slices.BinarySearchFunc(t.Entries, part, func(e manifest.Entry, name string) int { return strings.Compare(e.Name, name) })
		if !ok {
			return nil
		}
		found = &t.Entries[i]
	}
	return found
}

// walkThrough walks a directory the policy does not write but a --map
// below it leaves: its entries are placed from the target's top (place
// creates the parents of what lands in a profile), and the rest is
// dropped by admit without being counted again.
func (r *restorer) walkThrough(ctx context.Context, sub *manifest.Tree, stored string) error {
	r.top.acquire()
	defer r.top.release()
	return r.walk(ctx, sub, stored, r.top)
}

// mayWriteFile reports whether the policy lets a file at stored path be
// written (so its chunks are worth fetching ahead).
func (r *restorer) mayWriteFile(stored string) bool {
	if r.pol.allowSystem {
		return true
	}
	rel, err := r.mapPath(stored)
	if err != nil {
		return false
	}
	ar, _ := classify(rel)
	return ar == areaInside
}
