package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"smp/internal/leaktest"
)

// linkNote is the line capture prints once when it hard-linked files into
// an encrypted store; its group is the ingest command it suggests.
var linkNote = regexp.MustCompile(`(?m)^note: the (\d+) files hard-linked \(or cloned\) into the store's links/ area are your own files, in place: they are NOT encrypted, unlike the rest of the store \(smp ingest --record ([0-9a-f]+) makes the record an encrypted copy\)$`)

// TestE2EHardlinkEncryptedStore: on a store made by plain smp init
// (encrypted by default), a hard-link capture says once that the files it
// linked are the user's own files and not encrypted; smp ingest, as that
// line suggests, turns the record into a sealed one, after which no file
// of the store holds a sentinel or a random block of the profile (the
// record's data, trees and record blobs are all sealed) and the profile
// restores identical. A capture without links, and a hard-link capture
// into a store made with --no-encrypt, print no such line.
func TestE2EHardlinkEncryptedStore(t *testing.T) {
	t.Parallel()
	dir := tmpDir(t)
	store := filepath.Join(dir, "store")
	mustSMP(t, "init", "--store", store)
	if !storeEncrypted(t, store) {
		t.Fatal("smp init made a store in clear")
	}
	sec := &leaktest.Secrets{}
	src := filepath.Join(dir, "src") // beside the store: one filesystem
	pc := leaktest.Tree(t, src, sec)

	r := mustSMP(t, "capture", "--store", store, "--computer", pc, "--root", src, "--hardlink", "always")
	notes := linkNote.FindAllStringSubmatch(r.stdout, -1)
	if len(notes) != 1 || notes[0][1] == "0" || strings.Count(r.stdout, "NOT encrypted") != 1 {
		t.Fatalf("hard-link capture into an encrypted store: want the not-encrypted note once\n%s", r)
	}
	rec := notes[0][2]

	var c struct {
		captureOut
		Notes []string `json:"notes"`
	}
	other := filepath.Join(dir, "other")
	writeFile(t, filepath.Join(other, "home/bob/plain.txt"), []byte("chunked and sealed\n"), 0o644)
	smpJSON(t, exitOK, &c, "capture", "--store", store, "--computer", "pc-other", "--root", other, "--hardlink", "never", "--json")
	if c.Notes == nil || len(c.Notes) != 0 {
		t.Errorf("capture without links: notes %q, want an empty list", c.Notes)
	}

	r = mustSMP(t, "ingest", "--store", store, "--record", rec)
	if !strings.Contains(r.stdout, "record "+rec) || !strings.Contains(r.stdout, "now stored as chunks") {
		t.Errorf("ingest --record %s:\n%s", rec, r)
	}
	leaktest.CheckNoPlaintext(t, "after ingest", store, sec)
	dst := filepath.Join(tmpDir(t), "dst")
	restoreJSON(t, exitOK, store, "--computer", pc, "--root", dst)
	compareTrees(t, src, dst, compareOpts{})
	mustSMP(t, "verify", "--store", store, "--read-data")

	clear := filepath.Join(dir, "clear")
	mustSMP(t, "init", "--store", clear, "--no-encrypt")
	r = mustSMP(t, "capture", "--store", clear, "--computer", "pc-clear", "--root", other, "--hardlink", "always")
	if strings.Contains(r.stdout, "NOT encrypted") || !strings.Contains(r.stdout, "1 files hard-linked") {
		t.Errorf("hard-link capture into a store in clear: want one file linked and no note\n%s", r)
	}
}
