package main

import (
	"path/filepath"
	"testing"
)

// TestE2EReleaseAndRetention: a successful restore releases its record
// (unless --keep); gc --retention removes released records whose retention
// ran out and keeps the rest; records shows each record's state.
func TestE2EReleaseAndRetention(t *testing.T) {
	t.Parallel()
	dir := tmpDir(t)
	root := filepath.Join(dir, "root")
	writeFile(t, filepath.Join(root, "home/alice/a.txt"), []byte("alice\n"), 0o644)
	writeFile(t, filepath.Join(root, "home/bob/b.txt"), []byte("bob\n"), 0o644)
	store := newStore(t)
	a := doCapture(t, 0, store, "pc-a", "--root", root, "--user", "alice")
	b := doCapture(t, 0, store, "pc-b", "--root", root, "--user", "bob")
	c := doCapture(t, 0, store, "pc-c", "--root", root, "--user", "bob")

	restoreJSON(t, 0, store, "--record", a.Record, "--root", filepath.Join(dir, "ra"))
	restoreJSON(t, 0, store, "--record", b.Record, "--root", filepath.Join(dir, "rb"), "--keep")

	state := func() map[string]string {
		var out struct {
			Records []struct {
				ID    string `json:"id"`
				State string `json:"state"`
			} `json:"records"`
		}
		smpJSON(t, 0, &out, "records", "--store", store, "--json")
		m := map[string]string{}
		for _, r := range out.Records {
			m[r.ID] = r.State
		}
		return m
	}
	got := state()
	if got[a.Record] != "released" || got[b.Record] != "captured" || got[c.Record] != "captured" {
		t.Fatalf("states after restores: %v", got)
	}
	// A long retention keeps the released record.
	mustSMP(t, "gc", "--store", store, "--grace", "0", "--retention", "30d")
	if len(state()) != 3 {
		t.Fatal("gc --retention 30d removed a record released just now")
	}
	mustSMP(t, "release", "--store", store, "--record", c.Record)
	var gc struct {
		Expired []string `json:"expired_records"`
	}
	smpJSON(t, 0, &gc, "gc", "--store", store, "--grace", "0", "--retention", "0s", "--json")
	if len(gc.Expired) != 2 {
		t.Fatalf("expired %v, want alice's and pc-c's records", gc.Expired)
	}
	got = state()
	if len(got) != 1 || got[b.Record] != "captured" {
		t.Fatalf("records after retention: %v; want only the kept (never released) one", got)
	}
	restoreJSON(t, 0, store, "--record", b.Record, "--root", filepath.Join(dir, "rb2"))
	if r := smp(t, "gc", "--store", store, "--grace", "0", "--retention", "soon"); r.code != exitUsage {
		t.Fatalf("bad --retention: %v", r)
	}
}
