package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"smp/remote/access"
	"smp/remote/wire"
)

// POST /v1/captures/{sid}/expected with any body, on a live session: the
// server answers 204 or 400 (a body over the JSON limit 413), never
// anything else, and what it accepts is one strict CaptureTotals value
// within the bounds; the session stays usable.
func FuzzCaptureTotalsLater(f *testing.F) {
	f.Add([]byte(`{"files":10,"bytes":10485760}`))
	f.Add([]byte(`{"files":18446744073709551615,"bytes":1}`))
	f.Add([]byte(`{"files":-1}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"bytes":1e30}`))
	f.Add([]byte(`{"files":1}{"files":2}`))
	f.Add([]byte(`{"files":1,"extra":true}`))
	e := newEnv(f)
	tok := e.token("PC01", access.RoleClient, 0)
	sess := e.session(tok, "PC01")
	path := "/v1/captures/" + sess.ID + "/expected"
	f.Fuzz(func(t *testing.T, b []byte) {
		r := post(t, e, path, tok, b)
		switch r.status {
		case http.StatusNoContent:
			var got wire.CaptureTotals
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("accepted %q, which is no CaptureTotals: %v", b, err)
			}
			if got.Files > wire.MaxExpectedFiles || got.Bytes > wire.MaxExpectedBytes {
				t.Fatalf("accepted totals %+v past the bounds", got)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("body %q: HTTP %d %s", b, r.status, r.body)
		}
		if r := post(t, e, path, tok, []byte(`{"files":1,"bytes":1}`)); r.status != http.StatusNoContent {
			t.Fatalf("the session no longer takes totals after %q: HTTP %d %s", b, r.status, r.body)
		}
	})
}

// post is env.do for a fuzz target, which must report through its own t.
func post(t *testing.T, e *env, path, tok string, body []byte) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.hs.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, b}
}
