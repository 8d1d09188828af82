package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"smp/internal/sysfile"
)

// SessionsFile is the file, in the store directory, that holds the
// console's login sessions. Keeping them beside the store (not in server
// memory) makes a session valid on every server process that serves this
// store directory, and across restarts; it holds only the SHA-256 of each
// session ID, so reading it does not let anyone log in.
const SessionsFile = "console-sessions.json"

// maxSessions bounds the file: past it the least recently used session is
// ended.
const maxSessions = 256

// maxSessionsFileSize bounds what is read of the sessions file.
const maxSessionsFileSize = 1 << 20

// sessionRecord is one login session as stored.
type sessionRecord struct {
	IDHash  string    `json:"id_sha256"` // hex SHA-256 of the cookie's session ID
	TokenID string    `json:"token"`     // the admin token that logged in
	CSRF    string    `json:"csrf"`      // form token of every state-changing request
	Created time.Time `json:"created"`
	Last    time.Time `json:"last"`
}

type sessionsFile struct {
	Version  int             `json:"v"`
	Sessions []sessionRecord `json:"sessions"`
}

// sessionStore reads and writes SessionsFile under an flock, replacing it
// atomically, as the access file is.
type sessionStore struct {
	path, lockPath string
	idle, absolute time.Duration
	mu             sync.Mutex // serialises this process's writers; the flock, other processes
}

func newSessionStore(dir string, idle, absolute time.Duration) *sessionStore {
	return &sessionStore{path: filepath.Join(dir, SessionsFile), lockPath: filepath.Join(dir, "console-sessions.lock"),
		idle: idle, absolute: absolute}
}

func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func (s *sessionStore) read() (*sessionsFile, error) {
	f, err := os.OpenFile(s.path, os.O_RDONLY|syscallNoFollow, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return &sessionsFile{Version: 1}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("console sessions: %w", err)
	}
	defer f.Close()
	var sf sessionsFile
	dec := json.NewDecoder(&limitReader{f: f, n: maxSessionsFileSize})
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sf); err != nil {
		return nil, fmt.Errorf("console sessions file %s: %v: delete it (everyone logs in again)", s.path, err)
	}
	if sf.Version != 1 || len(sf.Sessions) > maxSessions {
		return nil, fmt.Errorf("console sessions file %s: version %d or %d sessions not understood: delete it (everyone logs in again)", s.path, sf.Version, len(sf.Sessions))
	}
	return &sf, nil
}

// update applies fn to the file under the lock and writes it back when fn
// reports a change. Expired sessions are dropped on every write.
func (s *sessionStore) update(now time.Time, fn func(*sessionsFile) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lock, err := os.OpenFile(s.lockPath, os.O_CREATE|os.O_RDWR|syscallNoFollow, 0o600)
	if err != nil {
		return fmt.Errorf("console sessions lock: %w", err)
	}
	defer lock.Close()
	if err := sysfile.Lock(lock, true); err != nil {
		return fmt.Errorf("lock %s: %w", s.lockPath, err)
	}
	sf, err := s.read()
	if err != nil {
		return err
	}
	if !fn(sf) {
		return nil
	}
	sf.Sessions = slices.DeleteFunc(sf.Sessions, func(r sessionRecord) bool { return s.expired(r, now) })
	if len(sf.Sessions) > maxSessions {
		slices.SortFunc(sf.Sessions, func(a, b sessionRecord) int { return b.Last.Compare(a.Last) })
		sf.Sessions = sf.Sessions[:maxSessions]
	}
	b, err := json.Marshal(sf)
	if err != nil {
		return err
	}
	return sysfile.WriteFile(s.path, b, 0o600)
}

func (s *sessionStore) expired(r sessionRecord, now time.Time) bool {
	return now.Sub(r.Last) >= s.idle || now.Sub(r.Created) >= s.absolute
}

// create stores a new session for tokenID and returns it with its ID.
func (s *sessionStore) create(tokenID string, now time.Time) (id string, rec sessionRecord, err error) {
	id = randomHex(32)
	rec = sessionRecord{IDHash: hashID(id), TokenID: tokenID, CSRF: randomHex(32), Created: now, Last: now}
	err = s.update(now, func(sf *sessionsFile) bool {
		sf.Sessions = append(sf.Sessions, rec)
		return true
	})
	return id, rec, err
}

// touchEvery bounds how often a session's last-use time is written: the
// idle expiry is then exact to within it.
const touchEvery = time.Minute

// lookup returns the live session of id. It refreshes the session's idle
// timer (at most once per touchEvery).
func (s *sessionStore) lookup(id string, now time.Time) (sessionRecord, bool, error) {
	if id == "" {
		return sessionRecord{}, false, nil
	}
	sf, err := s.read()
	if err != nil {
		return sessionRecord{}, false, err
	}
	h := hashID(id)
	i := slices.IndexFunc(sf.Sessions, func(r sessionRecord) bool {
		return subtle.ConstantTimeCompare([]byte(r.IDHash), []byte(h)) == 1
	})
	if i < 0 || s.expired(sf.Sessions[i], now) {
		return sessionRecord{}, false, nil
	}
	rec := sf.Sessions[i]
	if now.Sub(rec.Last) >= touchEvery {
		err = s.update(now, func(sf *sessionsFile) bool {
			for j := range sf.Sessions {
				if sf.Sessions[j].IDHash == h {
					sf.Sessions[j].Last = now
					return true
				}
			}
			return false
		})
	}
	return rec, true, err
}

// end removes the session of id (logout) or, with id "", every session
// of tokenID (its token was revoked).
func (s *sessionStore) end(id, tokenID string, now time.Time) error {
	h := hashID(id)
	return s.update(now, func(sf *sessionsFile) bool {
		n := len(sf.Sessions)
		sf.Sessions = slices.DeleteFunc(sf.Sessions, func(r sessionRecord) bool {
			return (id != "" && r.IDHash == h) || (id == "" && r.TokenID == tokenID)
		})
		return len(sf.Sessions) != n
	})
}

// limitReader fails a read past n bytes rather than truncating.
type limitReader struct {
	f *os.File
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("file over %d bytes", maxSessionsFileSize)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}
