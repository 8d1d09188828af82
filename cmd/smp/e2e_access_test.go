package main

// End-to-end tests of smp token, smp associate and smp admin restore-only:
// they edit STORE/access.json and must work while another process holds the
// store open.

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tokenListOut is token list --json.
type tokenListOut struct {
	Tokens []struct {
		ID       string     `json:"id"`
		Computer string     `json:"computer"`
		Role     string     `json:"role"`
		Created  time.Time  `json:"created"`
		Expires  *time.Time `json:"expires"`
		Revoked  *time.Time `json:"revoked"`
		State    string     `json:"state"`
		Hash     string     `json:"hash"` // must never be set
	} `json:"tokens"`
}

// associateListOut is associate --list --json.
type associateListOut struct {
	Associations []struct {
		Source  string    `json:"source"`
		Dest    string    `json:"dest"`
		Created time.Time `json:"created"`
	} `json:"associations"`
}

// createToken runs token create and returns the secret.
func createToken(t *testing.T, store string, args ...string) string {
	t.Helper()
	r := mustSMP(t, append([]string{"token", "create", "--store", store}, args...)...)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "smp_") || len(lines[0]) != len("smp_")+43 {
		t.Fatalf("want one line with the secret on stdout\n%s", r)
	}
	if !strings.Contains(r.stderr, "cannot be shown again") {
		t.Errorf("no note that the secret cannot be shown again\n%s", r)
	}
	return lines[0]
}

func tokenID(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])[:12]
}

func TestE2EAccessTokens(t *testing.T) {
	t.Parallel()
	// A store in clear, whose access.json this test reads; the sealed
	// access.sealed of an encrypted store: TestE2EAccessSealed.
	store := newClearStore(t)

	client := createToken(t, store, "--computer", "PC01")
	temp := createToken(t, store, "--computer", "PC02", "--expires", "7d")
	admin := createToken(t, store, "--role", "admin", "--expires", "36h")
	if client == temp || client == admin {
		t.Fatalf("secrets repeat")
	}

	var list tokenListOut
	smpJSON(t, exitOK, &list, "token", "list", "--store", store, "--json")
	if len(list.Tokens) != 3 {
		t.Fatalf("token list: %d tokens, want 3: %+v", len(list.Tokens), list)
	}
	type want struct {
		id, computer, role string
		expires            time.Duration
	}
	wants := []want{
		{tokenID(client), "PC01", "client", 0},
		{tokenID(temp), "PC02", "client", 7 * 24 * time.Hour},
		{tokenID(admin), "", "admin", 36 * time.Hour},
	}
	for i, w := range wants {
		got := list.Tokens[i]
		if got.ID != w.id || got.Computer != w.computer || got.Role != w.role || got.State != "active" || got.Revoked != nil || got.Hash != "" {
			t.Errorf("token %d: got %+v, want %+v active", i, got, w)
		}
		if age := time.Since(got.Created); age < 0 || age > time.Minute {
			t.Errorf("token %d created %v", i, got.Created)
		}
		switch {
		case w.expires == 0 && got.Expires != nil:
			t.Errorf("token %d expires %v, want never", i, *got.Expires)
		case w.expires != 0 && (got.Expires == nil || got.Expires.Sub(got.Created) != w.expires):
			t.Errorf("token %d expires %v, want %v after creation", i, got.Expires, w.expires)
		}
	}

	// The file holds hashes only, mode 0600.
	path := filepath.Join(store, "access.json")
	data := readFile(t, path)
	for _, secret := range []string{client, temp, admin} {
		if strings.Contains(data, strings.TrimPrefix(secret, "smp_")) {
			t.Errorf("access.json holds a secret")
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("access.json: %v, %v; want mode 0600", fi.Mode(), err)
	}

	// The table shows IDs and states, never hashes.
	r := mustSMP(t, "token", "list", "--store", store)
	for _, s := range []string{"ID", "STATE", tokenID(client), "PC01", "(any)", "never", "active"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("token list lacks %q\n%s", s, r)
		}
	}
	sum := sha256.Sum256([]byte(client))
	if strings.Contains(r.stdout, hex.EncodeToString(sum[:])) {
		t.Errorf("token list prints a hash\n%s", r)
	}

	// Revoke one.
	mustSMP(t, "token", "revoke", "--store", store, "--id", tokenID(temp))
	smpJSON(t, exitOK, &list, "token", "list", "--store", store, "--json")
	for _, tok := range list.Tokens {
		wantState := "active"
		if tok.ID == tokenID(temp) {
			wantState = "revoked"
			if tok.Revoked == nil {
				t.Errorf("revoked token without a revocation time")
			}
		}
		if tok.State != wantState {
			t.Errorf("token %s (%s): state %s, want %s", tok.ID, tok.Computer, tok.State, wantState)
		}
	}
	if r := mustSMP(t, "token", "list", "--store", store); !strings.Contains(r.stdout, "revoked") {
		t.Errorf("token list does not show the revocation\n%s", r)
	}

	// An unknown ID is an error (exit 1), not a usage error.
	r = smp(t, "token", "revoke", "--store", store, "--id", "0123456789ab")
	if r.code != exitError || len(r.stderrLines()) != 1 || !strings.Contains(r.stderr, "no token with id 0123456789ab: see smp token list") {
		t.Errorf("revoke of an unknown id: want exit 1 and one line\n%s", r)
	}
}

// TestE2EAccessTokenExpired checks the expired state with a token whose
// expiry is made to pass by editing the file.
func TestE2EAccessTokenExpired(t *testing.T) {
	t.Parallel()
	store := newClearStore(t) // the test edits access.json
	createToken(t, store, "--computer", "PC01", "--expires", "1h")
	path := filepath.Join(store, "access.json")
	data := readFile(t, path)
	var list tokenListOut
	smpJSON(t, exitOK, &list, "token", "list", "--store", store, "--json")
	exp := list.Tokens[0].Expires.UTC().Format(time.RFC3339Nano)
	if !strings.Contains(data, exp) {
		t.Fatalf("access.json lacks the expiry %s:\n%s", exp, data)
	}
	writeFile(t, path, []byte(strings.Replace(data, exp, "2001-01-01T00:00:00Z", 1)), 0o600)
	smpJSON(t, exitOK, &list, "token", "list", "--store", store, "--json")
	if list.Tokens[0].State != "expired" {
		t.Errorf("state %q, want expired", list.Tokens[0].State)
	}
}

func TestE2EAccessAssociate(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	var list associateListOut
	smpJSON(t, exitOK, &list, "associate", "--store", store, "--list", "--json")
	if list.Associations == nil || len(list.Associations) != 0 {
		t.Fatalf("fresh store: want an empty list, got %+v", list)
	}

	r := mustSMP(t, "associate", "--store", store, "--source", "PC01", "--dest", "PC02")
	if !strings.Contains(r.stdout, "PC02 may now restore the records of PC01") {
		t.Errorf("associate output\n%s", r)
	}
	mustSMP(t, "associate", "--store", store, "--source", "PC01", "--dest", "PC02") // idempotent
	mustSMP(t, "associate", "--store", store, "--source", "OLD", "--dest", "PC02")
	smpJSON(t, exitOK, &list, "associate", "--store", store, "--list", "--json")
	var got []string
	for _, a := range list.Associations {
		got = append(got, a.Source+">"+a.Dest)
		if time.Since(a.Created) > time.Minute {
			t.Errorf("association %+v: created %v", a, a.Created)
		}
	}
	if strings.Join(got, " ") != "OLD>PC02 PC01>PC02" {
		t.Errorf("associations %q, want OLD>PC02 PC01>PC02", got)
	}
	r = mustSMP(t, "associate", "--store", store, "--list")
	if !strings.Contains(r.stdout, "SOURCE") || !strings.Contains(r.stdout, "OLD") {
		t.Errorf("associate --list\n%s", r)
	}

	mustSMP(t, "associate", "--store", store, "--source", "PC01", "--dest", "PC02", "--remove")
	smpJSON(t, exitOK, &list, "associate", "--store", store, "--list", "--json")
	if len(list.Associations) != 1 || list.Associations[0].Source != "OLD" {
		t.Errorf("after --remove: %+v", list)
	}
	r = smp(t, "associate", "--store", store, "--source", "PC01", "--dest", "PC02", "--remove")
	if r.code != exitError || len(r.stderrLines()) != 1 || !strings.Contains(r.stderr, "PC01 is not associated with PC02") {
		t.Errorf("removing a missing association: want exit 1 and one line\n%s", r)
	}
	r = smp(t, "associate", "--store", store, "--source", "PC/01", "--dest", "PC02")
	if r.code != exitError || !strings.Contains(r.stderr, "invalid computer name") {
		t.Errorf("invalid name: want exit 1\n%s", r)
	}
}

func TestE2EAccessRestoreOnly(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	state := func() bool {
		t.Helper()
		var out struct {
			RestoreOnly *bool `json:"restore_only"`
		}
		smpJSON(t, exitOK, &out, "admin", "restore-only", "--store", store, "--json")
		if out.RestoreOnly == nil {
			t.Fatalf("admin restore-only --json lacks restore_only")
		}
		return *out.RestoreOnly
	}
	if state() {
		t.Fatalf("a new store is restore-only")
	}
	if r := mustSMP(t, "admin", "restore-only", "--store", store); !strings.Contains(r.stdout, "restore-only off") {
		t.Errorf("state output\n%s", r)
	}
	r := mustSMP(t, "admin", "restore-only", "on", "--store", store)
	if !strings.Contains(r.stdout, "restore-only on") {
		t.Errorf("on output\n%s", r)
	}
	if !state() {
		t.Errorf("restore-only on did not stick")
	}
	mustSMP(t, "admin", "restore-only", "--store", store, "on") // flags first works too
	mustSMP(t, "admin", "restore-only", "off", "--store", store)
	if state() {
		t.Errorf("restore-only off did not stick")
	}
}

// TestE2EAccessTokenStoreInUse checks that the access commands work while another
// process holds the store's lock (as smp serve does), unlike the commands
// that open the store.
func TestE2EAccessTokenStoreInUse(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	lock, err := os.OpenFile(filepath.Join(store, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if r := smp(t, "records", "--store", store); r.code == exitOK {
		t.Fatalf("records opened a store locked by another process: the test does not hold the lock\n%s", r)
	}
	secret := createToken(t, store, "--computer", "PC01")
	mustSMP(t, "token", "list", "--store", store)
	mustSMP(t, "associate", "--store", store, "--source", "PC01", "--dest", "PC02")
	mustSMP(t, "admin", "restore-only", "on", "--store", store)
	mustSMP(t, "token", "revoke", "--store", store, "--id", tokenID(secret))
}

func TestE2EAccessTokenUsageErrors(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	notStore := tmpDir(t)
	tests := []struct {
		name string
		args []string
		code int
		want string // in the one line on stderr
	}{
		{"token without subcommand", []string{"token"}, exitUsage, "want: smp token create|list|revoke"},
		{"token bad subcommand", []string{"token", "delete", "--store", store}, exitUsage, "want: smp token create|list|revoke"},
		{"client without computer", []string{"token", "create", "--store", store}, exitUsage, "--computer NAME is required for a client token"},
		{"explicit client without computer", []string{"token", "create", "--store", store, "--role", "client"}, exitUsage, "--computer NAME is required"},
		{"bad role", []string{"token", "create", "--store", store, "--computer", "PC01", "--role", "root"}, exitUsage, `--role: want client or admin, not "root"`},
		{"bad duration", []string{"token", "create", "--store", store, "--computer", "PC01", "--expires", "soon"}, exitUsage, `--expires: "soon"`},
		{"negative duration", []string{"token", "create", "--store", store, "--computer", "PC01", "--expires", "-5d"}, exitUsage, "--expires"},
		{"zero duration", []string{"token", "create", "--store", store, "--computer", "PC01", "--expires", "0"}, exitUsage, "--expires"},
		{"unknown flag", []string{"token", "create", "--store", store, "--computer", "PC01", "--user", "x"}, exitUsage, "unknown flag"},
		{"extra argument", []string{"token", "list", "--store", store, "extra"}, exitUsage, `unexpected argument "extra"`},
		{"no store", []string{"token", "list"}, exitUsage, "--store DIR is required"},
		{"not a store", []string{"token", "list", "--store", notStore}, exitError, notStore + " is not an smp store: run smp init --store " + notStore + " first"},
		{"create in not a store", []string{"token", "create", "--store", notStore, "--role", "admin"}, exitError, "is not an smp store"},
		{"revoke without id", []string{"token", "revoke", "--store", store}, exitUsage, "--id ID is required"},
		{"invalid computer", []string{"token", "create", "--store", store, "--computer", "a/b"}, exitError, "invalid computer name"},
		{"associate without dest", []string{"associate", "--store", store, "--source", "PC01"}, exitUsage, "give --source NAME and --dest NAME"},
		{"associate with itself", []string{"associate", "--store", store, "--source", "PC01", "--dest", "PC01"}, exitUsage, "--source and --dest are both PC01"},
		{"list with source", []string{"associate", "--store", store, "--list", "--source", "PC01"}, exitUsage, "--list takes no"},
		{"json without list", []string{"associate", "--store", store, "--source", "A", "--dest", "B", "--json"}, exitUsage, "--json goes with --list"},
		{"associate not a store", []string{"associate", "--store", notStore, "--list"}, exitError, "is not an smp store"},
		{"admin without subcommand", []string{"admin"}, exitUsage, "want: smp admin restore-only"},
		{"restore-only maybe", []string{"admin", "restore-only", "maybe", "--store", store}, exitUsage, `want on or off, not "maybe"`},
		{"restore-only twice", []string{"admin", "restore-only", "on", "off", "--store", store}, exitUsage, "want one of on or off"},
		{"restore-only not a store", []string{"admin", "restore-only", "on", "--store", notStore}, exitError, "is not an smp store"},
	}
	for _, tc := range tests {
		r := smp(t, tc.args...)
		lines := r.stderrLines()
		if r.code != tc.code || len(lines) != 1 || !strings.Contains(lines[0], tc.want) || r.stdout != "" {
			t.Errorf("%s: want exit %d and one line with %q on stderr, nothing on stdout\n%s", tc.name, tc.code, tc.want, r)
		}
	}
	// Nothing was written by the refused commands.
	if _, err := os.Stat(filepath.Join(store, "access.json")); !os.IsNotExist(err) {
		t.Errorf("refused commands created access.json (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(notStore, "access.json")); !os.IsNotExist(err) {
		t.Errorf("a command wrote access.json into a directory that is not a store (%v)", err)
	}
	for _, args := range [][]string{{"token", "--help"}, {"token", "create", "--help"}, {"associate", "--help"}, {"admin", "restore-only", "--help"}} {
		if r := smp(t, args...); r.code != exitOK || !strings.Contains(r.stderr, "Usage") {
			t.Errorf("--help: want exit 0 and usage\n%s", r)
		}
	}
}
