package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestE2EServeGroupNewest: a restore from a group of SMPs takes the newest
// record of the computer across all of them, whatever their order in
// --store; a record ID prefix resolves on whichever SMP holds it; an SMP
// that does not answer makes the restore refuse (it may hold a newer
// record) unless --allow-unreachable, which names the SMP it skipped.
func TestE2EServeGroupNewest(t *testing.T) {
	t.Parallel()
	storeA, storeB := newStore(t), newStore(t)
	srvA, srvB := startServer(t, storeA), launchServer(t, storeB, "--insecure")
	t.Cleanup(func() { srvB.stop(t) })
	tokA := newToken(t, storeA, "--computer", "PC01")
	tokB := newToken(t, storeB, "--computer", "PC01")
	tokens := tokA + "," + tokB
	srcOld, srcNew := tmpDir(t), tmpDir(t)
	serveProfile(t, srcOld, 21, 1)
	serveProfile(t, srcNew, 22, 1)

	// PC01 captures to A; A goes restore-only, and the next capture to
	// the group falls back to B.
	group := srvA.url + "," + srvB.url
	old := remoteCapture(t, exitOK, group, tokens, "PC01", "--root", srcOld)
	mustSMP(t, "admin", "restore-only", "on", "--store", storeA)
	time.Sleep(250 * time.Millisecond) // the server re-reads the access file at most every 200 ms
	r := smp(t, "capture", "--store", group, "--token", tokens, "--computer", "PC01", "--root", srcNew, "--json")
	if r.code != exitOK || !strings.Contains(r.stderr, "trying the next SMP") {
		t.Fatalf("capture did not fall back to B\n%s", r)
	}
	var recsB recordsOut
	smpJSON(t, exitOK, &recsB, "records", "--store", srvB.url, "--token", tokB, "--json")
	if len(recsB.Records) != 1 {
		t.Fatalf("B holds %v, want the new record", recsB.ids())
	}
	newID := recsB.Records[0].ID

	// The newest record wins in either order.
	for _, order := range [][2]string{{srvA.url, srvB.url}, {srvB.url, srvA.url}} {
		toks := tokA + "," + tokB
		if order[0] == srvB.url {
			toks = tokB + "," + tokA
		}
		dst := tmpDir(t)
		out, _ := restoreJSON(t, exitOK, order[0]+","+order[1], "--token", toks, "--computer", "PC01", "--root", dst, "--keep")
		if out.Record != newID {
			t.Errorf("--store %s,%s restored record %s, want the newer %s", order[0], order[1], out.Record, newID)
		}
		compareTrees(t, srcNew, dst, compareOpts{})
	}
	// A record ID prefix resolves on the SMP that holds it.
	for _, c := range []struct{ id, src string }{{old.Record, srcOld}, {newID, srcNew}} {
		dst := tmpDir(t)
		out, _ := restoreJSON(t, exitOK, group, "--token", tokens, "--record", c.id[:10], "--root", dst, "--keep")
		if out.Record != c.id {
			t.Errorf("--record %s restored %s", c.id[:10], out.Record)
		}
		compareTrees(t, c.src, dst, compareOpts{})
	}
	// A prefix no SMP holds is "not found", once.
	r = smp(t, "restore", "--store", group, "--token", tokens, "--record", "0000000000", "--root", tmpDir(t))
	if r.code != exitError || len(r.stderrLines()) != 1 || !strings.Contains(r.stderr, "no SMP of the group has it") {
		t.Errorf("unknown record: want one line\n%s", r)
	}

	// B stops: it may hold a newer record, so the restore refuses.
	srvB.stop(t)
	dst := tmpDir(t)
	r = smp(t, "restore", "--store", group, "--token", tokens, "--computer", "PC01", "--root", dst)
	lines := r.stderrLines()
	if r.code != exitError || len(lines) != 1 || !strings.Contains(lines[0], srvB.url) || !strings.Contains(lines[0], "--allow-unreachable") {
		t.Fatalf("B down: want exit 1 and one line naming B and --allow-unreachable\n%s", r)
	}
	if ents, _ := os.ReadDir(dst); len(ents) != 0 {
		t.Errorf("the refused restore wrote %d entries", len(ents))
	}
	// With --allow-unreachable it restores A's record and says B was skipped.
	r = smp(t, "restore", "--store", group, "--token", tokens, "--computer", "PC01", "--root", dst, "--allow-unreachable")
	lines = r.stderrLines()
	if r.code != exitOK || len(lines) != 1 || !strings.Contains(lines[0], "skipped SMP "+srvB.url) || !strings.Contains(r.stdout, old.Record[:12]) {
		t.Fatalf("--allow-unreachable: want exit 0, A's record %s, and one line naming B\n%s", old.Record[:12], r)
	}
	compareTrees(t, srcOld, dst, compareOpts{})
	// Every SMP down: an error, even with --allow-unreachable.
	srvA.stop(t)
	r = smp(t, "restore", "--store", group, "--token", tokens, "--computer", "PC01", "--root", tmpDir(t), "--allow-unreachable")
	if r.code != exitError || len(r.stderrLines()) != 1 || !strings.Contains(r.stderr, "no SMP of the group answered") {
		t.Errorf("all down: want exit 1 and one line\n%s", r)
	}
}

// TestE2EGroupRecords: smp records over a group of SMPs lists the records
// of every SMP, each with the SMP that holds it (a field in --json, a
// column in text), oldest first; an SMP that does not answer is named on
// stderr and its records are left out, and only when none answers does
// the listing fail.
func TestE2EGroupRecords(t *testing.T) {
	t.Parallel()
	storeA, storeB := newStore(t), newStore(t)
	srvA, srvB := startServer(t, storeA), launchServer(t, storeB, "--insecure")
	t.Cleanup(func() { srvB.stop(t) })
	adminA := newToken(t, storeA, "--role", "admin")
	adminB := newToken(t, storeB, "--role", "admin")
	src := tmpDir(t)
	serveProfile(t, src, 31, 1)
	// PC01 captures to A, PC02 to B, PC03 to A: three records on two SMPs.
	want := map[string]string{} // record ID -> URL of its SMP
	for _, c := range []struct{ url, tok, computer string }{
		{srvA.url, adminA, "PC01"}, {srvB.url, adminB, "PC02"}, {srvA.url, adminA, "PC03"},
	} {
		out := remoteCapture(t, exitOK, c.url, c.tok, c.computer, "--root", src)
		want[out.Record] = c.url
	}
	group, tokens := srvA.url+","+srvB.url, adminA+","+adminB

	var got struct {
		Records []struct {
			ID       string    `json:"id"`
			Computer string    `json:"computer"`
			Created  time.Time `json:"created"`
			SMP      string    `json:"smp"`
		} `json:"records"`
	}
	smpJSON(t, exitOK, &got, "records", "--store", group, "--token", tokens, "--json")
	if len(got.Records) != len(want) {
		t.Fatalf("records over the group listed %d records, want %d", len(got.Records), len(want))
	}
	for i, r := range got.Records {
		if want[r.ID] != r.SMP {
			t.Errorf("record %s of %s: smp %q, want %q", r.ID[:12], r.Computer, r.SMP, want[r.ID])
		}
		if i > 0 && r.Created.Before(got.Records[i-1].Created) {
			t.Errorf("record %s listed after a newer one: want oldest first", r.ID[:12])
		}
	}

	// Text: an SMP column naming the SMP on each record's line.
	r := mustSMP(t, "records", "--store", group, "--token", tokens)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != len(want)+1 || !strings.HasSuffix(strings.TrimSpace(lines[0]), "SMP") {
		t.Fatalf("records text: want a header ending in SMP and %d lines\n%s", len(want), r.stdout)
	}
	for id, url := range want {
		found := false
		for _, l := range lines[1:] {
			found = found || (strings.HasPrefix(l, id[:12]) && strings.HasSuffix(strings.TrimSpace(l), url))
		}
		if !found {
			t.Errorf("records text has no line for %s ending in %s\n%s", id[:12], url, r.stdout)
		}
	}

	// B down: A's records are listed and B is named, once, on stderr.
	srvB.stop(t)
	got.Records = nil
	r = smpJSON(t, exitOK, &got, "records", "--store", group, "--token", tokens, "--json")
	if len(got.Records) != 2 {
		t.Errorf("B down: listed %d records, want A's 2", len(got.Records))
	}
	if lines := r.stderrLines(); len(lines) != 1 || !strings.Contains(lines[0], srvB.url) {
		t.Errorf("B down: want one stderr line naming B\n%s", r)
	}
	// Every SMP down: an error.
	srvA.stop(t)
	r = smp(t, "records", "--store", group, "--token", tokens)
	if r.code != exitError || len(r.stderrLines()) != 1 || !strings.Contains(r.stderr, "no SMP of the group answered") {
		t.Errorf("all down: want exit 1 and one line\n%s", r)
	}
}

// TestE2EGroupTLSFingerprints: two SMPs with self-signed certificates of
// their own form a group when --tls-fingerprint gives each its own pin in
// --store order; one pin for both reaches only the SMP it pins, and a
// list of another length is a usage error.
func TestE2EGroupTLSFingerprints(t *testing.T) {
	t.Parallel()
	storeA, storeB := newStore(t), newStore(t)
	srvA := startServer(t, storeA, "--tls-self-signed")
	srvB := startServer(t, storeB, "--tls-self-signed")
	if srvA.fingerprint == srvB.fingerprint {
		t.Fatal("both servers printed the same certificate fingerprint")
	}
	adminA := newToken(t, storeA, "--role", "admin")
	adminB := newToken(t, storeB, "--role", "admin")
	src := tmpDir(t)
	serveProfile(t, src, 32, 1)
	remoteCapture(t, exitOK, srvA.url, adminA, "PC01", "--root", src, "--tls-fingerprint="+srvA.fingerprint)
	remoteCapture(t, exitOK, srvB.url, adminB, "PC02", "--root", src, "--tls-fingerprint="+srvB.fingerprint)
	group, tokens := srvA.url+","+srvB.url, adminA+","+adminB

	var got struct {
		Records []struct {
			SMP string `json:"smp"`
		} `json:"records"`
	}
	smpJSON(t, exitOK, &got, "records", "--store", group, "--token", tokens, "--tls-fingerprint", srvA.fingerprint+","+srvB.fingerprint, "--json")
	if len(got.Records) != 2 || got.Records[0].SMP == got.Records[1].SMP {
		t.Fatalf("records over the group with a pin per SMP: %+v, want one record on each SMP", got.Records)
	}
	r := smp(t, "records", "--store", group, "--token", tokens, "--tls-fingerprint", srvA.fingerprint)
	if r.code != exitOK || !strings.Contains(r.stderr, srvB.url) || !strings.Contains(r.stderr, "does not match --tls-fingerprint") {
		t.Errorf("records with A's pin for both: want A's record and B named as not matching\n%s", r)
	}
	r = smp(t, "records", "--store", group, "--token", tokens, "--tls-fingerprint", srvA.fingerprint+","+srvB.fingerprint+","+srvA.fingerprint)
	if r.code != exitUsage || !strings.Contains(r.stderr, "3 fingerprints for 2 SMPs") {
		t.Errorf("three pins for two SMPs: want exit 2 naming the counts\n%s", r)
	}
}
