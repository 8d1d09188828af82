package capture

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"smp/capture/logins"
	"smp/cas/manifest"
)

// maxLoginFile bounds what is read of one wtmp file, compressed ones after
// decompression: a month of logins of a busy server is a few MiB.
const maxLoginFile = 256 << 20

// SelectProfiles lists the profiles under o.Root (home/* and root) or the
// ones o.Users names, and decides which the capture takes: a user matching
// an ExcludeUsers pattern is left out, and with InactiveFor so is one whose
// last activity is older than that. The last activity is the newest login
// of the user in <root>/var/log/wtmp* (rotated and gzipped files included)
// and of the profile owner's UID in <root>/var/log/lastlog; when neither
// names them, the newest mtime in the profile. Every file is opened below
// the root without following symlinks.
func SelectProfiles(o ProfileOptions) ([]ProfileChoice, error) {
	root, err := openDir(o.Root)
	if err != nil {
		return nil, fmt.Errorf("open source root: %w", err)
	}
	defer unix.Close(root)
	users := o.Users
	if len(users) == 0 {
		users = listProfiles(root)
	}
	var act *activity
	if o.InactiveFor > 0 {
		act = readLogins(root)
		defer act.close()
	}
	out := make([]ProfileChoice, 0, len(users))
	for _, u := range users {
		if err := manifest.CheckName("user", u); err != nil {
			return nil, err
		}
		c := ProfileChoice{User: u, Path: profilePath(u), Taken: true}
		var st unix.Stat_t
		if err := lstatPath(root, c.Path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil, fmt.Errorf("user %s has no profile directory %s under %s", u, c.Path, o.Root)
		}
		if p := excludedBy(u, o.ExcludeUsers); p != "" {
			c.Taken, c.Reason = false, fmt.Sprintf("excluded by --exclude-user %q", p)
		} else if act != nil {
			cutoff := o.Now.Add(-o.InactiveFor)
			t, src := act.last(u, st.Uid)
			if src == "" {
				t, src = newestMTime(filepath.Join(o.Root, c.Path), cutoff), "mtime"
			}
			c.LastActive, c.Source = &t, src
			if t.Before(cutoff) {
				c.Taken = false
				c.Reason = fmt.Sprintf("inactive for %s (last active %s, from %s), more than --inactive-for %s",
					days(o.Now.Sub(t)), t.Format(time.DateOnly), src, days(o.InactiveFor))
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func days(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	return d.Round(time.Minute).String()
}

// listProfiles lists the directories under home, and root, sorted.
func listProfiles(root int) []string {
	var users []string
	if fd, err := openAt(root, "home", unix.O_RDONLY|unix.O_DIRECTORY); err == nil {
		f := os.NewFile(uintptr(fd), "home")
		ents, _ := f.ReadDir(-1)
		f.Close()
		for _, e := range ents {
			if e.Type()&fs.ModeType == fs.ModeDir && manifest.CheckName("user", e.Name()) == nil {
				users = append(users, e.Name())
			}
		}
	}
	slices.Sort(users)
	var st unix.Stat_t
	if lstatPath(root, "root", &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		users = append(users, "root")
	}
	return users
}

// lstatPath stats rel (slash-separated) below the directory root, each
// component opened without following symlinks.
func lstatPath(root int, rel string, st *unix.Stat_t) error {
	dir, name := filepath.Split(rel)
	fd := root
	if dir != "" {
		var err error
		if fd, err = openPath(root, strings.TrimSuffix(dir, "/")); err != nil {
			return err
		}
		defer unix.Close(fd)
	}
	return unix.Fstatat(fd, name, st, unix.AT_SYMLINK_NOFOLLOW)
}

// openPath opens the directory rel below root one component at a time,
// none of them a symlink.
func openPath(root int, rel string) (int, error) {
	fd := root
	for _, part := range strings.Split(rel, "/") {
		next, err := openAt(fd, part, unix.O_RDONLY|unix.O_DIRECTORY)
		if fd != root {
			unix.Close(fd)
		}
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// activity is what the login records say: each user's last login (and
// the file it came from), and the lastlog file for lookups by UID.
type activity struct {
	wtmp    map[string]time.Time
	from    map[string]string
	lastlog *os.File
	size    int64
}

func (a *activity) close() {
	if a.lastlog != nil {
		a.lastlog.Close()
	}
}

func (a *activity) last(user string, uid uint32) (time.Time, string) {
	t, src := a.wtmp[user], a.from[user]
	if a.lastlog != nil {
		if lt, ok, err := logins.Lastlog(a.lastlog, a.size, uid); err == nil && ok && lt.After(t) {
			t, src = lt, "var/log/lastlog"
		}
	}
	return t, src
}

// readLogins reads var/log/wtmp* and opens var/log/lastlog below root.
// A file that is missing or unreadable is passed over: the profile's
// mtime is the fallback for the users no file names.
func readLogins(root int) *activity {
	a := &activity{wtmp: map[string]time.Time{}, from: map[string]string{}}
	logDir, err := openPath(root, "var/log")
	if err != nil {
		return a
	}
	defer unix.Close(logDir)
	if f, size, err := openRegular(logDir, "lastlog"); err == nil {
		a.lastlog, a.size = f, size
	}
	dup, err := unix.Dup(logDir)
	if err != nil {
		return a
	}
	d := os.NewFile(uintptr(dup), "var/log")
	names, _ := d.Readdirnames(-1)
	d.Close()
	slices.Sort(names)
	for _, name := range names {
		if name != "wtmp" && !strings.HasPrefix(name, "wtmp.") && !strings.HasPrefix(name, "wtmp-") {
			continue
		}
		f, _, err := openRegular(logDir, name)
		if err != nil {
			continue
		}
		var r io.Reader = f
		if strings.HasSuffix(name, ".gz") {
			if r, err = gzip.NewReader(f); err != nil {
				f.Close()
				continue
			}
		}
		src := "var/log/" + name
		logins.ReadWtmp(io.LimitReader(r, maxLoginFile), func(l logins.Login) error {
			if l.Time.After(a.wtmp[l.User]) {
				a.wtmp[l.User], a.from[l.User] = l.Time, src
			}
			return nil
		})
		f.Close()
	}
	return a
}

// openRegular opens name in dir for reading: a regular file, not a
// symlink, its size taken from the opened descriptor.
func openRegular(dir int, name string) (*os.File, int64, error) {
	fd, err := openAt(dir, name, unix.O_RDONLY)
	if err != nil {
		return nil, 0, err
	}
	var st unix.Stat_t
	if err := fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, 0, errors.New("not a regular file")
	}
	return os.NewFile(uintptr(fd), name), st.Size, nil
}

// errActive stops the mtime walk: the profile is newer than the cutoff.
var errActive = errors.New("active")

// newestMTime is the newest mtime of anything in the profile at abs, or
// the first one found after cutoff (then the profile is active and the
// rest need not be looked at). Symlinks are not followed.
func newestMTime(abs string, cutoff time.Time) time.Time {
	var newest time.Time
	filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if mt := info.ModTime(); mt.After(newest) {
			newest = mt
			if mt.After(cutoff) {
				return errActive
			}
		}
		return nil
	})
	return newest
}
