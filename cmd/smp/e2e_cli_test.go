package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EInitStoreSchemeUnknown: a --store (or $SMP_STORE) naming a URL
// scheme smp does not speak is refused by every command with one line,
// and nothing is created (before, "smp init --store s3://host/bucket"
// made a directory "s3:" and reported success).
func TestE2EInitStoreSchemeUnknown(t *testing.T) {
	t.Parallel()
	cwd := tmpDir(t)
	src := tmpDir(t)
	mkdirs(t, filepath.Join(src, "home", "alice"))
	commands := [][]string{
		{"init"},
		{"capture", "--computer", "PC01", "--root", src},
		{"restore", "--computer", "PC01", "--root", tmpDir(t)},
		{"records"},
		{"files", "--record", "abcd"},
		{"stats"},
		{"release", "--record", "abcd"},
		{"rm", "--record", "abcd"},
		{"gc"},
		{"verify"},
		{"index", "rebuild"},
		{"ingest", "--record", "abcd"},
		{"serve", "--insecure", "--listen", "127.0.0.1:0"},
		{"token", "list"},
		{"associate", "--list"},
		{"admin", "restore-only"},
		{"admin", "limits"},
	}
	for _, store := range []string{"file:///srv/smp", "sftp://host/x", "ftp://h/x", "https://127.0.0.1:1,s3://host/bucket"} {
		for _, c := range commands {
			args := append(append([]string{}, c...), "--store", store)
			r := smpWith(t, runOpts{dir: cwd}, args...)
			lines := r.stderrLines()
			if r.code != exitUsage || len(lines) != 1 || !strings.Contains(lines[0], "does not know the scheme") || r.stdout != "" {
				t.Errorf("--store %s: want exit 2 and one line naming the scheme\n%s", store, r)
			}
		}
		// $SMP_STORE is checked the same way.
		r := smpWith(t, runOpts{dir: cwd, env: []string{"SMP_STORE=" + store}}, "init")
		if r.code != exitUsage || !strings.Contains(r.stderr, "does not know the scheme") {
			t.Errorf("SMP_STORE=%s: want exit 2\n%s", store, r)
		}
	}
	// A bucket whose endpoint name does not resolve fails at once, in one
	// line (no retries: no retry mends a name that does not exist).
	for _, c := range [][]string{{"key", "list"}} {
		r := smpWith(t, runOpts{dir: cwd}, append(append([]string{}, c...), "--store", "s3://nosuchhost.invalid/bucket")...)
		lines := r.stderrLines()
		if r.code != 1 || len(lines) != 1 || !strings.Contains(lines[0], "nosuchhost.invalid") || strings.Contains(r.stderr, "retries") {
			t.Errorf("%s --store s3://nosuchhost.invalid/...: want exit 1 and one line naming the host\n%s", c[0], r)
		}
	}
	// Commands that work on a store directory refuse an SMP URL instead
	// of taking it for a relative path ("https:/host").
	for _, c := range [][]string{{"init"}, {"verify"}, {"index", "rebuild"}, {"ingest", "--record", "abcd"},
		{"serve", "--insecure", "--listen", "127.0.0.1:0"}, {"token", "list"}, {"associate", "--list"}, {"admin", "restore-only"}, {"admin", "limits"}} {
		r := smpWith(t, runOpts{dir: cwd}, append(append([]string{}, c...), "--store", "https://127.0.0.1:1")...)
		lines := r.stderrLines()
		if r.code != exitUsage || len(lines) != 1 || !strings.Contains(lines[0], "names an SMP server") {
			t.Errorf("%s --store https://...: want exit 2 and one line\n%s", c[0], r)
		}
	}
	if ents, err := os.ReadDir(cwd); err != nil || len(ents) != 0 {
		t.Errorf("refused commands created %v in the working directory (%v)", ents, err)
	}
	// The schemes smp speaks, and plain directories (even with a colon), still work.
	r := smpWith(t, runOpts{dir: cwd}, "records", "--store", "https://127.0.0.1:1", "--token", "x")
	if r.code != exitError || strings.Contains(r.stderr, "scheme") {
		t.Errorf("https:// store: want a connection error, not a scheme refusal\n%s", r)
	}
	r = smpWith(t, runOpts{dir: cwd}, "init", "--store", "store:1")
	if r.code != exitOK {
		t.Errorf("a directory named store:1: want exit 0\n%s", r)
	}
}

// TestE2EProgressPlainStderr: problem lines on a stderr that is not a
// terminal are plain lines, without the carriage return and erase
// sequence that keep them apart from the progress bar on a terminal.
func TestE2EProgressPlainStderr(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	src := tmpDir(t)
	home := filepath.Join(src, "home", "alice")
	writeFile(t, filepath.Join(home, "a.txt"), []byte("captured\n"), 0o644)
	writeFile(t, filepath.Join(home, "b.txt"), []byte("captured too\n"), 0o644)
	r := mustSMP(t, "capture", "--store", store, "--computer", "PC01", "--root", src)
	if strings.ContainsAny(r.stderr+r.stdout, "\r\x1b") {
		t.Errorf("capture wrote terminal control characters to a pipe:\n%q", r.stderr)
	}
	dst := tmpDir(t)
	writeFile(t, filepath.Join(dst, "home", "alice", "a.txt"), []byte("already here\n"), 0o644)
	r = smp(t, "restore", "--store", store, "--computer", "PC01", "--root", dst)
	if r.code != exitPartial {
		t.Fatalf("a restore that left a file alone: want exit 3\n%s", r)
	}
	if !strings.Contains(r.stderr, "skipped: "+filepath.Join(dst, "home", "alice", "a.txt")) {
		t.Fatalf("the existing file is not reported:\n%s", r)
	}
	if strings.ContainsAny(r.stderr, "\r\x1b") {
		t.Errorf("restore wrote terminal control characters to a pipe:\n%q", r.stderr)
	}
	for _, l := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
		if !strings.HasPrefix(l, "skipped: ") && !strings.HasPrefix(l, "smp restore: 1 path(s) left alone") {
			t.Errorf("stderr line %q: want plain problem lines and the exit-3 summary only", l)
		}
	}
}

// TestE2ETokenFile: the token is read from --token-file (one trailing
// newline dropped; a file other users may read is refused, a pipe is
// fine) or $SMP_TOKEN, and one given on the command line, where every
// local user can read it, draws a one-line warning.
func TestE2ETokenFile(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	srv := startServer(t, store)
	tok := newToken(t, store, "--computer", "PC01")
	dir := tmpDir(t)
	file := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, []byte(content), mode)
		if err := os.Chmod(p, mode); err != nil { // writeFile's mode is filtered by the umask
			t.Fatal(err)
		}
		return p
	}
	good := file("token", tok+"\n", 0o600)
	src := tmpDir(t)
	serveProfile(t, src, 7, 1)

	ok := func(name string, o runOpts, args ...string) result {
		t.Helper()
		r := smpWith(t, o, args...)
		if r.code != exitOK || strings.Contains(r.stderr, "warning") {
			t.Errorf("%s: want exit 0 without a warning\n%s", name, r)
		}
		return r
	}
	ok("capture with --token-file", runOpts{}, "capture", "--store", srv.url, "--token-file", good, "--computer", "PC01", "--root", src)
	ok("CRLF file", runOpts{}, "records", "--store", srv.url, "--token-file", file("crlf", tok+"\r\n", 0o400))
	ok("no newline", runOpts{}, "records", "--store", srv.url, "--token-file", file("bare", tok, 0o600))
	ok("pipe", runOpts{stdin: tok + "\n"}, "records", "--store", srv.url, "--token-file", "/dev/stdin")
	ok("SMP_TOKEN", runOpts{env: []string{"SMP_TOKEN=" + tok}}, "records", "--store", srv.url)
	// --help prints flag defaults: the secret of $SMP_TOKEN must not be one.
	for _, cmd := range []string{"records", "capture", "restore", "files", "rm", "release", "gc", "stats"} {
		h := smpWith(t, runOpts{env: []string{"SMP_TOKEN=" + tok}}, cmd, "--help")
		if strings.Contains(h.stdout+h.stderr, tok) {
			t.Errorf("smp %s --help prints the token of $SMP_TOKEN:\n%s", cmd, h)
		}
	}
	ok("--token-file over SMP_TOKEN", runOpts{env: []string{"SMP_TOKEN=smp_wrong"}}, "records", "--store", srv.url, "--token-file", good)

	// On the command line: it works, with one warning line.
	r := smp(t, "records", "--store", srv.url, "--token", tok)
	if r.code != exitOK || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, tokenWarning) || !strings.Contains(r.stderr, "--token-file") {
		t.Errorf("--token on the command line: want exit 0 and one warning line\n%s", r)
	}

	bad := []struct {
		name string
		o    runOpts
		args []string
		want string
	}{
		{"group-readable", runOpts{}, []string{"--token-file", file("g", tok+"\n", 0o640)}, "chmod 600"},
		{"world-readable", runOpts{}, []string{"--token-file", file("o", tok+"\n", 0o604)}, "chmod 600"},
		{"group-writable", runOpts{}, []string{"--token-file", file("w", tok+"\n", 0o620)}, "chmod 600"},
		{"missing", runOpts{}, []string{"--token-file", filepath.Join(dir, "nope")}, "no such file"},
		{"directory", runOpts{}, []string{"--token-file", dir}, "is a directory"},
		{"empty", runOpts{}, []string{"--token-file", file("empty", "\n", 0o600)}, "is empty"},
		{"two lines", runOpts{}, []string{"--token-file", file("two", tok+"\n"+tok+"\n", 0o600)}, "more than one line"},
		{"both", runOpts{}, []string{"--token-file", good, "--token", tok}, "not both"},
	}
	for _, c := range bad {
		r := smpWith(t, c.o, append([]string{"records", "--store", srv.url}, c.args...)...)
		lines := r.stderrLines()
		if r.code != exitUsage || len(lines) != 1 || !strings.Contains(lines[0], c.want) {
			t.Errorf("%s: want exit 2 and one line with %q\n%s", c.name, c.want, r)
		}
	}
	// The secret never reaches the output, even in a refusal.
	r = smp(t, "records", "--store", srv.url, "--token-file", file("leak", tok+"\n", 0o644))
	if strings.Contains(r.stderr+r.stdout, tok) {
		t.Errorf("the refusal shows the token\n%s", r)
	}
}
