package server_test

import (
	"net/http"
	"testing"

	"smp/remote/access"
)

// TestTrailingJSONRefused: a JSON body is one value; bytes after it are
// refused, not ignored.
func TestTrailingJSONRefused(t *testing.T) {
	e := newEnv(t)
	tok := e.token("PC01", access.RoleClient, 0)
	for _, body := range []string{
		`{"computer":"PC01"}{"computer":"PC02"}`,
		`{"computer":"PC01"} x`,
		`{"computer":"PC01"}]`,
		`{"computer":"PC01"} {`,
	} {
		r := e.do(http.MethodPost, "/v1/captures", tok, []byte(body))
		wantError(t, "start capture "+body, r, http.StatusBadRequest, false, "after the JSON value")
	}
	// Trailing white space (the newline json.Encoder writes) is no value.
	r := e.do(http.MethodPost, "/v1/captures", tok, []byte("{\"computer\":\"PC01\"}\n \t\n"))
	wantOK(t, "start capture with a trailing newline", r, http.StatusOK)
}

// TestAssociationSeenNextRequest: `smp associate` writes the access file
// from another process while the server runs; the server honours the
// association on the very next request, with no wait.
func TestAssociationSeenNextRequest(t *testing.T) {
	e := newEnv(t)
	pc01 := e.client(e.token("PC01", access.RoleClient, 0))
	pc02tok := e.token("PC02", access.RoleClient, 0)
	e.captureAll(pc01, "PC01", map[string][]chunk{"a": e.makeChunks(3, 2)}, t0)
	if r := e.do(http.MethodGet, "/v1/record?computer=PC01", pc02tok, nil); r.status == http.StatusOK {
		t.Fatalf("PC02 finds PC01's record before any association: %s", r.body)
	}
	// Another Store on the same directory, as the smp associate process has.
	cli, err := access.Open(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		if err := cli.Associate("PC01", "PC02", t0); err != nil {
			t.Fatal(err)
		}
		r := e.do(http.MethodGet, "/v1/record?computer=PC01", pc02tok, nil)
		wantOK(t, "PC02 finds PC01's record right after smp associate", r, http.StatusOK)
		if err := cli.Dissociate("PC01", "PC02"); err != nil {
			t.Fatal(err)
		}
		if r := e.do(http.MethodGet, "/v1/record?computer=PC01", pc02tok, nil); r.status == http.StatusOK {
			t.Fatalf("round %d: PC02 still finds PC01's record right after smp dissociate", round)
		}
	}
}
