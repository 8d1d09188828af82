package main

import (
	"path/filepath"
	"testing"
)

// TestE2EStatsByComputer: two computers share one file and each has one of
// its own; stats --computer says what each record alone holds, and that
// figure is what rm + gc frees.
func TestE2EStatsByComputer(t *testing.T) {
	t.Parallel()
	dir := tmpDir(t)
	root := filepath.Join(dir, "root")
	shared := rnd(5, 2<<20)
	writeFile(t, filepath.Join(root, "home/alice/shared.bin"), shared, 0o644)
	writeFile(t, filepath.Join(root, "home/bob/shared.bin"), shared, 0o644)
	writeFile(t, filepath.Join(root, "home/alice/own.bin"), rnd(6, 1<<20), 0o644)
	writeFile(t, filepath.Join(root, "home/bob/own.bin"), rnd(7, 3<<20), 0o644)
	store := newStore(t)
	a := doCapture(t, 0, store, "pc-a", "--root", root, "--user", "alice")
	b := doCapture(t, 0, store, "pc-b", "--root", root, "--user", "bob")
	var st struct {
		statsOut
		Computers []struct {
			Computer  string `json:"computer"`
			Records   int    `json:"records"`
			OnlyBytes uint64 `json:"only_bytes"`
		} `json:"computers"`
		PerRecord []struct {
			ID        string `json:"id"`
			OnlyBytes uint64 `json:"only_bytes"`
		} `json:"per_record"`
	}
	smpJSON(t, 0, &st, "stats", "--store", store, "--computer", "--json")
	only := map[string]uint64{}
	for _, r := range st.PerRecord {
		only[r.ID] = r.OnlyBytes
	}
	// Random data is stored raw: a record's own bytes are its own file's.
	if got := only[a.Record]; got < 1<<20 || got > 1<<20+4096 {
		t.Errorf("alice's record alone holds %d bytes, want about 1 MiB", got)
	}
	if got := only[b.Record]; got < 3<<20 || got > 3<<20+4096 {
		t.Errorf("bob's record alone holds %d bytes, want about 3 MiB", got)
	}
	if len(st.Computers) != 2 || st.Computers[0].Records != 1 {
		t.Fatalf("computers: %+v", st.Computers)
	}
	before := stats(t, store).StoredBytes
	mustSMP(t, "rm", "--store", store, "--record", b.Record)
	mustSMP(t, "gc", "--store", store, "--grace", "0", "--repack-below", "1")
	freed := before - stats(t, store).StoredBytes
	if freed < only[b.Record] {
		t.Errorf("rm + gc freed %d bytes, stats promised %d", freed, only[b.Record])
	}
}
