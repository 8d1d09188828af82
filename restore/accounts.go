package restore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// accounts resolves owner names on the restore target.
type accounts interface {
	// user returns the uid and primary gid of a user name.
	user(name string) (uid, gid int, ok bool)
	// group returns the gid of a group name.
	group(name string) (gid int, ok bool)
	// where names the account database, for error messages.
	where() string
}

// maxAccountFile bounds what is read of <root>/etc/passwd or etc/group:
// they come from a disk the restore does not trust, and a system with
// 100,000 accounts needs about 7 MiB.
const maxAccountFile = 32 << 20

// fileAccounts are the accounts of a target system other than the running
// one (--root T): its own etc/passwd and etc/group, parsed here. The host's
// NSS (LDAP, sssd, its /etc/passwd) describes another system and is never
// asked.
type fileAccounts struct {
	root   string
	users  map[string]passwdEntry
	groups map[string]int
}

type passwdEntry struct{ uid, gid int }

func (a *fileAccounts) user(name string) (int, int, bool) {
	e, ok := a.users[name]
	return e.uid, e.gid, ok
}

func (a *fileAccounts) group(name string) (int, bool) {
	g, ok := a.groups[name]
	return g, ok
}

func (a *fileAccounts) where() string {
	return filepath.Join(a.root, "etc/passwd") + " and " + filepath.Join(a.root, "etc/group")
}

// hostAccounts are the running system's accounts through NSS, for a
// restore onto / (where the target's accounts are the host's, including
// directory services that /etc/passwd does not list).
type hostAccounts struct {
	users  sync.Map // name -> passwdEntry; a miss is stored as -1, -1
	groups sync.Map // name -> int; a miss is stored as -1
}

func (a *hostAccounts) user(name string) (int, int, bool) {
	if v, ok := a.users.Load(name); ok {
		e := v.(passwdEntry)
		return e.uid, e.gid, e.uid >= 0
	}
	e := passwdEntry{-1, -1}
	if u, err := user.Lookup(name); err == nil {
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 == nil && err2 == nil {
			e = passwdEntry{int(uid), int(gid)}
		}
	}
	a.users.Store(name, e)
	return e.uid, e.gid, e.uid >= 0
}

func (a *hostAccounts) group(name string) (int, bool) {
	if v, ok := a.groups.Load(name); ok {
		return v.(int), v.(int) >= 0
	}
	gid := -1
	if g, err := user.LookupGroup(name); err == nil {
		if n, err := strconv.ParseUint(g.Gid, 10, 32); err == nil {
			gid = int(n)
		}
	}
	a.groups.Store(name, gid)
	return gid, gid >= 0
}

func (a *hostAccounts) where() string { return "this system's accounts (/etc/passwd, /etc/group, NSS)" }

// loadAccounts returns the target's account database: the host's when the
// target is /, else the target's own etc/passwd and etc/group (read through
// an os.Root on the target, so a symlink there cannot point the read at the
// host's files). A target without them has no named accounts: owners fall
// back to the record's numbers.
func loadAccounts(target string) (accounts, error) {
	if filepath.Clean(target) == "/" {
		return &hostAccounts{}, nil
	}
	a := &fileAccounts{root: target, users: map[string]passwdEntry{}, groups: map[string]int{}}
	root, err := os.OpenRoot(target)
	if errors.Is(err, fs.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open restore target to read its accounts: %w", err)
	}
	defer root.Close()
	b, err := readAccountFile(root, "etc/passwd")
	if err != nil {
		return nil, err
	}
	a.users = parsePasswd(b)
	if b, err = readAccountFile(root, "etc/group"); err != nil {
		return nil, err
	}
	a.groups = parseGroup(b)
	return a, nil
}

// readAccountFile reads a regular file of at most maxAccountFile bytes; a
// missing file reads as empty. O_NONBLOCK: a FIFO planted there must not
// hang the restore (it is then refused as not a regular file).
func readAccountFile(root *os.Root, name string) ([]byte, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the target's accounts: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read the target's accounts: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("read the target's accounts: %s is not a regular file", filepath.Join(root.Name(), name))
	}
	b, err := io.ReadAll(io.LimitReader(f, maxAccountFile+1))
	if err != nil {
		return nil, fmt.Errorf("read the target's accounts: %w", err)
	}
	if len(b) > maxAccountFile {
		return nil, fmt.Errorf("read the target's accounts: %s is larger than %d MiB", filepath.Join(root.Name(), name), maxAccountFile>>20)
	}
	return b, nil
}

// accountFields splits a passwd or group line into at most n fields; ok is
// false for comments, NIS compat lines (+/-), and lines with fewer than
// want fields, an empty name, or a name glibc would not accept.
func accountFields(line []byte, want int) ([][]byte, bool) {
	if len(line) == 0 || line[0] == '#' || line[0] == '+' || line[0] == '-' {
		return nil, false
	}
	f := bytes.SplitN(line, []byte(":"), want+1)
	if len(f) < want || len(f[0]) == 0 || bytes.ContainsAny(f[0], " \t\x00") {
		return nil, false
	}
	return f, true
}

// parseID parses a uid or gid field: a decimal uint32, not (uid_t)-1.
func parseID(b []byte) (int, bool) {
	n, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, false
	}
	return int(n), true
}

// parsePasswd parses passwd(5) lines (name:password:uid:gid:...).
// Malformed lines are skipped, as glibc's files module does; the first
// line of a name wins.
func parsePasswd(b []byte) map[string]passwdEntry {
	out := map[string]passwdEntry{}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		f, ok := accountFields(bytes.TrimSuffix(line, []byte("\r")), 4)
		if !ok {
			continue
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if _, dup := out[string(f[0])]; !ok1 || !ok2 || dup {
			continue
		}
		out[string(f[0])] = passwdEntry{uid, gid}
	}
	return out
}

// parseGroup parses group(5) lines (name:password:gid:members).
func parseGroup(b []byte) map[string]int {
	out := map[string]int{}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		f, ok := accountFields(bytes.TrimSuffix(line, []byte("\r")), 3)
		if !ok {
			continue
		}
		gid, ok := parseID(f[2])
		if _, dup := out[string(f[0])]; !ok || dup {
			continue
		}
		out[string(f[0])] = gid
	}
	return out
}
