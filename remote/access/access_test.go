package access

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// t0 is the injected "now" of most tests.
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// newDir returns a directory that looks like a store (it has config.json).
func newDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func snapshot(t *testing.T, s *Store) *Snapshot {
	t.Helper()
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

func create(t *testing.T, s *Store, computer string, role Role, expires time.Duration) (string, Token) {
	t.Helper()
	secret, tok, err := s.CreateToken(computer, role, expires, t0)
	if err != nil {
		t.Fatalf("CreateToken(%q, %q, %v): %v", computer, role, expires, err)
	}
	return secret, tok
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(dir)
	want := dir + " is not an smp store: run smp init --store " + dir + " first"
	if err == nil || err.Error() != want {
		t.Fatalf("Open of a non-store: got %v, want %q", err, want)
	}
	dir = newDir(t)
	s := open(t, dir)
	sn := snapshot(t, s)
	if len(sn.Tokens()) != 0 || len(sn.Associations()) != 0 || sn.RestoreOnly() {
		t.Errorf("missing file: got %d tokens, %d associations, restore-only %v; want an empty list",
			len(sn.Tokens()), len(sn.Associations()), sn.RestoreOnly())
	}
	if _, err := os.Stat(filepath.Join(dir, "access.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open and Snapshot created access.json (stat: %v)", err)
	}
}

func TestCreateTokenSecret(t *testing.T) {
	dir := newDir(t)
	s := open(t, dir)
	secret, tok := create(t, s, "PC01", RoleClient, 0)
	raw, ok := strings.CutPrefix(secret, "smp_")
	if !ok {
		t.Fatalf("secret %q lacks the smp_ prefix", secret)
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(b) != 32 {
		t.Fatalf("secret %q: want unpadded base64url of 32 bytes, got %d bytes (%v)", secret, len(b), err)
	}
	sum := sha256.Sum256([]byte(secret))
	hash := hex.EncodeToString(sum[:])
	if tok.ID != hash[:12] {
		t.Errorf("id %q, want %q", tok.ID, hash[:12])
	}
	want := Token{ID: hash[:12], Computer: "PC01", Role: RoleClient, Created: t0}
	if tok != want {
		t.Errorf("got %+v, want %+v", tok, want)
	}
	data, err := os.ReadFile(filepath.Join(dir, "access.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), raw) {
		t.Errorf("access.json holds the secret:\n%s", data)
	}
	if !strings.Contains(string(data), hash) {
		t.Errorf("access.json lacks the hash %s:\n%s", hash, data)
	}
	secret2, _ := create(t, s, "PC01", RoleClient, 0)
	if secret2 == secret {
		t.Errorf("two tokens share the secret %q", secret)
	}
}

func TestCreateTokenInvalid(t *testing.T) {
	s := open(t, newDir(t))
	tests := []struct {
		name     string
		computer string
		role     Role
		expires  time.Duration
		want     string
	}{
		{"client without computer", "", RoleClient, 0, "invalid computer name"},
		{"unknown role", "PC01", "root", 0, `unknown role "root"`},
		{"empty role", "PC01", "", 0, "unknown role"},
		{"slash", "a/b", RoleClient, 0, "invalid computer name"},
		{"NUL", "a\x00b", RoleClient, 0, "invalid computer name"},
		{"tab", "a\tb", RoleClient, 0, "invalid computer name"},
		{"newline", "a\n", RoleAdmin, 0, "invalid computer name"},
		{"DEL", "a\x7f", RoleClient, 0, "invalid computer name"},
		{"C1 control", "a\u0085", RoleClient, 0, "invalid computer name"},
		{"invalid UTF-8", "a\xff", RoleClient, 0, "invalid computer name"},
		{"too long", strings.Repeat("c", 256), RoleClient, 0, "invalid computer name"},
		{"negative expiry", "PC01", RoleClient, -time.Hour, "negative expiry"},
	}
	for _, tc := range tests {
		_, _, err := s.CreateToken(tc.computer, tc.role, tc.expires, t0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if n := len(snapshot(t, s).Tokens()); n != 0 {
		t.Errorf("%d tokens created by invalid calls", n)
	}
	for _, name := range []string{strings.Repeat("c", 255), "Büro-PC 2", "pc.example.com"} {
		if _, _, err := s.CreateToken(name, RoleClient, 0, t0); err != nil {
			t.Errorf("valid name %q refused: %v", name, err)
		}
	}
	if _, tok, err := s.CreateToken("", RoleAdmin, 0, t0); err != nil || tok.Computer != "" {
		t.Errorf("admin token for any computer: %+v, %v", tok, err)
	}
}

func TestAuthenticate(t *testing.T) {
	s := open(t, newDir(t))
	client, clientTok := create(t, s, "PC01", RoleClient, 0)
	expiring, expiringTok := create(t, s, "PC02", RoleClient, time.Hour)
	admin, adminTok := create(t, s, "", RoleAdmin, 7*24*time.Hour)
	revoked, revokedTok := create(t, s, "PC03", RoleClient, 0)
	if err := s.RevokeToken(revokedTok.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(time.Hour); !expiringTok.Expires.Equal(want) {
		t.Errorf("expires %v, want %v", expiringTok.Expires, want)
	}
	sn := snapshot(t, s)
	tests := []struct {
		name    string
		secret  string
		now     time.Time
		want    Token
		wantErr error
	}{
		{"client", client, t0, clientTok, nil},
		{"client years later", client, t0.AddDate(10, 0, 0), clientTok, nil},
		{"before expiry", expiring, t0.Add(time.Hour - time.Nanosecond), expiringTok, nil},
		{"at expiry", expiring, t0.Add(time.Hour), expiringTok, ErrExpired},
		{"after expiry", expiring, t0.Add(2 * time.Hour), expiringTok, ErrExpired},
		{"admin", admin, t0.Add(24 * time.Hour), adminTok, nil},
		{"admin expired", admin, t0.Add(8 * 24 * time.Hour), adminTok, ErrExpired},
		{"revoked", revoked, t0, Token{}, ErrRevoked},
		{"empty", "", t0, Token{}, ErrNoToken},
		{"unknown", "smp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", t0, Token{}, ErrUnknownToken},
		{"hash instead of secret", hashOf(client), t0, Token{}, ErrUnknownToken},
		{"id instead of secret", clientTok.ID, t0, Token{}, ErrUnknownToken},
		{"secret with a newline", client + "\n", t0, Token{}, ErrUnknownToken},
	}
	for _, tc := range tests {
		got, err := sn.Authenticate(tc.secret, tc.now)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.wantErr)
			continue
		}
		if tc.wantErr == ErrRevoked {
			if got.ID != revokedTok.ID || !got.Revoked.Equal(t0.Add(time.Minute)) {
				t.Errorf("%s: got %+v, want the revoked token", tc.name, got)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
	for err, msg := range map[error]string{
		ErrNoToken:      "no token: pass --token or set SMP_TOKEN",
		ErrUnknownToken: "unknown token",
		ErrRevoked:      "token revoked",
		ErrExpired:      "token expired",
	} {
		if err.Error() != msg {
			t.Errorf("error %q, want %q", err, msg)
		}
	}
}

func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func TestRevokeToken(t *testing.T) {
	s := open(t, newDir(t))
	secret, tok := create(t, s, "PC01", RoleClient, 0)
	err := s.RevokeToken("0123456789ab", t0)
	if want := "no token with id 0123456789ab: see smp token list"; err == nil || err.Error() != want {
		t.Errorf("unknown id: got %v, want %q", err, want)
	}
	if _, err := snapshot(t, s).Authenticate(secret, t0); err != nil {
		t.Fatalf("before revoke: %v", err)
	}
	if err := s.RevokeToken(tok.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(tok.ID, t0.Add(2*time.Hour)); err != nil {
		t.Errorf("second revoke: %v", err)
	}
	sn := snapshot(t, s)
	if _, err := sn.Authenticate(secret, t0); !errors.Is(err, ErrRevoked) {
		t.Errorf("after revoke: %v, want ErrRevoked", err)
	}
	toks := sn.Tokens()
	if len(toks) != 1 || !toks[0].Revoked.Equal(t0.Add(time.Hour)) {
		t.Errorf("tokens %+v: want one revoked at the first revoke", toks)
	}
}

func TestMayRestore(t *testing.T) {
	s := open(t, newDir(t))
	if err := s.Associate("OLD01", "PC02", t0); err != nil {
		t.Fatal(err)
	}
	sn := snapshot(t, s)
	client := Token{ID: "c", Computer: "PC02", Role: RoleClient}
	admin := Token{ID: "a", Role: RoleAdmin}
	adminPC := Token{ID: "b", Computer: "PC09", Role: RoleAdmin}
	tests := []struct {
		tok    Token
		record string
		want   bool
	}{
		{client, "PC02", true},  // own computer
		{client, "OLD01", true}, // associated: OLD01 -> PC02
		{client, "PC03", false}, // someone else
		{client, "pc02", false}, // names are case-sensitive
		{client, "", false},     // no computer
		{Token{ID: "o", Computer: "OLD01", Role: RoleClient}, "PC02", false}, // associations are one-way
		{admin, "PC03", true},
		{admin, "OLD01", true},
		{adminPC, "PC03", true},
		{Token{ID: "x", Computer: "PC02", Role: "root"}, "PC02", false}, // unknown role
		{Token{ID: "y", Role: RoleClient}, "", false},                   // client without computer
	}
	for _, tc := range tests {
		if got := sn.MayRestore(tc.tok, tc.record); got != tc.want {
			t.Errorf("MayRestore(%s %q, %q) = %v, want %v", tc.tok.Role, tc.tok.Computer, tc.record, got, tc.want)
		}
	}
	// Without the association the client keeps only its own records.
	if err := s.Dissociate("OLD01", "PC02"); err != nil {
		t.Fatal(err)
	}
	sn = snapshot(t, s)
	if sn.MayRestore(client, "OLD01") {
		t.Errorf("MayRestore after Dissociate = true")
	}
	if !sn.MayRestore(client, "PC02") {
		t.Errorf("MayRestore of own records after Dissociate = false")
	}
}

func TestMayCapture(t *testing.T) {
	sn := snapshot(t, open(t, newDir(t)))
	client := Token{ID: "c", Computer: "PC02", Role: RoleClient}
	tests := []struct {
		tok      Token
		computer string
		want     bool
	}{
		{client, "PC02", true},
		{client, "PC03", false},
		{client, "", false},
		{Token{ID: "a", Role: RoleAdmin}, "PC03", true},
		{Token{ID: "b", Computer: "PC09", Role: RoleAdmin}, "PC03", true},
		{Token{ID: "y", Role: RoleClient}, "", false},
		{Token{ID: "x", Computer: "PC02"}, "PC02", false},
	}
	for _, tc := range tests {
		if got := sn.MayCapture(tc.tok, tc.computer); got != tc.want {
			t.Errorf("MayCapture(%s %q, %q) = %v, want %v", tc.tok.Role, tc.tok.Computer, tc.computer, got, tc.want)
		}
	}
}

func TestAssociate(t *testing.T) {
	s := open(t, newDir(t))
	if err := s.Associate("PC01", "PC02", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Associate("PC01", "PC02", t0.Add(time.Hour)); err != nil {
		t.Errorf("second Associate: %v", err)
	}
	if err := s.Associate("PC00", "PC02", t0); err != nil {
		t.Fatal(err)
	}
	got := snapshot(t, s).Associations()
	want := []Association{{"PC00", "PC02", t0}, {"PC01", "PC02", t0}}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	errTests := []struct {
		name         string
		source, dest string
		remove       bool
		want         string
	}{
		{"self", "PC01", "PC01", false, "PC01 cannot be associated with itself"},
		{"bad source", "a/b", "PC01", false, "source: invalid computer name"},
		{"empty dest", "PC01", "", false, "dest: invalid computer name"},
		{"remove missing", "PC01", "PC03", true, "PC01 is not associated with PC03"},
		{"remove reversed", "PC02", "PC01", true, "PC02 is not associated with PC01"},
	}
	for _, tc := range errTests {
		var err error
		if tc.remove {
			err = s.Dissociate(tc.source, tc.dest)
		} else {
			err = s.Associate(tc.source, tc.dest, t0)
		}
		if err == nil || err.Error() != tc.want && !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := s.Dissociate("PC01", "PC02"); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t, s).Associations(); !slices.Equal(got, want[:1]) {
		t.Errorf("after Dissociate: got %+v, want %+v", got, want[:1])
	}
}

func TestRestoreOnly(t *testing.T) {
	s := open(t, newDir(t))
	for _, on := range []bool{true, true, false, true} {
		if err := s.SetRestoreOnly(on); err != nil {
			t.Fatal(err)
		}
		if got := snapshot(t, s).RestoreOnly(); got != on {
			t.Errorf("RestoreOnly() = %v after SetRestoreOnly(%v)", got, on)
		}
	}
}

// TestSnapshotReload checks that a server's Store sees every change made
// by another Store (another process: smp token, smp associate) on its very
// next Snapshot, and re-reads nothing while the file is unchanged.
func TestSnapshotReload(t *testing.T) {
	dir := newDir(t)
	server, admin := open(t, dir), open(t, dir)

	sn1 := snapshot(t, server)
	if len(sn1.Tokens()) != 0 {
		t.Fatalf("fresh store has tokens")
	}
	secret, _ := create(t, admin, "PC01", RoleClient, 0)
	sn2 := snapshot(t, server)
	if _, err := sn2.Authenticate(secret, t0); err != nil {
		t.Fatalf("server does not see a token created by another Store at once: %v", err)
	}
	if _, err := sn1.Authenticate(secret, t0); !errors.Is(err, ErrUnknownToken) {
		t.Errorf("an old snapshot changed: %v", err)
	}
	// The file did not change: the same snapshot comes back.
	if sn := snapshot(t, server); sn != sn2 {
		t.Errorf("Snapshot re-read an unchanged file")
	}

	// An association is honoured from the next request on.
	dest, _ := create(t, admin, "PC02", RoleClient, 0)
	tok, err := snapshot(t, server).Authenticate(dest, t0)
	if err != nil {
		t.Fatal(err)
	}
	if snapshot(t, server).MayRestore(tok, "PC01") {
		t.Fatalf("PC02 may restore PC01 before any association")
	}
	if err := admin.Associate("PC01", "PC02", t0); err != nil {
		t.Fatal(err)
	}
	if !snapshot(t, server).MayRestore(tok, "PC01") {
		t.Errorf("association made by another Store not seen by the next Snapshot")
	}
	if err := admin.Dissociate("PC01", "PC02"); err != nil {
		t.Fatal(err)
	}
	if snapshot(t, server).MayRestore(tok, "PC01") {
		t.Errorf("dissociation made by another Store not seen by the next Snapshot")
	}

	// Revocation and restore-only reach the server too.
	tok = sn2.Tokens()[0]
	if err := admin.RevokeToken(tok.ID, t0); err != nil {
		t.Fatal(err)
	}
	if err := admin.SetRestoreOnly(true); err != nil {
		t.Fatal(err)
	}
	sn3 := snapshot(t, server)
	if _, err := sn3.Authenticate(secret, t0); !errors.Is(err, ErrRevoked) {
		t.Errorf("after revoke by another Store: %v, want ErrRevoked", err)
	}
	if !sn3.RestoreOnly() {
		t.Errorf("restore-only set by another Store not seen")
	}

	// A Store sees its own writes at once.
	secret2, _ := create(t, server, "PC03", RoleClient, 0)
	if _, err := snapshot(t, server).Authenticate(secret2, t0); err != nil {
		t.Errorf("Store does not see its own write: %v", err)
	}

	// Removing the file empties the list.
	if err := os.Remove(filepath.Join(dir, "access.json")); err != nil {
		t.Fatal(err)
	}
	if n := len(snapshot(t, server).Tokens()); n != 0 {
		t.Errorf("after removing access.json: %d tokens", n)
	}
}

// TestSnapshotRealClock checks the default throttle with the real clock.
func TestSnapshotRealClock(t *testing.T) {
	dir := newDir(t)
	server, admin := open(t, dir), open(t, dir)
	snapshot(t, server)
	secret, _ := create(t, admin, "PC01", RoleClient, 0)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := snapshot(t, server).Authenticate(secret, time.Now())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new token not seen after 5 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestConcurrentCreate(t *testing.T) {
	dir := newDir(t)
	const workers, each = 8, 5
	var wg sync.WaitGroup
	secrets := make([][]string, workers)
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			s, err := Open(dir) // one Store per goroutine: only the flock serialises them
			if err != nil {
				errs[w] = err
				return
			}
			for i := range each {
				secret, _, err := s.CreateToken(fmt.Sprintf("PC%02d-%d", w, i), RoleClient, 0, t0)
				if err != nil {
					errs[w] = err
					return
				}
				secrets[w] = append(secrets[w], secret)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	sn := snapshot(t, open(t, dir))
	if n := len(sn.Tokens()); n != workers*each {
		t.Fatalf("%d tokens, want %d: concurrent writers lost some", n, workers*each)
	}
	for w := range workers {
		for i, secret := range secrets[w] {
			tok, err := sn.Authenticate(secret, t0)
			if err != nil || tok.Computer != fmt.Sprintf("PC%02d-%d", w, i) {
				t.Errorf("worker %d token %d: %+v, %v", w, i, tok, err)
			}
		}
	}
}

func TestCorruptFile(t *testing.T) {
	validHash := strings.Repeat("ab", 32)
	tok := func(fields string) string {
		return `{"version":1,"tokens":[{` + fields + `}],"associations":[]}`
	}
	tests := []struct {
		name, content, want string
	}{
		{"empty", "", "invalid JSON"},
		{"not JSON", "hello", "invalid JSON"},
		{"truncated", `{"version":1,"tokens":[`, "invalid JSON"},
		{"array", `[]`, "invalid JSON"},
		{"null", `null`, "no version"},
		{"no version", `{"tokens":[]}`, "no version"},
		{"version 0", `{"version":0}`, "version 0 not supported"},
		{"version 3", `{"version":3,"tokens":[]}`, "version 3 not supported"},
		{"limits in version 1", `{"version":1,"tokens":[],"limits":{"max_records":5}}`, "need version 2"},
		{"negative record limit", `{"version":2,"tokens":[],"limits":{"max_records":-1}}`, "negative max_records"},
		{"version string", `{"version":"1"}`, "invalid JSON"},
		{"unknown field", `{"version":1,"restoreonly":true}`, "unknown field"},
		{"trailing data", `{"version":1} {}`, "invalid JSON"},
		{"bad hash", tok(`"id":"abababababab","hash":"xyz","computer":"PC01","role":"client","created":"2025-01-01T00:00:00Z"`), "hash is not"},
		{"upper-case hash", tok(`"id":"ABABABABABAB","hash":"` + strings.ToUpper(validHash) + `","computer":"PC01","role":"client","created":"2025-01-01T00:00:00Z"`), "hash is not"},
		{"id mismatch", tok(`"id":"000000000000","hash":"` + validHash + `","computer":"PC01","role":"client","created":"2025-01-01T00:00:00Z"`), "is not the first 12 digits"},
		{"bad role", tok(`"id":"abababababab","hash":"` + validHash + `","computer":"PC01","role":"root","created":"2025-01-01T00:00:00Z"`), `unknown role "root"`},
		{"client for any computer", tok(`"id":"abababababab","hash":"` + validHash + `","computer":"","role":"client","created":"2025-01-01T00:00:00Z"`), "invalid computer name"},
		{"no created", tok(`"id":"abababababab","hash":"` + validHash + `","computer":"PC01","role":"client"`), "no creation time"},
		{"bad time", tok(`"id":"abababababab","hash":"` + validHash + `","computer":"PC01","role":"client","created":"yesterday"`), "invalid contents"},
		{"duplicate token", `{"version":1,"tokens":[` + strings.Repeat(`{"id":"abababababab","hash":"`+validHash+`","computer":"PC01","role":"client","created":"2025-01-01T00:00:00Z"},`, 2) + `{}]}`, "duplicate id"},
		{"self association", `{"version":1,"associations":[{"source":"PC01","dest":"PC01","created":"2025-01-01T00:00:00Z"}]}`, "associated with itself"},
		{"bad association", `{"version":1,"associations":[{"source":"PC/01","dest":"PC02","created":"2025-01-01T00:00:00Z"}]}`, "invalid computer name"},
		{"restore_only string", `{"version":1,"restore_only":"yes"}`, "invalid contents"},
	}
	for _, tc := range tests {
		dir := newDir(t)
		path := filepath.Join(dir, "access.json")
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		s := open(t, dir)
		_, err := s.Snapshot()
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Snapshot: got %v, want an error naming %s and containing %q", tc.name, err, path, tc.want)
		}
		if _, err2 := s.Snapshot(); err2 == nil || err2.Error() != err.Error() {
			t.Errorf("%s: second Snapshot: got %v, want the same error", tc.name, err2)
		}
		if _, _, err := s.CreateToken("PC01", RoleClient, 0, t0); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: CreateToken on a damaged file: got %v, want an error naming the file", tc.name, err)
		}
		if b, _ := os.ReadFile(path); string(b) != tc.content {
			t.Errorf("%s: a failed write changed the damaged file", tc.name)
		}
	}
}

func TestFileMode(t *testing.T) {
	dir := newDir(t)
	path := filepath.Join(dir, "access.json")
	s := open(t, dir)
	create(t, s, "PC01", RoleClient, 0)
	mode := func() os.FileMode {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode()
	}
	if m := mode(); m != 0o600 {
		t.Errorf("access.json mode %v, want 0600", m)
	}
	// A file someone made world-readable is tightened on the next write.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRestoreOnly(true); err != nil {
		t.Fatal(err)
	}
	if m := mode(); m != 0o600 {
		t.Errorf("access.json mode %v after a rewrite, want 0600", m)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"access.json", "access.lock", "config.json"}; !slices.Equal(names, want) {
		t.Errorf("store directory holds %q, want %q (no temporary files left)", names, want)
	}
}

// TestFileFormat pins the documented field names of access.json
// (docs/FORMAT.md, "Access file (access.json)").
func TestFileFormat(t *testing.T) {
	dir := newDir(t)
	s := open(t, dir)
	_, tok := create(t, s, "PC01", RoleClient, time.Hour)
	create(t, s, "", RoleAdmin, 0)
	if err := s.RevokeToken(tok.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Associate("PC01", "PC02", t0); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "access.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Version      int                 `json:"version"`
		Tokens       []map[string]string `json:"tokens"`
		Associations []map[string]string `json:"associations"`
		RestoreOnly  *bool               `json:"restore_only"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || len(got.Tokens) != 2 || len(got.Associations) != 1 || got.RestoreOnly == nil || *got.RestoreOnly {
		t.Fatalf("unexpected file:\n%s", b)
	}
	client := map[string]string{
		"id": tok.ID, "hash": got.Tokens[0]["hash"], "computer": "PC01", "role": "client",
		"created": "2025-03-04T05:06:07Z", "expires": "2025-03-04T06:06:07Z", "revoked": "2025-03-04T05:07:07Z",
	}
	if fmt.Sprint(got.Tokens[0]) != fmt.Sprint(client) {
		t.Errorf("client token %v, want %v", got.Tokens[0], client)
	}
	if len(got.Tokens[0]["hash"]) != 64 || !strings.HasPrefix(got.Tokens[0]["hash"], tok.ID) {
		t.Errorf("hash %q", got.Tokens[0]["hash"])
	}
	admin := got.Tokens[1]
	if _, ok := admin["expires"]; ok || admin["computer"] != "" || admin["role"] != "admin" {
		t.Errorf("admin token %v: want no expires, computer \"\", role admin", admin)
	}
	assoc := map[string]string{"source": "PC01", "dest": "PC02", "created": "2025-03-04T05:06:07Z"}
	if fmt.Sprint(got.Associations[0]) != fmt.Sprint(assoc) {
		t.Errorf("association %v, want %v", got.Associations[0], assoc)
	}
}

func TestTokensSorted(t *testing.T) {
	s := open(t, newDir(t))
	for i, d := range []int{3, 1, 2} {
		if _, _, err := s.CreateToken(fmt.Sprintf("PC%d", i), RoleClient, 0, t0.Add(time.Duration(d)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, tok := range snapshot(t, s).Tokens() {
		got = append(got, tok.Computer)
	}
	if want := []string{"PC1", "PC2", "PC0"}; !slices.Equal(got, want) {
		t.Errorf("tokens in order %q, want %q (by creation time)", got, want)
	}
}
