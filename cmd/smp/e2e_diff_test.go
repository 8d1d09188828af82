package main

import (
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// diffJSON is smp diff --json.
type diffJSON struct {
	Old     string `json:"old"`
	New     string `json:"new"`
	Changes []struct {
		Kind    string   `json:"kind"`
		Path    string   `json:"path"`
		From    string   `json:"from"`
		Type    string   `json:"type"`
		Size    uint64   `json:"size"`
		OldSize uint64   `json:"old_size"`
		What    []string `json:"what"`
	} `json:"changes"`
	Counts map[string]int `json:"counts"`
}

// kinds returns "kind path [from]" lines, sorted.
func (d diffJSON) lines() []string {
	var out []string
	for _, c := range d.Changes {
		l := c.Kind + " " + c.Path
		if c.From != "" {
			l += " <- " + c.From
		}
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

// TestE2EDiffKinds: each kind of change made to a real tree between two
// captures is reported, with sizes, by record IDs and by --computer; and
// the text output names them.
func TestE2EDiffKinds(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	root := tmpDir(t)
	home := filepath.Join(root, "home", "ann")
	mkdirs(t, filepath.Join(home, "Documents"), filepath.Join(home, "old"))
	writeFile(t, filepath.Join(home, "Documents", "edit.txt"), rnd(1, 3000), 0o644)
	writeFile(t, filepath.Join(home, "Documents", "move.bin"), rnd(2, 5000), 0o644)
	writeFile(t, filepath.Join(home, "gone.txt"), rnd(3, 700), 0o644)
	writeFile(t, filepath.Join(home, "chmod.sh"), rnd(4, 100), 0o644)
	writeFile(t, filepath.Join(home, "old", "x"), rnd(5, 10), 0o644)
	stampTimes(t, root)
	first := doCapture(t, exitOK, st, "pc1", "--root", root)

	writeFile(t, filepath.Join(home, "Documents", "edit.txt"), rnd(6, 4000), 0o644)
	if err := os.Rename(filepath.Join(home, "Documents", "move.bin"), filepath.Join(home, "moved.bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(home, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(home, "chmod.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(home, "old")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(home, "new.txt"), rnd(7, 1234), 0o600)
	second := doCapture(t, exitOK, st, "pc1", "--root", root)

	var d diffJSON
	smpJSON(t, exitOK, &d, "diff", "--store", st, "--json", first.Record, second.Record)
	want := []string{
		"added home/ann/new.txt",
		"modified home/ann/Documents/edit.txt",
		"modified home/ann/chmod.sh",
		"removed home/ann/gone.txt",
		"removed home/ann/old",
		"removed home/ann/old/x",
		"renamed home/ann/moved.bin <- home/ann/Documents/move.bin",
	}
	if got := d.lines(); !slices.Equal(got, want) {
		t.Fatalf("diff:\n got %q\nwant %q", got, want)
	}
	for _, c := range d.Changes {
		switch c.Path {
		case "home/ann/Documents/edit.txt":
			if c.Size != 4000 || c.OldSize != 3000 || !slices.Contains(c.What, "content") {
				t.Errorf("edit.txt: %+v", c)
			}
		case "home/ann/chmod.sh":
			if !slices.Equal(c.What, []string{"mode"}) {
				t.Errorf("chmod.sh: %+v", c)
			}
		case "home/ann/moved.bin":
			if c.Size != 5000 {
				t.Errorf("moved.bin: %+v", c)
			}
		case "home/ann/new.txt":
			if c.Size != 1234 {
				t.Errorf("new.txt: %+v", c)
			}
		}
	}
	if d.Old != first.Record || d.New != second.Record || d.Counts["renamed"] != 1 || d.Counts["removed"] != 3 {
		t.Errorf("diff header: %+v", d)
	}
	// --computer takes its last two records, older first.
	var dc diffJSON
	smpJSON(t, exitOK, &dc, "diff", "--store", st, "--json", "--computer", "pc1")
	if !slices.Equal(dc.lines(), want) {
		t.Errorf("--computer diff: %q", dc.lines())
	}
	r := mustSMP(t, "diff", "--store", st, "--computer", "pc1")
	for _, s := range []string{"R", "home/ann/Documents/move.bin -> home/ann/moved.bin", "(content,mtime)", "1 renamed"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("text output lacks %q:\n%s", s, r.stdout)
		}
	}
	// Bad usage: one record, or a computer with one record.
	if r := smp(t, "diff", "--store", st, first.Record); r.code != exitUsage {
		t.Errorf("diff with one record: %s", r)
	}
	doCapture(t, exitOK, st, "pc2", "--root", root)
	if r := smp(t, "diff", "--store", st, "--computer", "pc2"); r.code == exitOK || !strings.Contains(r.stderr, "diff needs two") {
		t.Errorf("diff of a computer with one record: %s", r)
	}
	// Through an SMP, and a group of two SMPs, the same changes.
	srv := startServer(t, st, "--insecure")
	token := newToken(t, st, "--computer", "pc1")
	var dr diffJSON
	smpJSON(t, exitOK, &dr, "diff", "--store", srv.url, "--token", token, "--json", "--computer", "pc1")
	if !slices.Equal(dr.lines(), want) {
		t.Errorf("diff through the SMP: %q", dr.lines())
	}
	other := newStore(t)
	srv2 := startServer(t, other, "--insecure")
	token2 := newToken(t, other, "--computer", "pc1")
	var dg diffJSON
	smpJSON(t, exitOK, &dg, "diff", "--store", srv2.url+","+srv.url, "--token", token2+","+token, "--json", first.Record[:12], second.Record)
	if !slices.Equal(dg.lines(), want) {
		t.Errorf("diff through a group: %q", dg.lines())
	}
}

// TestE2EDiffMutatedCorpus: smp diff between captures before and after
// the bench corpus' week of changes lists exactly the mutation's own
// edits, additions, deletions and renames.
func TestE2EDiffMutatedCorpus(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(tmpDir(t), "corpus")
	mustSMP(t, "bench", "corpus", "--out", dir, "--users", "3", "--size", "24MiB", "--seed", "7")
	st := newStore(t)
	first := doCapture(t, exitOK, st, "fleet", "--root", dir)
	var info struct {
		Added, Modified, Deleted, Renamed int
		Changes                           []struct{ Kind, Path, From string }
	}
	smpJSON(t, exitOK, &info, "bench", "corpus", "--mutate", "--out", dir, "--seed", "7", "--json")
	second := doCapture(t, exitOK, st, "fleet", "--root", dir)
	var want []string
	for _, c := range info.Changes {
		kind := map[string]string{"deleted": "removed"}[c.Kind]
		if kind == "" {
			kind = c.Kind
		}
		l := kind + " " + c.Path
		if c.From != "" {
			l += " <- " + c.From
		}
		want = append(want, l)
	}
	slices.Sort(want)
	if info.Added == 0 || info.Modified == 0 || info.Deleted == 0 || info.Renamed == 0 || len(want) != info.Added+info.Modified+info.Deleted+info.Renamed {
		t.Fatalf("mutation: %+v", info)
	}
	var d diffJSON
	smpJSON(t, exitOK, &d, "diff", "--store", st, "--json", first.Record, second.Record)
	if got := d.lines(); !slices.Equal(got, want) {
		t.Fatalf("diff does not match the mutation:\n got %q\nwant %q", got, want)
	}
	t.Logf("%d added, %d modified, %d removed, %d renamed", d.Counts["added"], d.Counts["modified"], d.Counts["removed"], d.Counts["renamed"])
}

// TestE2EFilesLong: smp files --long prints each entry as ls -l does.
func TestE2EFilesLong(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	root := tmpDir(t)
	home := filepath.Join(root, "home", "bob")
	mkdirs(t, filepath.Join(home, "bin"))
	writeFile(t, filepath.Join(home, "bin", "tool"), rnd(1, 4321), 0o755)
	if err := os.Chmod(filepath.Join(home, "bin", "tool"), 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(home, "notes.txt"), rnd(2, 12), 0o640)
	if err := os.Symlink("notes.txt", filepath.Join(home, "link")); err != nil {
		t.Fatal(err)
	}
	stampTimes(t, root)
	c := doCapture(t, exitOK, st, "pc", "--root", root)
	r := mustSMP(t, "files", "--store", st, "--record", c.Record, "--long")
	user, group := ownerNames(t, filepath.Join(home, "notes.txt"))
	for _, want := range [][]string{
		{"-rwsr-xr-x", user, group, "4321", "home/bob/bin/tool"},
		{"-rw-r-----", user, group, "12", "home/bob/notes.txt"},
		{"lrwxrwxrwx", user, group, "home/bob/link -> notes.txt"},
		{"drwx", user, group, "home/bob/bin/"},
	} {
		found := false
		for _, line := range strings.Split(r.stdout, "\n") {
			f := strings.Fields(line)
			if len(f) >= 6 && strings.HasPrefix(f[0], want[0]) && f[1] == want[1] && f[2] == want[2] && strings.HasSuffix(line, want[len(want)-1]) &&
				(len(want) == 4 || f[3] == want[3]) {
				found = true
			}
		}
		if !found {
			t.Errorf("no line %q in:\n%s", want, r.stdout)
		}
	}
}

// ownerNames is the owner and group of path as a capture names them: the
// account names, or the numbers when this system has none.
func ownerNames(t *testing.T, path string) (string, string) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	u, g := strconv.FormatUint(uint64(st.Uid), 10), strconv.FormatUint(uint64(st.Gid), 10)
	if x, err := user.LookupId(u); err == nil {
		u = x.Username
	}
	if x, err := user.LookupGroupId(g); err == nil {
		g = x.Name
	}
	return u, g
}

// TestE2EBenchCorpusShape: smp bench corpus writes the shape it is asked
// for and says so in --json; an unknown shape, or --shape with an
// existing corpus, is a usage error naming the choices.
func TestE2EBenchCorpusShape(t *testing.T) {
	t.Parallel()
	var info struct {
		Shape          string `json:"shape"`
		Files          int    `json:"files"`
		MedianFileSize int64  `json:"median_file_size"`
	}
	for _, shape := range []string{"realistic", "large-files"} {
		smpJSON(t, exitOK, &info, "bench", "corpus", "--out", filepath.Join(tmpDir(t), "c"), "--users", "2", "--size", "4MiB", "--shape", shape, "--json")
		if info.Shape != shape || info.Files == 0 || info.MedianFileSize <= 0 {
			t.Errorf("--shape %s: %+v", shape, info)
		}
	}
	for _, args := range [][]string{
		{"bench", "corpus", "--out", filepath.Join(tmpDir(t), "c"), "--shape", "huge"},
		{"bench", "run", "--shape", "huge"},
		{"bench", "run", "--corpus", tmpDir(t), "--shape", "large-files"},
	} {
		r := smp(t, args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "--shape") {
			t.Errorf("%v", r)
		}
	}
}
