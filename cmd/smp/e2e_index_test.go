package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestE2EIndexRebuild deletes the index of a store holding several records
// (one removed, one hard-link record) and rebuilds it from the packs: every
// live record comes back and restores byte-identical, the removed one does
// not, and verify --read-data is clean.
func TestE2EIndexRebuild(t *testing.T) {
	t.Parallel()
	dir := tmpDir(t)
	root := filepath.Join(dir, "root")
	writeFile(t, filepath.Join(root, "home/alice/a.bin"), rnd(1, 2<<20), 0o644)
	writeFile(t, filepath.Join(root, "home/alice/shared.txt"), goSource(t, 200<<10), 0o644)
	writeFile(t, filepath.Join(root, "home/bob/b.bin"), rnd(2, 1<<20), 0o600)
	writeFile(t, filepath.Join(root, "home/bob/shared.txt"), goSource(t, 200<<10), 0o644)
	if os.Geteuid() == 0 {
		// Profiles are their users': restore gives root-owned files in one
		// to the profile's owner unless --allow-system.
		chownTree(t, filepath.Join(root, "home/alice"), 1000, 1000)
		chownTree(t, filepath.Join(root, "home/bob"), 4242, 4343)
	}
	stampTimes(t, root)
	store := newStore(t)
	alice := doCapture(t, 0, store, "pc-a", "--root", root, "--user", "alice")
	bob := doCapture(t, 0, store, "pc-b", "--root", root, "--user", "bob")
	gone := doCapture(t, 0, store, "pc-c", "--root", root, "--user", "bob")
	mustSMP(t, "rm", "--store", store, "--record", gone.Record)
	before := stats(t, store)

	if err := os.RemoveAll(filepath.Join(store, "index")); err != nil {
		t.Fatal(err)
	}
	r := smp(t, "records", "--store", store)
	if r.code != exitError || len(r.stderrLines()) != 1 || !strings.Contains(r.stderr, "run smp index rebuild --store "+store) {
		t.Fatalf("records without an index: want one line saying to run smp index rebuild\n%v", r)
	}
	var rep struct {
		Packs      int      `json:"packs"`
		Records    int      `json:"records"`
		Removed    int      `json:"removed_records"`
		Incomplete []string `json:"incomplete_records"`
	}
	smpJSON(t, 0, &rep, "index", "rebuild", "--store", store, "--json")
	if rep.Records != 2 || rep.Removed != 1 || len(rep.Incomplete) != 0 || rep.Packs == 0 {
		t.Fatalf("rebuild: %+v; want 2 records live, 1 removed", rep)
	}
	after := stats(t, store)
	if after.Records != 2 || after.LogicalBytes != before.LogicalBytes || after.Chunks != before.Chunks {
		t.Fatalf("stats after rebuild %+v, before %+v", after, before)
	}
	for _, c := range []captureOut{alice, bob} {
		target := filepath.Join(dir, "restored-"+c.Computer)
		restoreJSON(t, 0, store, "--record", c.Record, "--root", target)
		user := strings.TrimPrefix(c.Users[0], "")
		compareTrees(t, filepath.Join(root, "home", user), filepath.Join(target, "home", user), compareOpts{owners: true})
	}
	mustSMP(t, "verify", "--store", store, "--read-data")
	r = smp(t, "restore", "--store", store, "--record", gone.Record, "--root", filepath.Join(dir, "nope"))
	if r.code != exitError {
		t.Fatalf("removed record came back after rebuild: %v", r)
	}
}

// TestE2EIndexLostOrDamaged: with the index deleted or a table of it
// garbled, every command that opens the store fails with one line saying to
// run smp index rebuild --store DIR (exit 1), no panic, nothing written (a
// deleted index is not recreated, so the store never looks empty); the
// rebuild then brings the record back.
func TestE2EIndexLostOrDamaged(t *testing.T) {
	t.Parallel()
	dir := tmpDir(t)
	root := filepath.Join(dir, "root")
	writeFile(t, filepath.Join(root, "home/alice/a.bin"), rnd(11, 1<<20), 0o644)
	stampTimes(t, root)
	pristine := newStore(t)
	rec := doCapture(t, exitOK, pristine, "pc-a", "--root", root, "--hardlink", "never")
	tests := []struct {
		name   string
		damage func(t *testing.T, store string)
	}{
		{"index deleted", func(t *testing.T, store string) {
			if err := os.RemoveAll(filepath.Join(store, "index")); err != nil {
				t.Fatal(err)
			}
		}},
		{"index emptied", func(t *testing.T, store string) {
			if err := os.RemoveAll(filepath.Join(store, "index")); err != nil {
				t.Fatal(err)
			}
			mkdirs(t, filepath.Join(store, "index"))
		}},
		{"table footer cut", func(t *testing.T, store string) {
			ssts, _ := filepath.Glob(filepath.Join(store, "index", "*.sst"))
			if len(ssts) == 0 {
				t.Fatal("no index table")
			}
			for _, s := range ssts {
				st, err := os.Stat(s)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(s, st.Size()-1); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := filepath.Join(tmpDir(t), "store")
			if out, err := exec.Command("cp", "-a", pristine, store).CombinedOutput(); err != nil {
				t.Fatalf("cp -a: %v: %s", err, out)
			}
			tt.damage(t, store)
			_, statErr := os.Stat(filepath.Join(store, "index"))
			packsBefore := packNames(t, store)
			for _, args := range [][]string{
				{"records", "--store", store},
				{"verify", "--store", store, "--read-data"},
				{"stats", "--store", store},
				{"restore", "--store", store, "--record", rec.Record, "--root", filepath.Join(dir, "nope")},
				{"restore", "--store", store, "--record", rec.Record, "--root", filepath.Join(dir, "nope"), "--keep"}, // read-only open
				{"capture", "--store", store, "--computer", "pc-b", "--root", root, "--hardlink", "never"},
				// Links while the index opens: the open's error, and no link left.
				{"capture", "--store", store, "--computer", "pc-b", "--root", root, "--hardlink", "always"},
				{"gc", "--store", store},
			} {
				r := smp(t, args...)
				if r.code != exitError || len(r.stderrLines()) != 1 || !strings.Contains(r.stderr, "run smp index rebuild --store "+store) ||
					strings.Contains(r.stderr, "panic") {
					t.Errorf("smp %s: want exit 1 and one line saying to run smp index rebuild --store %s\n%s", args[0], store, r)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "nope")); !os.IsNotExist(err) {
				t.Errorf("restore wrote into its target (%v)", err)
			}
			if _, err := os.Stat(filepath.Join(store, "index")); os.IsNotExist(err) != os.IsNotExist(statErr) {
				t.Errorf("a refused command created the index directory")
			}
			if got := packNames(t, store); !slices.Equal(got, packsBefore) {
				t.Errorf("packs changed: %q, were %q", got, packsBefore)
			}
			if sets, _ := os.ReadDir(filepath.Join(store, "links")); len(sets) != 0 {
				t.Errorf("the refused hard-link capture left %d link sets in the store", len(sets))
			}
			mustSMP(t, "index", "rebuild", "--store", store)
			mustSMP(t, "verify", "--store", store, "--read-data")
			target := filepath.Join(tmpDir(t), "target")
			restoreJSON(t, exitOK, store, "--record", rec.Record, "--root", target)
			compareTrees(t, filepath.Join(root, "home"), filepath.Join(target, "home"), compareOpts{})
		})
	}
}
