package main

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"smp/capture/logins"
)

// profilesOut is the profiles part of capture --json.
type profilesOut struct {
	Users    []string `json:"users"`
	Record   string   `json:"record"`
	Profiles []struct {
		User       string     `json:"user"`
		Path       string     `json:"path"`
		Taken      bool       `json:"taken"`
		Reason     string     `json:"reason"`
		LastActive *time.Time `json:"last_active"`
		Source     string     `json:"source"`
	} `json:"profiles"`
}

// TestE2EInactiveFor: profiles whose owners have faked last logins of
// different ages in a wtmp file the test writes, one matching
// --exclude-user, and one no record names, whose newest mtime decides.
func TestE2EInactiveFor(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	root := tmpDir(t)
	now := time.Now()
	ago := func(d int) time.Time { return now.Add(-time.Duration(d) * 24 * time.Hour) }
	for _, u := range []string{"alice", "bob", "svc-backup", "carol", "dan"} {
		writeFile(t, filepath.Join(root, "home", u, "notes.txt"), []byte(u+"\n"), 0o644)
	}
	// carol is in no login record; her files are 200 days old. dan's are
	// new, so the mtime fallback keeps him.
	for _, p := range []string{filepath.Join(root, "home", "carol", "notes.txt"), filepath.Join(root, "home", "carol")} {
		lchtimes(t, p, ago(200))
	}
	var wtmp bytes.Buffer
	wtmp.Write(logins.EncodeWtmp(logins.Login{User: "alice", Line: "pts/0", Time: ago(3)}))
	wtmp.Write(logins.EncodeWtmp(logins.Login{User: "bob", Line: "pts/1", Time: ago(400)}))
	wtmp.Write(logins.EncodeWtmp(logins.Login{User: "svc-backup", Line: "pts/1", Time: ago(1)}))
	writeFile(t, filepath.Join(root, "var", "log", "wtmp"), wtmp.Bytes(), 0o644)

	var out profilesOut
	smpJSON(t, exitOK, &out, "capture", "--store", st, "--computer", "pc", "--root", root, "--json",
		"--exclude-user", "svc-*", "--inactive-for", "90d")
	if !slices.Equal(out.Users, []string{"alice", "dan"}) {
		t.Errorf("record users %v, want alice and dan", out.Users)
	}
	want := map[string]struct {
		taken        bool
		source, why  string
		lastActiveAt time.Time
	}{
		"alice":      {true, "var/log/wtmp", "", ago(3)},
		"bob":        {false, "var/log/wtmp", "inactive for 400d", ago(400)},
		"carol":      {false, "mtime", "inactive for 200d", ago(200)},
		"dan":        {true, "mtime", "", time.Time{}},
		"svc-backup": {false, "", `excluded by --exclude-user "svc-*"`, time.Time{}},
	}
	if len(out.Profiles) != len(want) {
		t.Fatalf("profiles %+v", out.Profiles)
	}
	for _, p := range out.Profiles {
		w := want[p.User]
		if p.Taken != w.taken || p.Source != w.source || !strings.Contains(p.Reason, w.why) || p.Path != "home/"+p.User {
			t.Errorf("%s: %+v, want %+v", p.User, p, w)
		}
		if !w.lastActiveAt.IsZero() && (p.LastActive == nil || p.LastActive.Sub(w.lastActiveAt).Abs() > time.Second) {
			t.Errorf("%s: last active %v, want %v", p.User, p.LastActive, w.lastActiveAt)
		}
	}
	got := filePaths(t, st, out.Record, "file")
	if !slices.Equal(got, []string{"home/alice/notes.txt", "home/dan/notes.txt"}) {
		t.Errorf("record files %v", got)
	}
	// The text output says who was left out and which source decided.
	r := mustSMP(t, "capture", "--store", st, "--computer", "pc", "--root", root, "--exclude-user", "svc-*", "--inactive-for", "90d")
	for _, s := range []string{"profile bob (home/bob) left out: inactive for 400d", "from var/log/wtmp", "profile carol (home/carol) left out", "from mtime",
		"profile alice (home/alice) taken: last active"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("text output lacks %q:\n%s", s, r.stdout)
		}
	}
	// Leaving everyone out is an error, not an empty record; a bad
	// pattern or duration is bad usage.
	if r := smp(t, "capture", "--store", st, "--computer", "pc", "--root", root, "--exclude-user", "*"); r.code != exitError || !strings.Contains(r.stderr, "left out") {
		t.Errorf("everyone excluded: %s", r)
	}
	for _, bad := range [][]string{{"--exclude-user", "[a-"}, {"--inactive-for", "soon"}, {"--inactive-for", "0d"}} {
		if r := smp(t, append([]string{"capture", "--store", st, "--computer", "pc", "--root", root}, bad...)...); r.code != exitUsage {
			t.Errorf("%v: %s", bad, r)
		}
	}
}
