package server_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"smp/cas"
	"smp/internal/keytest"
	"smp/remote/access"
	"smp/remote/server"
	"smp/repo"
)

// TestConsoleEncryptedStoreSealsAccess: the web console of a server on an
// encrypted store (its access file opened by Repo.Access, as smp serve
// does) creates tokens and associations through the sealed access file:
// access.sealed names no computer, no access.json appears, and the new
// token authenticates through a second handle with the store's keys.
func TestConsoleEncryptedStoreSealsAccess(t *testing.T) {
	u := keytest.New(t)
	dir := filepath.Join(t.TempDir(), "store")
	if _, err := repo.InitWith(dir, repo.InitOptions{Params: cas.DefaultChunkerParams(), Keys: u}); err != nil {
		t.Fatal(err)
	}
	r, err := repo.OpenWith(dir, repo.OpenOptions{Keyring: u.Keyring()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	acc, err := r.Access()
	if err != nil {
		t.Fatal(err)
	}
	admin, _, err := acc.CreateToken("", access.RoleAdmin, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(server.New(server.Options{Repo: r, Access: acc, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	defer hs.Close()
	b := &browser{t: t, base: hs.URL}
	b.login(admin)
	const pc = "sntlConsolePC"
	wantPage(t, "associate", b.action(url.Values{"op": {"associate"}, "source": {pc}, "dest": {pc + "2"}}), http.StatusOK)
	p := b.action(url.Values{"op": {"token-create"}, "computer": {pc}})
	m := regexp.MustCompile(`id="secret">(smp_[A-Za-z0-9_-]+)<`).FindStringSubmatch(p.body)
	if p.status != http.StatusOK || m == nil {
		t.Fatalf("token create: %d\n%s", p.status, p.body)
	}
	wantPage(t, "restore-only", b.action(url.Values{"op": {"restore-only"}, "on": {"1"}}), http.StatusOK)

	if _, err := os.Stat(filepath.Join(dir, "access.json")); !os.IsNotExist(err) {
		t.Errorf("the console wrote access.json in an encrypted store (%v)", err)
	}
	sealed, err := os.ReadFile(filepath.Join(dir, "access.sealed"))
	if err != nil || bytes.Contains(sealed, []byte(pc)) {
		t.Fatalf("access.sealed: %v, or names the computer", err)
	}
	other, err := r.Access()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := other.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := snap.Authenticate(m[1], time.Now()); err != nil || tok.Computer != pc {
		t.Fatalf("the console's token: %+v, %v", tok, err)
	}
	if len(snap.Associations()) != 1 || !snap.RestoreOnly() {
		t.Fatalf("associations %+v, restore-only %v", snap.Associations(), snap.RestoreOnly())
	}
	if _, err := access.Open(dir); err == nil {
		t.Fatal("the sealed access file opened without the store's keys")
	}
}
