package access

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"smp/internal/sysfile"
)

// Version is the newest access file format version this package reads
// and writes: version 2 adds the shared capacity limits. A file is written
// at the lowest version that holds its contents (1 without limits), so an
// older smp keeps reading a store that sets none.
const Version = 2

const (
	fileName = "access.json"
	// sealedName is the access file of an encrypted store: access.json
	// sealed by the store's Codec.
	sealedName = "access.sealed"
	lockName   = "access.lock"

	// secretPrefix starts every secret, so a leaked one is recognisable.
	secretPrefix = "smp_"
	// idLen is the number of hex digits of the hash that make a token ID.
	idLen = 12
	// maxName bounds computer names (as cas/manifest does).
	maxName = 255
	// MaxFileSize bounds the access file (its JSON) read into memory.
	MaxFileSize = 64 << 20
)

// A Codec seals and opens the access file of an encrypted store. Whoever
// unlocked the store's keys provides it (package repo, with the keys'
// Sealer), so this package never sees a key.
type Codec interface {
	// Seal seals the file's JSON under the store's current key.
	Seal(plain []byte) ([]byte, error)
	// Open returns the JSON Seal sealed, under any of the store's keys;
	// it refuses a file of more than MaxSealed bytes.
	Open(sealed []byte) ([]byte, error)
	// MaxSealed bounds a sealed file of MaxFileSize bytes of JSON.
	MaxSealed() int
}

// ErrSealedNoKey is returned when a sealed access file is opened without
// the store's key.
var ErrSealedNoKey = errors.New("the access file is sealed with the store's key")

// Role is what a token may do.
type Role string

const (
	// RoleClient may capture as its own computer and restore its own
	// computer's records and those of computers associated with it.
	RoleClient Role = "client"
	// RoleAdmin may do anything, for any computer.
	RoleAdmin Role = "admin"
)

func (r Role) valid() bool { return r == RoleClient || r == RoleAdmin }

// Token describes one token; the secret itself is never kept.
type Token struct {
	ID       string    `json:"id"`       // first 12 hex digits of the secret's SHA-256
	Computer string    `json:"computer"` // "" only for an admin token: any computer
	Role     Role      `json:"role"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"` // zero: never
	Revoked  time.Time `json:"revoked,omitzero"` // zero: not revoked
}

// Association lets Dest restore the records of Source.
type Association struct {
	Source  string    `json:"source"`
	Dest    string    `json:"dest"`
	Created time.Time `json:"created"`
}

// Errors of Authenticate.
var (
	ErrNoToken      = errors.New("no token: pass --token or set SMP_TOKEN")
	ErrUnknownToken = errors.New("unknown token")
	ErrRevoked      = errors.New("token revoked")
	ErrExpired      = errors.New("token expired")
)

// file is access.json, version 1 or 2 (with limits).
type file struct {
	Version      int           `json:"version"`
	Tokens       []tokenRecord `json:"tokens"`
	Associations []Association `json:"associations"`
	RestoreOnly  bool          `json:"restore_only"`
	Limits       Limits        `json:"limits,omitzero"`
}

// tokenRecord is a token as stored: a Token plus the secret's hash.
type tokenRecord struct {
	ID       string    `json:"id"`
	Hash     string    `json:"hash"` // lowercase hex SHA-256 of the secret
	Computer string    `json:"computer"`
	Role     Role      `json:"role"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`
	Revoked  time.Time `json:"revoked,omitzero"`
}

func (r *tokenRecord) token() Token {
	return Token{ID: r.ID, Computer: r.Computer, Role: r.Role, Created: r.Created, Expires: r.Expires, Revoked: r.Revoked}
}

func emptyFile() *file {
	return &file{Version: Version, Tokens: []tokenRecord{}, Associations: []Association{}}
}

// decode parses and checks the contents of an access file. It never
// returns a file that encode would not write back unchanged.
func decode(b []byte) (*file, error) {
	var hdr struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &hdr); err != nil {
		return nil, fmt.Errorf("invalid JSON: %v", err)
	}
	if hdr.Version == nil {
		return nil, errors.New("no version")
	}
	if *hdr.Version < 1 || *hdr.Version > Version {
		return nil, fmt.Errorf("version %d not supported (this smp reads versions 1 to %d)", *hdr.Version, Version)
	}
	// json.Unmarshal above refused syntax errors and trailing data.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f file
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("invalid contents: %v", err)
	}
	if f.Tokens == nil {
		f.Tokens = []tokenRecord{}
	}
	if f.Associations == nil {
		f.Associations = []Association{}
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	if f.Version == 1 && f.Limits != (Limits{}) {
		return nil, errors.New("limits in a version 1 file (they need version 2)")
	}
	return &f, nil
}

// check validates f and normalises its times to UTC.
func (f *file) check() error {
	if f.Limits.MaxRecords < 0 {
		return fmt.Errorf("limits: negative max_records %d", f.Limits.MaxRecords)
	}
	ids := make(map[string]bool, len(f.Tokens))
	hashes := make(map[string]bool, len(f.Tokens))
	for i := range f.Tokens {
		t := &f.Tokens[i]
		if len(t.Hash) != 2*sha256.Size || strings.ToLower(t.Hash) != t.Hash {
			return fmt.Errorf("token %d: hash is not 64 lowercase hex digits", i)
		}
		if _, err := hex.DecodeString(t.Hash); err != nil {
			return fmt.Errorf("token %d: hash is not 64 lowercase hex digits", i)
		}
		if t.ID != t.Hash[:idLen] {
			return fmt.Errorf("token %d: id %q is not the first %d digits of its hash", i, t.ID, idLen)
		}
		if ids[t.ID] || hashes[t.Hash] {
			return fmt.Errorf("token %d: duplicate id %s", i, t.ID)
		}
		ids[t.ID], hashes[t.Hash] = true, true
		if !t.Role.valid() {
			return fmt.Errorf("token %s: unknown role %q", t.ID, t.Role)
		}
		if t.Computer != "" || t.Role == RoleClient {
			if err := checkComputer(t.Computer); err != nil {
				return fmt.Errorf("token %s: %w", t.ID, err)
			}
		}
		if t.Created.IsZero() {
			return fmt.Errorf("token %s: no creation time", t.ID)
		}
		for _, tm := range []*time.Time{&t.Created, &t.Expires, &t.Revoked} {
			if err := checkTime(tm); err != nil {
				return fmt.Errorf("token %s: %w", t.ID, err)
			}
		}
	}
	pairs := make(map[[2]string]bool, len(f.Associations))
	for i := range f.Associations {
		a := &f.Associations[i]
		if err := checkComputer(a.Source); err != nil {
			return fmt.Errorf("association %d: source: %w", i, err)
		}
		if err := checkComputer(a.Dest); err != nil {
			return fmt.Errorf("association %d: dest: %w", i, err)
		}
		if a.Source == a.Dest {
			return fmt.Errorf("association %d: %s associated with itself", i, a.Source)
		}
		if pairs[[2]string{a.Source, a.Dest}] {
			return fmt.Errorf("association %d: %s to %s listed twice", i, a.Source, a.Dest)
		}
		pairs[[2]string{a.Source, a.Dest}] = true
		if a.Created.IsZero() {
			return fmt.Errorf("association %d: no creation time", i)
		}
		if err := checkTime(&a.Created); err != nil {
			return fmt.Errorf("association %d: %w", i, err)
		}
	}
	return nil
}

// checkTime converts *t to UTC and checks that it can be written back.
func checkTime(t *time.Time) error {
	if t.IsZero() {
		*t = time.Time{}
		return nil
	}
	*t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return fmt.Errorf("time %s out of range", t.Format(time.RFC3339))
	}
	return nil
}

// checkComputer validates a computer name: 1-255 bytes of UTF-8 without
// '/', NUL or control characters.
func checkComputer(name string) error {
	bad := name == "" || len(name) > maxName || !utf8.ValidString(name) ||
		strings.IndexFunc(name, func(r rune) bool { return r == '/' || unicode.IsControl(r) }) >= 0
	if bad {
		return fmt.Errorf("invalid computer name %q: use 1-%d bytes without '/' or control characters", name, maxName)
	}
	return nil
}

func (f *file) encode() ([]byte, error) {
	f.Version = 1
	if f.Limits != (Limits{}) {
		f.Version = 2
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Store is the access file of one store directory. Safe for concurrent use.
type Store struct {
	dir, path, lockPath string
	// With a codec, path is access.sealed and clearPath the access.json
	// a clear store had, sealed and removed by the first write.
	codec      Codec
	clearPath  string
	sealedPath string

	// sh is the access file of a store on S3, an object of its bucket
	// (shared.go); nil for a store directory's file.
	sh *shared

	mu     sync.Mutex
	loaded bool // snap/err belong to key
	key    statKey
	snap   *Snapshot
	err    error
}

// statKey identifies one version of the file.
type statKey struct {
	missing                    bool
	dev, ino                   uint64
	size, mtimeNsec, ctimeNsec int64
}

func keyOf(fi fs.FileInfo) statKey {
	k := statKey{size: fi.Size(), mtimeNsec: fi.ModTime().UnixNano()}
	k.dev, k.ino, k.ctimeNsec = fileIdentity(fi)
	return k
}

// Open returns the access file of the unencrypted store in dir: OpenWith
// without a codec.
func Open(dir string) (*Store, error) { return OpenWith(dir, nil) }

// OpenWith returns the access file of the store in dir. It checks that dir
// holds a store (dir/config.json exists) but neither opens nor locks the
// store, and does not create the access file. An encrypted store's is
// dir/access.sealed, sealed and opened by c; an access.json left in
// clear (a store converted by smp encrypt) is read until the first write,
// which seals it and removes the clear file. Without c the access file is
// dir/access.json, and a store holding access.sealed is refused
// (ErrSealedNoKey) rather than seen as having no tokens.
func OpenWith(dir string, c Codec) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	// A store directory, or the cache directory of a store on S3
	// (location.json, see package repo), whose access file is its own.
	_, err = os.Stat(filepath.Join(abs, "config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		_, err = os.Stat(filepath.Join(abs, "location.json"))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is not an smp store: run smp init --store %s first", dir, dir)
	} else if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{
		dir:        abs,
		path:       filepath.Join(abs, fileName),
		lockPath:   filepath.Join(abs, lockName),
		codec:      c,
		clearPath:  filepath.Join(abs, fileName),
		sealedPath: filepath.Join(abs, sealedName),
	}
	if c != nil {
		s.path = s.sealedPath
	} else if _, err := os.Lstat(s.sealedPath); err == nil {
		return nil, fmt.Errorf("access file %s: %w: give the store's key (--key-file, --passphrase-file)", s.sealedPath, ErrSealedNoKey)
	}
	return s, nil
}

// Reseal rewrites a sealed access file under the codec's current key, and
// seals an access.json still in clear, removing it. It changes nothing
// in a store without an access file, and is refused without a codec. smp
// gc --rekey (and so smp encrypt) calls it so that an old master key
// seals nothing here.
func (s *Store) Reseal() error {
	if s.codec == nil && (s.sh == nil || s.sh.codec == nil) {
		return errors.New("reseal an access file without the store's key")
	}
	return s.update(func(f *file) error {
		if s.missing() {
			return errNoChange
		}
		return nil
	})
}

// missing reports whether the store has no access file at all.
func (s *Store) missing() bool {
	if s.sh != nil {
		ok, err := s.sh.exists()
		return !ok && err == nil
	}
	_, e1 := os.Lstat(s.sealedPath)
	_, e2 := os.Lstat(s.clearPath)
	return errors.Is(e1, fs.ErrNotExist) && errors.Is(e2, fs.ErrNotExist)
}

// Snapshot returns the current contents of the access file. It stats the
// file on every call (a microsecond) and re-reads it only when its device,
// inode, size, mtime or ctime changed since the last call, so a server may
// call it on every request and every request sees the file as it is: a
// token revoked or an association made by another process counts from the
// next request on. Every write replaces the file by a rename, which gives
// it a new inode, so no change can hide behind an unchanged mtime. While
// the file is invalid, Snapshot returns the same error (naming the file)
// until the file changes.
//
// The access file of a store on S3 is read from the bucket at most once
// per RefreshEvery, in the background, and a snapshot is never older than
// RefreshBound: past it Snapshot waits for a read (see shared.go).
func (s *Store) Snapshot() (*Snapshot, error) {
	if s.sh != nil {
		return s.sh.snapshot()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var key statKey
	fi, err := os.Stat(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		key.missing = true
	case err != nil:
		return nil, fmt.Errorf("access file %s: %w", s.path, err)
	default:
		key = keyOf(fi)
	}
	if s.loaded && key == s.key {
		return s.snap, s.err
	}
	f, key, err := s.read()
	s.loaded, s.key, s.snap, s.err = true, key, nil, err
	if err == nil {
		s.snap = newSnapshot(f)
	}
	return s.snap, s.err
}

// Recheck returns the access file as read after the call began: for a
// token Snapshot does not know, which another smp sharing the store may
// have just made. A store directory's Snapshot is always that; a store on
// S3 reads the bucket (forced reads at most one per 50 ms).
func (s *Store) Recheck() (*Snapshot, error) {
	if s.sh != nil {
		return s.sh.recheck()
	}
	return s.Snapshot()
}

// Shared reports whether the access file is an object of a store on S3
// that other smp may change (then Recheck is worth calling).
func (s *Store) Shared() bool { return s.sh != nil }

// Close releases the storage OpenShared was given to own; a store
// directory's access file holds nothing open.
func (s *Store) Close() error {
	if s.sh != nil && s.sh.close {
		return s.sh.st.Close()
	}
	return nil
}

// read reads and decodes the file, returning the identity of what it read.
func (s *Store) read() (*file, statKey, error) {
	f, key, err := s.readFile(s.path, s.codec)
	if err == nil && s.codec != nil && key.missing {
		// Not sealed yet: the clear file of a converted store, if any.
		// Every writer of an encrypted store seals, so nothing changes
		// it and the missing sealed file's identity stands for it.
		f, _, err = s.readFile(s.clearPath, nil)
	}
	if err == nil && s.codec == nil {
		if _, serr := os.Lstat(s.sealedPath); serr == nil {
			err = fmt.Errorf("access file %s: %w: give the store's key (--key-file, --passphrase-file)", s.sealedPath, ErrSealedNoKey)
		}
	}
	return f, key, err
}

// readFile reads and decodes the access file at path, opened by c when
// given; a missing file is an empty one.
func (s *Store) readFile(path string, c Codec) (*file, statKey, error) {
	fh, err := os.OpenFile(path, os.O_RDONLY|syscallNoFollow, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return emptyFile(), statKey{missing: true}, nil
	}
	if err != nil {
		return nil, statKey{}, fmt.Errorf("access file %s: %w", path, err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, statKey{}, fmt.Errorf("access file %s: %w", path, err)
	}
	key := keyOf(fi)
	limit := MaxFileSize
	if c != nil {
		limit = c.MaxSealed()
	}
	if !fi.Mode().IsRegular() || fi.Size() > int64(limit) {
		return nil, key, fmt.Errorf("access file %s: not a regular file of at most %d bytes", path, limit)
	}
	b, err := io.ReadAll(io.LimitReader(fh, int64(limit)+1))
	if err != nil {
		return nil, key, fmt.Errorf("access file %s: %w", path, err)
	}
	if len(b) > limit {
		return nil, key, fmt.Errorf("access file %s: larger than %d bytes", path, limit)
	}
	if c != nil {
		if b, err = c.Open(b); err != nil {
			return nil, key, fmt.Errorf("access file %s cannot be opened with this store's keys (restore it from a backup, or remove it to start with no tokens): %w", path, err)
		}
	}
	f, err := decode(b)
	if err != nil {
		return nil, key, fmt.Errorf("access file %s: %w", path, err)
	}
	return f, key, nil
}

// errNoChange ends an update without writing.
var errNoChange = errors.New("no change")

// update changes the file under the access lock: it reads the current
// contents, applies fn and replaces the file atomically with mode 0600.
func (s *Store) update(fn func(*file) error) error {
	if s.sh != nil {
		return s.sh.update(fn)
	}
	lock, err := os.OpenFile(s.lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open access lock: %w", err)
	}
	defer lock.Close() // releases the flock
	if err := sysfile.Lock(lock, true); err != nil {
		return fmt.Errorf("lock %s: %w", s.lockPath, err)
	}
	f, _, err := s.read()
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		if errors.Is(err, errNoChange) {
			return nil
		}
		return err
	}
	b, err := f.sealed(s.codec, s.path)
	if err != nil {
		return err
	}
	// The access file stays 0600 even if someone loosened the file it
	// replaces; the rename is made durable.
	if err := sysfile.WriteFile(s.path, b, 0o600); err != nil {
		return fmt.Errorf("write access file: %w", err)
	}
	if s.codec != nil {
		// Sealed first, then the clear file removed: a crash between
		// leaves both, and the sealed one is read.
		if err := os.Remove(s.clearPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the clear access file: %w", err)
		}
		if err := syncDir(s.dir); err != nil {
			return fmt.Errorf("remove the clear access file: %w", err)
		}
	}
	s.mu.Lock()
	s.loaded = false
	s.mu.Unlock()
	return nil
}

// newSecret returns a fresh secret and the hex SHA-256 of it.
func newSecret() (secret, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	secret = secretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(secret))
	return secret, hex.EncodeToString(sum[:]), nil
}

// CreateToken adds a token and returns its secret, which is stored nowhere
// and cannot be shown again. A client token needs a computer; an admin token
// with computer "" may act for any computer. expires 0 means never.
func (s *Store) CreateToken(computer string, role Role, expires time.Duration, now time.Time) (secret string, t Token, err error) {
	if !role.valid() {
		return "", Token{}, fmt.Errorf("unknown role %q: want %s or %s", role, RoleClient, RoleAdmin)
	}
	if computer != "" || role == RoleClient {
		if err := checkComputer(computer); err != nil {
			return "", Token{}, err
		}
	}
	if expires < 0 {
		return "", Token{}, fmt.Errorf("negative expiry %v", expires)
	}
	now = now.UTC()
	err = s.update(func(f *file) error {
		for range 10 {
			sec, hash, err := newSecret()
			if err != nil {
				return err
			}
			id := hash[:idLen]
			if slices.ContainsFunc(f.Tokens, func(r tokenRecord) bool { return r.ID == id }) {
				continue // 48-bit ID collision: draw again so IDs stay unique
			}
			rec := tokenRecord{ID: id, Hash: hash, Computer: computer, Role: role, Created: now}
			if expires > 0 {
				rec.Expires = now.Add(expires)
			}
			f.Tokens = append(f.Tokens, rec)
			secret, t = sec, rec.token()
			return nil
		}
		return errors.New("could not draw a token with a unique id")
	})
	if err != nil {
		return "", Token{}, err
	}
	return secret, t, nil
}

// RevokeToken revokes the token with this ID at now. Revoking a revoked
// token changes nothing.
func (s *Store) RevokeToken(id string, now time.Time) error {
	return s.update(func(f *file) error {
		for i := range f.Tokens {
			if f.Tokens[i].ID == id {
				if !f.Tokens[i].Revoked.IsZero() {
					return errNoChange
				}
				f.Tokens[i].Revoked = now.UTC()
				return nil
			}
		}
		return fmt.Errorf("no token with id %s: see smp token list", id)
	})
}

// Associate lets dest restore the records of source. Associating an
// associated pair changes nothing.
func (s *Store) Associate(source, dest string, now time.Time) error {
	if err := checkPair(source, dest); err != nil {
		return err
	}
	return s.update(func(f *file) error {
		for _, a := range f.Associations {
			if a.Source == source && a.Dest == dest {
				return errNoChange
			}
		}
		f.Associations = append(f.Associations, Association{Source: source, Dest: dest, Created: now.UTC()})
		return nil
	})
}

// Dissociate removes the association of source with dest.
func (s *Store) Dissociate(source, dest string) error {
	if err := checkPair(source, dest); err != nil {
		return err
	}
	return s.update(func(f *file) error {
		for i, a := range f.Associations {
			if a.Source == source && a.Dest == dest {
				f.Associations = slices.Delete(f.Associations, i, i+1)
				return nil
			}
		}
		return fmt.Errorf("%s is not associated with %s", source, dest)
	})
}

func checkPair(source, dest string) error {
	if err := checkComputer(source); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if err := checkComputer(dest); err != nil {
		return fmt.Errorf("dest: %w", err)
	}
	if source == dest {
		return fmt.Errorf("%s cannot be associated with itself", source)
	}
	return nil
}

// SetRestoreOnly switches restore-only mode on or off. A running server
// reads it through Snapshot.
func (s *Store) SetRestoreOnly(on bool) error {
	return s.update(func(f *file) error {
		if f.RestoreOnly == on {
			return errNoChange
		}
		f.RestoreOnly = on
		return nil
	})
}

// Snapshot is the access file at one moment. It is immutable and safe for
// concurrent use.
type Snapshot struct {
	tokens      []Token // sorted by Created, then ID
	byHash      map[[sha256.Size]byte]int
	assocs      []Association // sorted by Source, then Dest
	assocSet    map[[2]string]bool
	restoreOnly bool
	limits      Limits
}

func newSnapshot(f *file) *Snapshot {
	sn := &Snapshot{
		byHash:      make(map[[sha256.Size]byte]int, len(f.Tokens)),
		assocs:      slices.Clone(f.Associations),
		assocSet:    make(map[[2]string]bool, len(f.Associations)),
		restoreOnly: f.RestoreOnly,
		limits:      f.Limits,
	}
	recs := slices.Clone(f.Tokens)
	slices.SortFunc(recs, func(a, b tokenRecord) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	sn.tokens = make([]Token, len(recs))
	for i := range recs {
		sn.tokens[i] = recs[i].token()
		var h [sha256.Size]byte
		hex.Decode(h[:], []byte(recs[i].Hash)) // checked by decode
		sn.byHash[h] = i
	}
	slices.SortFunc(sn.assocs, func(a, b Association) int {
		return cmp.Or(strings.Compare(a.Source, b.Source), strings.Compare(a.Dest, b.Dest))
	})
	for _, a := range sn.assocs {
		sn.assocSet[[2]string{a.Source, a.Dest}] = true
	}
	return sn
}

// Authenticate returns the token whose secret this is. It fails with
// ErrNoToken for "", ErrUnknownToken, ErrRevoked (any revoked token) or
// ErrExpired (now at or after Expires); with ErrRevoked and ErrExpired the
// token is returned too, for logging.
func (sn *Snapshot) Authenticate(secret string, now time.Time) (Token, error) {
	if secret == "" {
		return Token{}, ErrNoToken
	}
	i, ok := sn.byHash[sha256.Sum256([]byte(secret))]
	if !ok {
		return Token{}, ErrUnknownToken
	}
	t := sn.tokens[i]
	switch {
	case !t.Revoked.IsZero():
		return t, ErrRevoked
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return t, ErrExpired
	}
	return t, nil
}

// MayRestore reports whether t may restore a record of recordComputer: an
// admin always; a client for its own computer, or when recordComputer is
// associated with the client's computer (Source recordComputer, Dest
// t.Computer). t must come from Authenticate.
func (sn *Snapshot) MayRestore(t Token, recordComputer string) bool {
	switch t.Role {
	case RoleAdmin:
		return true
	case RoleClient:
		if t.Computer == "" || recordComputer == "" {
			return false
		}
		return recordComputer == t.Computer || sn.assocSet[[2]string{recordComputer, t.Computer}]
	}
	return false
}

// MayCapture reports whether t may capture as computer: an admin always, a
// client only as its own computer. Restore-only mode is not considered here;
// see RestoreOnly.
func (sn *Snapshot) MayCapture(t Token, computer string) bool {
	switch t.Role {
	case RoleAdmin:
		return true
	case RoleClient:
		return t.Computer != "" && computer == t.Computer
	}
	return false
}

// RestoreOnly reports whether the server must refuse captures.
func (sn *Snapshot) RestoreOnly() bool { return sn.restoreOnly }

// Tokens returns every token, revoked and expired ones included, sorted by
// creation time.
func (sn *Snapshot) Tokens() []Token { return slices.Clone(sn.tokens) }

// Associations returns every association, sorted by Source then Dest.
func (sn *Snapshot) Associations() []Association { return slices.Clone(sn.assocs) }

// syncDir makes a removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
