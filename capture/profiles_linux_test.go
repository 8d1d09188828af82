package capture

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"smp/capture/logins"
)

func mkProfile(t *testing.T, root, rel string, mtime time.Time) {
	t.Helper()
	dir := filepath.Join(root, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "file")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f, dir} {
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSelectProfilesInactive(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d int) time.Time { return now.Add(-time.Duration(d) * 24 * time.Hour) }
	root := t.TempDir()
	// Every profile's files are new: only the login records make one old.
	for _, u := range []string{"home/alice", "home/bob", "home/carol", "home/dave", "home/svc-backup", "root"} {
		mkProfile(t, root, u, ago(1))
	}
	var wtmp bytes.Buffer
	wtmp.Write(logins.EncodeWtmp(logins.Login{User: "alice", Line: "pts/0", Time: ago(2)}))
	wtmp.Write(logins.EncodeWtmp(logins.Login{User: "bob", Line: "pts/1", Time: ago(400)}))
	wtmp.Write(logins.EncodeWtmp(logins.Login{User: "root", Line: "tty1", Time: ago(100)}))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(logins.EncodeWtmp(logins.Login{User: "carol", Line: "pts/2", Time: ago(10)}))
	zw.Write(logins.EncodeWtmp(logins.Login{User: "bob", Line: "pts/2", Time: ago(500)})) // older than wtmp's
	zw.Close()
	// lastlog: the profiles' owner (this test's UID) last logged in 300
	// days ago; that is what dave, whom wtmp does not name, gets.
	uid := uint32(os.Getuid())
	ll := make([]byte, (int(uid)+1)*logins.LastlogSize)
	copy(ll[int(uid)*logins.LastlogSize:], logins.EncodeLastlog(ago(300), "pts/9"))
	for name, b := range map[string][]byte{"wtmp": wtmp.Bytes(), "wtmp.1.gz": gz.Bytes(), "lastlog": ll} {
		if err := os.MkdirAll(filepath.Join(root, "var", "log"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "var", "log", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := SelectProfiles(ProfileOptions{Root: root, ExcludeUsers: []string{"svc-*"}, InactiveFor: 90 * 24 * time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		taken  bool
		source string
		last   time.Time
	}{
		"alice":      {true, "var/log/wtmp", ago(2)},
		"bob":        {false, "var/log/lastlog", ago(300)}, // lastlog's login is newer than wtmp's
		"carol":      {true, "var/log/wtmp.1.gz", ago(10)},
		"dave":       {false, "var/log/lastlog", ago(300)},
		"svc-backup": {false, "", time.Time{}},
		"root":       {false, "var/log/wtmp", ago(100)},
	}
	if len(got) != len(want) {
		t.Fatalf("choices %+v", got)
	}
	for _, c := range got {
		w := want[c.User]
		var last time.Time
		if c.LastActive != nil {
			last = *c.LastActive
		}
		if c.Taken != w.taken || c.Source != w.source || !last.Equal(w.last) || c.Taken == (c.Reason != "") {
			t.Errorf("%s: %+v (last %v), want %+v", c.User, c, last, w)
		}
	}
	if got[len(got)-1].User != "root" || got[len(got)-1].Path != "root" {
		t.Errorf("root's profile comes last: %+v", got)
	}
}

// TestSelectProfilesMTimeFallback: with no login records, a profile's
// newest mtime decides, and the choice says so.
func TestSelectProfilesMTimeFallback(t *testing.T) {
	now := time.Now()
	root := t.TempDir()
	mkProfile(t, root, "home/erin", now.Add(-3*24*time.Hour))
	mkProfile(t, root, "home/frank", now.Add(-200*24*time.Hour))
	// A symlinked log directory is not followed.
	if err := os.MkdirAll(filepath.Join(root, "var"), 0o755); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	os.WriteFile(filepath.Join(elsewhere, "wtmp"), logins.EncodeWtmp(logins.Login{User: "frank", Line: "x", Time: now}), 0o644)
	if err := os.Symlink(elsewhere, filepath.Join(root, "var", "log")); err != nil {
		t.Fatal(err)
	}
	got, err := SelectProfiles(ProfileOptions{Root: root, Users: []string{"erin", "frank"}, InactiveFor: 30 * 24 * time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Taken || got[0].Source != "mtime" || got[1].Taken || got[1].Source != "mtime" {
		t.Fatalf("choices %+v", got)
	}
	if _, err := SelectProfiles(ProfileOptions{Root: root, Users: []string{"ghost"}}); err == nil {
		t.Fatal("a user without a profile was selected")
	}
}
