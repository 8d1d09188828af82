package server_test

import (
	"net/http"
	"testing"
	"time"

	"smp/remote/access"
	"smp/remote/server"
	"smp/storage/local"
)

// TestSharedAccessRecheck: with the access file of a store on S3 (an
// object several servers share; here on a real local storage), a token
// made by another writer after the server read the file is accepted on
// its first request, although the server's copy is fresh for an hour:
// an unknown token makes the server read the object again. A made-up
// token is still refused.
func TestSharedAccessRecheck(t *testing.T) {
	st, err := local.Open(t.TempDir(), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mine, err := access.OpenShared(st, access.SharedOptions{Every: time.Hour, Bound: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	other, err := access.OpenShared(st, access.SharedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *server.Options) { o.Access = mine })
	if r := e.do(http.MethodGet, "/v1/info", "smp_madeup", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("a made-up token: HTTP %d", r.status)
	}
	secret, _, err := other.CreateToken("PC01", access.RoleClient, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	if r := e.do(http.MethodGet, "/v1/info", secret, nil); r.status != http.StatusOK {
		t.Fatalf("a token another server made: HTTP %d, want 200 at once", r.status)
	}
}
