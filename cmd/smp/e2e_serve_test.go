package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testServer is a running `smp serve`.
type testServer struct {
	url, fingerprint string
	cmd              *exec.Cmd
	mu               sync.Mutex
	log              bytes.Buffer // the request log (stderr)
	out              []string     // stdout lines
	stopped          bool
}

func (s *testServer) stdout() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.out, "\n")
}

func (s *testServer) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// logMatches waits up to 10 s for the request log to match re: the
// server writes a request's line after the response has gone out, and
// the log reaches the test through a pipe, so a client can finish first.
func (s *testServer) logMatches(re *regexp.Regexp) bool {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if re.MatchString(s.logText()) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

type lockedWriter struct{ s *testServer }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.log.Write(b)
}

// startServer runs smp serve on a free loopback port and stops it with
// SIGTERM when the test ends, requiring a clean exit.
func startServer(t testing.TB, store string, args ...string) *testServer {
	t.Helper()
	s := launchServer(t, store, args...)
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop sends SIGTERM and requires a clean exit within 90 s.
func (s *testServer) stop(t testing.TB) {
	if s.stopped {
		return
	}
	s.stopped = true
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("smp serve did not stop cleanly on SIGTERM: %v\n%s", err, s.logText())
		}
	case <-time.After(90 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Errorf("smp serve did not stop within 90 s of SIGTERM")
	}
	if strings.Contains(s.logText(), "WARNING: DATA RACE") {
		t.Errorf("data race in smp serve:\n%s", s.logText())
	}
}

// launchServer starts smp serve; the caller stops it.
func launchServer(t testing.TB, store string, args ...string) *testServer {
	t.Helper()
	if len(args) == 0 {
		args = []string{"--insecure"}
	}
	s := &testServer{}
	s.cmd = exec.Command(smpPath(t), append([]string{"serve", "--store", store, "--listen", "127.0.0.1:0"}, args...)...)
	s.cmd.Env = childEnv(t)
	s.cmd.Stderr = lockedWriter{s}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(30 * time.Second)
	for s.url == "" {
		select {
		case l, ok := <-lines:
			if ok {
				s.mu.Lock()
				s.out = append(s.out, l)
				s.mu.Unlock()
			}
			if !ok {
				_ = s.cmd.Wait()
				t.Fatalf("smp serve exited before listening:\n%s", s.logText())
			}
			if fp, ok := strings.CutPrefix(l, "tls fingerprint "); ok {
				s.fingerprint = fp
			}
			if i := strings.Index(l, "listening on "); i >= 0 {
				s.url = l[i+len("listening on "):]
			}
		case <-deadline:
			_ = s.cmd.Process.Kill()
			t.Fatalf("smp serve did not start:\n%s", s.logText())
		}
	}
	go func() {
		for l := range lines {
			s.mu.Lock()
			s.out = append(s.out, l)
			s.mu.Unlock()
		}
	}()
	return s
}

// newToken creates a token and returns its secret.
func newToken(t testing.TB, store string, args ...string) string {
	t.Helper()
	r := mustSMP(t, append([]string{"token", "create", "--store", store}, args...)...)
	secret := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(secret, "smp_") {
		t.Fatalf("token create printed %q", r.stdout)
	}
	return secret
}

// remoteCaptureOut adds the remote fields of capture --json.
type remoteCaptureOut struct {
	captureOut
	Uploaded int64 `json:"uploaded_bytes"`
	Held     int64 `json:"chunks_already_on_smp"`
}

func remoteCapture(t *testing.T, want int, url, token, computer string, args ...string) remoteCaptureOut {
	t.Helper()
	var out remoteCaptureOut
	smpJSON(t, want, &out, append([]string{"capture", "--store", url, "--token", token, "--computer", computer, "--json"}, args...)...)
	return out
}

// profileTree writes a small profile: incompressible files, source text,
// a symlink, nested directories.
func serveProfile(t testing.TB, root string, seed uint64, mib int) {
	t.Helper()
	home := filepath.Join(root, "home", "alice")
	mkdirs(t, filepath.Join(home, "docs", "deep", "er"), filepath.Join(home, ".config"))
	for i := range mib {
		writeFile(t, filepath.Join(home, "docs", "blob"+strconv.Itoa(i)), rnd(seed+uint64(i), 1<<20), 0o644)
	}
	writeFile(t, filepath.Join(home, "docs", "deep", "er", "main.go"), goSource(t, 3000), 0o600)
	writeFile(t, filepath.Join(home, ".config", "settings.ini"), []byte("[ui]\ntheme=dark\n"), 0o644)
	writeFile(t, filepath.Join(home, "empty"), nil, 0o644)
	if err := os.Symlink("docs/deep", filepath.Join(home, "link")); err != nil {
		t.Fatal(err)
	}
	stampTimes(t, root)
}

func TestE2EServeCaptureRestoreTLS(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	srv := startServer(t, store, "--tls-self-signed")
	if !strings.HasPrefix(srv.url, "https://") || len(srv.fingerprint) != 64 {
		t.Fatalf("serve printed url %q fingerprint %q", srv.url, srv.fingerprint)
	}
	tok := newToken(t, store, "--computer", "PC01")
	src := tmpDir(t)
	serveProfile(t, src, 1, 3)
	fp := "--tls-fingerprint=" + srv.fingerprint

	out := remoteCapture(t, exitOK, srv.url, tok, "PC01", "--root", src, fp)
	if out.Files != 6 || out.Uploaded < 3<<20 {
		t.Fatalf("capture: %+v", out)
	}
	dst := tmpDir(t)
	res, _ := restoreJSON(t, exitOK, srv.url, "--token", tok, fp, "--computer", "PC01", "--root", dst)
	if res.Errors != 0 || res.Files != 6 {
		t.Fatalf("restore: %+v", res)
	}
	compareTrees(t, src, dst, compareOpts{})

	// The same commands list and inspect records remotely.
	var recs recordsOut
	smpJSON(t, exitOK, &recs, "records", "--store", srv.url, "--token", tok, fp, "--json")
	if got := recs.ids(); len(got) != 1 || got[0] != out.Record {
		t.Fatalf("records: %v, want [%s]", got, out.Record)
	}
	var files filesOut
	smpJSON(t, exitOK, &files, "files", "--store", srv.url, "--token", tok, fp, "--record", out.Record[:12], "--json")
	if len(files.Files) != 13 {
		t.Fatalf("files lists %d entries, want 13", len(files.Files))
	}

	// A wrong pin is refused before any data moves.
	bad := strings.Repeat("ab", 32)
	r := smp(t, "records", "--store", srv.url, "--token", tok, "--tls-fingerprint", bad)
	if r.code != exitError || !strings.Contains(r.stderr, "does not match --tls-fingerprint") {
		t.Fatalf("wrong fingerprint: %s", r)
	}
	// The certificate is kept: a restart serves the same fingerprint. Its
	// private key is sealed by the store's master key (the store is
	// encrypted by default), never kept in clear.
	if _, err := os.Stat(filepath.Join(store, "tls", "key.sealed")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(store, "tls", "key.pem")); !os.IsNotExist(err) {
		t.Errorf("an encrypted store keeps its TLS key in clear (%v)", err)
	}
}

func TestE2EServeSecondComputerSendsOnlyNewData(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	srv := startServer(t, store)
	tok1 := newToken(t, store, "--computer", "PC01")
	tok2 := newToken(t, store, "--computer", "PC02")
	src1, src2 := tmpDir(t), tmpDir(t)
	serveProfile(t, src1, 7, 8)
	if out, err := exec.Command("cp", "-a", src1+"/.", src2).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	// PC02 also has one file of its own.
	writeFile(t, filepath.Join(src2, "home", "alice", "mine"), rnd(99, 1<<20), 0o644)

	first := remoteCapture(t, exitOK, srv.url, tok1, "PC01", "--root", src1)
	second := remoteCapture(t, exitOK, srv.url, tok2, "PC02", "--root", src2)
	if first.Uploaded < 8<<20 {
		t.Fatalf("first capture sent %d bytes, want the whole 8 MiB", first.Uploaded)
	}
	// Only PC02's own 1 MiB and its trees cross the wire.
	if second.Uploaded > 1<<20+64<<10 || second.Held < 8 {
		t.Fatalf("second computer sent %d bytes (SMP held %d chunks); want about 1 MiB", second.Uploaded, second.Held)
	}
	dst := tmpDir(t)
	restoreJSON(t, exitOK, srv.url, "--token", tok2, "--computer", "PC02", "--root", dst)
	compareTrees(t, src2, dst, compareOpts{})
}

func TestE2EServeAccessControl(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	srv := startServer(t, store)
	tok1 := newToken(t, store, "--computer", "PC01")
	tok2 := newToken(t, store, "--computer", "PC02")
	src := tmpDir(t)
	serveProfile(t, src, 3, 1)
	out := remoteCapture(t, exitOK, srv.url, tok1, "PC01", "--root", src)

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing token", []string{"records", "--store", srv.url, "--token", ""}, "no token"},
		{"wrong token", []string{"records", "--store", srv.url, "--token", "smp_nottherightone"}, "unknown token"},
		{"capture as another computer", []string{"capture", "--store", srv.url, "--token", tok2, "--computer", "PC01", "--root", src}, "may not capture as"},
		// Another computer's records are answered like missing ones.
		{"restore another computer's record", []string{"restore", "--store", srv.url, "--token", tok2, "--record", out.Record, "--root", tmpDir(t)}, "no such record among those this token may restore"},
		{"restore another computer's newest", []string{"restore", "--store", srv.url, "--token", tok2, "--computer", "PC01", "--root", tmpDir(t)}, "no record of that computer that this token may restore"},
		{"remove without admin", []string{"rm", "--store", srv.url, "--token", tok1, "--record", out.Record}, "needs an admin token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := smp(t, c.args...)
			if r.code != exitError || !strings.Contains(r.stderr, c.want) || len(r.stderrLines()) != 1 {
				t.Fatalf("want exit 1 and one line with %q\n%s", c.want, r)
			}
		})
	}
	// PC02 sees none of PC01's records.
	var recs recordsOut
	smpJSON(t, exitOK, &recs, "records", "--store", srv.url, "--token", tok2, "--json")
	if len(recs.Records) != 0 {
		t.Fatalf("PC02 lists %v", recs.ids())
	}
	// A replace migration: associate, then PC02 restores PC01's record.
	mustSMP(t, "associate", "--store", store, "--source", "PC01", "--dest", "PC02")
	time.Sleep(250 * time.Millisecond) // the server re-reads the access file at most every 200 ms
	dst := tmpDir(t)
	restoreJSON(t, exitOK, srv.url, "--token", tok2, "--computer", "PC01", "--root", dst)
	compareTrees(t, src, dst, compareOpts{})
	// Revoked at run time: refused on the next request.
	var list struct {
		Tokens []struct {
			ID       string `json:"id"`
			Computer string `json:"computer"`
		} `json:"tokens"`
	}
	smpJSON(t, exitOK, &list, "token", "list", "--store", store, "--json")
	for _, tk := range list.Tokens {
		if tk.Computer == "PC02" {
			mustSMP(t, "token", "revoke", "--store", store, "--id", tk.ID)
		}
	}
	time.Sleep(250 * time.Millisecond) // the server re-reads the access file at most every 200 ms
	r := smp(t, "records", "--store", srv.url, "--token", tok2)
	if r.code != exitError || !strings.Contains(r.stderr, "token revoked") {
		t.Fatalf("revoked token: %s", r)
	}
}

func TestE2EServeRestoreOnlyAndFallback(t *testing.T) {
	t.Parallel()
	storeA, storeB := newStore(t), newStore(t)
	srvA := startServer(t, storeA, "--insecure", "--restore-only")
	srvB := startServer(t, storeB)
	tokA := newToken(t, storeA, "--computer", "PC01")
	tokB := newToken(t, storeB, "--computer", "PC01")
	src := tmpDir(t)
	serveProfile(t, src, 5, 1)
	r := smp(t, "capture", "--store", srvA.url, "--token", tokA, "--computer", "PC01", "--root", src)
	if r.code != exitError || !strings.Contains(r.stderr, "restore-only mode") {
		t.Fatalf("restore-only: %s", r)
	}
	// SCCM-style fallback: the restore-only SMP refuses for capacity, the
	// unreachable one cannot be dialled; the capture lands on the last.
	dead := "http://127.0.0.1:1"
	stores := strings.Join([]string{srvA.url, dead, srvB.url}, ",")
	r = smp(t, "capture", "--store", stores, "--token", strings.Join([]string{tokA, "x", tokB}, ","), "--computer", "PC01", "--root", src)
	if r.code != exitOK || strings.Count(r.stderr, "trying the next SMP") != 2 {
		t.Fatalf("fallback: %s", r)
	}
	// Restores still work in restore-only mode; the switch is also an
	// admin command read at run time.
	mustSMP(t, "admin", "restore-only", "on", "--store", storeB)
	time.Sleep(250 * time.Millisecond)
	r = smp(t, "capture", "--store", srvB.url, "--token", tokB, "--computer", "PC01", "--root", src)
	if r.code != exitError || !strings.Contains(r.stderr, "restore-only mode") {
		t.Fatalf("restore-only at run time: %s", r)
	}
	dst := tmpDir(t)
	restoreJSON(t, exitOK, srvB.url, "--token", tokB, "--computer", "PC01", "--root", dst)
	compareTrees(t, src, dst, compareOpts{})
	// Bad lists are usage errors.
	r = smp(t, "records", "--store", stores, "--token", "a,b")
	if r.code != exitUsage {
		t.Fatalf("token count mismatch: %s", r)
	}
}

func TestE2EServeResumesInterruptedCapture(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	srv := startServer(t, store)
	tok := newToken(t, store, "--computer", "PC01")
	src := tmpDir(t)
	const mib = 48
	serveProfile(t, src, 11, mib)

	cmd := exec.Command(smpPath(t), "capture", "--store", srv.url, "--token", tok, "--computer", "PC01", "--root", src, "--json")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill the client as soon as the SMP acknowledged its first batch.
	acked := regexp.MustCompile(`path=/v1/captures/[0-9a-f]+/blobs status=200 .*bytes_in=(\d+)`)
	deadline := time.Now().Add(time.Minute)
	for !acked.MatchString(srv.logText()) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no batch acknowledged within a minute:\n%s", srv.logText())
		}
		time.Sleep(2 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	time.Sleep(200 * time.Millisecond) // let requests cut by the kill finish on the server
	var before int64
	for _, m := range acked.FindAllStringSubmatch(srv.logText(), -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		before += n
	}
	if strings.Contains(srv.logText(), "/commit") {
		t.Skip("the capture committed before it could be killed; machine too fast for this test")
	}
	out := remoteCapture(t, exitOK, srv.url, tok, "PC01", "--root", src)
	total := int64(mib<<20) + 64<<10
	if out.Uploaded > total-before+64<<10 || out.Held == 0 {
		t.Fatalf("re-run sent %d bytes after %d were acknowledged of about %d; SMP held %d chunks", out.Uploaded, before, total, out.Held)
	}
	dst := tmpDir(t)
	restoreJSON(t, exitOK, srv.url, "--token", tok, "--computer", "PC01", "--root", dst)
	compareTrees(t, src, dst, compareOpts{})
}

func TestE2EServeUsage(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--store", store, "--insecure", "--listen", "0.0.0.0:0"}, "loopback"},
		{[]string{"serve", "--store", store, "--listen", "127.0.0.1:0"}, "exactly one of"},
		{[]string{"serve", "--store", store, "--tls-cert", "x.pem", "--listen", "127.0.0.1:0"}, "go together"},
		{[]string{"serve", "--store", store, "--insecure", "--listen", "127.0.0.1:0", "--retention", "7d"}, "needs --gc-every"},
		{[]string{"serve", "--store", store, "--insecure", "--listen", "127.0.0.1:0", "--min-free", "lots"}, "want a size"},
		{[]string{"capture", "--store", "https://127.0.0.1:1", "--token", "x", "--computer", "PC01", "--hardlink", "always", "--root", store}, "needs a local store"},
	}
	for _, c := range cases {
		r := smp(t, c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("want exit 2 with %q\n%s", c.want, r)
		}
	}
	// An SMP that cannot be reached is a clear one-line error.
	r := smp(t, "records", "--store", "http://127.0.0.1:1", "--token", "x")
	if r.code != exitError || !strings.Contains(r.stderr, "connection refused") {
		t.Errorf("unreachable SMP: %s", r)
	}
}

func TestE2EServeConcurrentClients(t *testing.T) {
	t.Parallel()
	const clients, trees = 16, 4
	store := newStore(t)
	// The reference store below chunks as the served one does: a copy of
	// it while still empty, with its keys (an encrypted store's gear
	// table is keyed, so another store cuts other chunks).
	ref := filepath.Join(tmpDir(t), "ref")
	if out, err := exec.Command("cp", "-a", store, ref).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	srv := startServer(t, store)
	admin := newToken(t, store, "--role", "admin")
	// Four profiles sharing an org-wide file; each is captured by four
	// computers at once.
	srcs := make([]string, trees)
	org := rnd(500, 3<<20)
	for i := range srcs {
		srcs[i] = tmpDir(t)
		serveProfile(t, srcs[i], uint64(1000*(i+1)), 2)
		writeFile(t, filepath.Join(srcs[i], "home", "alice", "org.bin"), org, 0o644)
		stampTimes(t, srcs[i])
	}
	tokens := make([]string, clients)
	for i := range tokens {
		tokens[i] = newToken(t, store, "--computer", "pc"+strconv.Itoa(i))
	}
	var wg sync.WaitGroup
	outs := make([]remoteCaptureOut, clients)
	for i := range clients {
		wg.Go(func() {
			outs[i] = remoteCapture(t, exitOK, srv.url, tokens[i], "pc"+strconv.Itoa(i), "--root", srcs[i%trees])
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i := range clients {
		dst := tmpDir(t)
		res, _ := restoreJSON(t, exitOK, srv.url, "--token", admin, "--record", outs[i].Record, "--root", dst, "--keep")
		if res.Errors != 0 {
			t.Fatalf("restore of pc%d: %+v", i, res)
		}
		compareTrees(t, srcs[i%trees], dst, compareOpts{})
	}
	// Every shared chunk is stored once: the same chunk set as one local
	// capture of each distinct profile.
	for i := range srcs {
		doCapture(t, exitOK, ref, "ref"+strconv.Itoa(i), "--root", srcs[i])
	}
	want := stats(t, ref)
	var got statsOut
	smpJSON(t, exitOK, &got, "stats", "--store", srv.url, "--token", admin, "--json")
	if got.Chunks != want.Chunks || got.UniqueBytes != want.UniqueBytes || got.Records != clients {
		t.Fatalf("served store: %d records, %d chunks, %d unique bytes; want %d, %d, %d", got.Records, got.Chunks, got.UniqueBytes, clients, want.Chunks, want.UniqueBytes)
	}
	// A client token may not read store-wide statistics.
	r := smp(t, "stats", "--store", srv.url, "--token", tokens[0])
	if r.code != exitError || !strings.Contains(r.stderr, "admin token") {
		t.Fatalf("client stats: %s", r)
	}
}

func TestE2EServeAdminLimitsAndGC(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	srv := startServer(t, store, "--insecure", "--max-records", "2", "--quota", "3MiB", "--metrics-listen", "127.0.0.1:0")
	admin := newToken(t, store, "--role", "admin")
	tok := newToken(t, store, "--computer", "PC01")
	src := tmpDir(t)
	serveProfile(t, src, 21, 2)
	first := remoteCapture(t, exitOK, srv.url, tok, "PC01", "--root", src)

	// A capture crossing the computer's quota mid-way stops cleanly.
	writeFile(t, filepath.Join(src, "home", "alice", "big"), rnd(22, 2<<20), 0o644)
	r := smp(t, "capture", "--store", srv.url, "--token", tok, "--computer", "PC01", "--root", src)
	if r.code != exitError || !strings.Contains(r.stderr, "over its quota of 3.0 MiB") {
		t.Fatalf("quota: %s", r)
	}
	// The second record fits (the big file is gone again); a third is
	// refused by --max-records before anything is uploaded.
	os.Remove(filepath.Join(src, "home", "alice", "big"))
	remoteCapture(t, exitOK, srv.url, tok, "PC01", "--root", src)
	r = smp(t, "capture", "--store", srv.url, "--token", tok, "--computer", "PC01", "--root", src)
	if r.code != exitError || !strings.Contains(r.stderr, "--max-records 2") {
		t.Fatalf("max records: %s", r)
	}
	// gc through the server, with retention: release, then expire at once.
	// A link set no record names (a hard-link capture killed before the
	// server started) goes too, as with smp gc on the directory.
	mustSMP(t, "release", "--store", srv.url, "--token", tok, "--record", first.Record)
	orphan := filepath.Join(store, "links", "20260101T000000Z-0000000000000000")
	if err := os.MkdirAll(filepath.Join(orphan, "0"), 0o700); err != nil {
		t.Fatal(err)
	}
	var gc struct {
		Expired      []string `json:"expired_records"`
		Orphans      []string `json:"orphan_link_sets"`
		BlobsRemoved int      `json:"blobs_removed"`
	}
	smpJSON(t, exitOK, &gc, "gc", "--store", srv.url, "--token", admin, "--retention", "0s", "--grace", "0", "--json")
	if len(gc.Expired) != 1 || gc.Expired[0] != first.Record {
		t.Fatalf("gc expired %v, want [%s]", gc.Expired, first.Record)
	}
	if len(gc.Orphans) != 1 || gc.Orphans[0] != filepath.Base(orphan) {
		t.Fatalf("gc orphan link sets %v", gc.Orphans)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("orphan link set still there after gc through the SMP: %v", err)
	}
	r = smp(t, "gc", "--store", srv.url, "--token", tok)
	if r.code != exitError || !strings.Contains(r.stderr, "admin token") {
		t.Fatalf("gc by a client: %s", r)
	}
	// Metrics, without a token on the separate listener.
	m := regexp.MustCompile(`metrics on (http://\S+)`).FindStringSubmatch(srv.stdout())
	if m == nil {
		t.Fatalf("no metrics address printed")
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`smp_captures_total{result="committed"} 2`, `smp_capture_refusals_total{reason="quota"} 1`, `smp_capture_refusals_total{reason="max_records"} 1`, `smp_gc_runs_total{result="ok"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestE2EStatsExpired(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	src := tmpDir(t)
	serveProfile(t, src, 31, 1)
	a := doCapture(t, exitOK, store, "PC01", "--root", src)
	doCapture(t, exitOK, store, "PC02", "--root", src)
	mustSMP(t, "release", "--store", store, "--record", a.Record)
	var st struct {
		Records  int    `json:"records"`
		Captured int    `json:"captured"`
		Released int    `json:"released"`
		Expired  *int   `json:"expired"`
		Free     uint64 `json:"free_bytes"`
	}
	smpJSON(t, exitOK, &st, "stats", "--store", store, "--retention", "0s", "--json")
	if st.Records != 2 || st.Captured != 1 || st.Released != 1 || st.Expired == nil || *st.Expired != 1 || st.Free == 0 {
		t.Fatalf("stats: %+v", st)
	}
	// Through a server, with an admin token, the same figures.
	srv := startServer(t, store)
	admin := newToken(t, store, "--role", "admin")
	st.Expired = nil
	smpJSON(t, exitOK, &st, "stats", "--store", srv.url, "--token", admin, "--retention", "30d", "--json")
	if st.Records != 2 || st.Released != 1 || st.Expired == nil || *st.Expired != 0 {
		t.Fatalf("remote stats: %+v", st)
	}
}

// TestE2EServeRestoreBatchesFetches: restoring many small files through an
// SMP costs batches of round trips, not one per file.
func TestE2EServeRestoreBatchesFetches(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	srv := startServer(t, store)
	tok := newToken(t, store, "--computer", "PC01")
	src := tmpDir(t)
	const files = 400
	for i := range files {
		writeFile(t, filepath.Join(src, "home", "alice", "d"+strconv.Itoa(i%4), "f"+strconv.Itoa(i)), rnd(uint64(7000+i), 3000+i), 0o644)
	}
	stampTimes(t, src)
	remoteCapture(t, exitOK, srv.url, tok, "PC01", "--root", src)
	before := strings.Count(srv.logText(), "/fetch ")
	dst := tmpDir(t)
	res, _ := restoreJSON(t, exitOK, srv.url, "--token", tok, "--computer", "PC01", "--root", dst)
	if res.Files != files {
		t.Fatalf("restored %d files, want %d", res.Files, files)
	}
	compareTrees(t, src, dst, compareOpts{})
	requests := strings.Count(srv.logText(), "/fetch ") - before
	if requests > files/5 {
		t.Fatalf("%d fetch requests for %d files: chunks are not fetched in batches", requests, files)
	}
	t.Logf("%d files restored with %d fetch requests", files, requests)
}

// TestE2EServeSlowClients: a client that never finishes its headers, or
// trickles a body, is cut off; the server keeps serving everyone else.
func TestE2EServeSlowClients(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	srv := startServer(t, store, "--insecure", "--read-header-timeout", "1s", "--request-timeout", "2s")
	tok := newToken(t, store, "--computer", "PC01")
	host := strings.TrimPrefix(srv.url, "http://")
	var conns []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /v1/info HTTP/1.1\r\nHost: x\r\n") // headers never end
	}
	slowBody, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(slowBody, "POST /v1/captures HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n{", tok)
	// Others are served meanwhile.
	mustSMP(t, "records", "--store", srv.url, "--token", tok)
	// The stalled connections are closed by the server.
	for _, c := range append(conns, slowBody) {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Errorf("connection not closed by the server: %v", err)
		}
		c.Close()
	}
	mustSMP(t, "records", "--store", srv.url, "--token", tok)
}

// TestE2EServeReserveFirst: with --reserve-first, an SMP without room for
// the whole capture refuses it before anything is uploaded, and the client
// falls back to the next SMP, where the capture restores byte-identical.
// Without it, the same capture stops mid-way on the first SMP.
func TestE2EServeReserveFirst(t *testing.T) {
	t.Parallel()
	storeA, storeB := newStore(t), newStore(t)
	srvA := startServer(t, storeA, "--insecure", "--quota", "3MiB")
	srvB := startServer(t, storeB, "--insecure", "--quota", "20MiB")
	tokA := newToken(t, storeA, "--computer", "PC01")
	tokB := newToken(t, storeB, "--computer", "PC01")
	adminA := newToken(t, storeA, "--role", "admin")
	src := tmpDir(t)
	serveProfile(t, src, 41, 5) // 5 MiB of random files: over A's quota
	packBytes := func() int64 {
		var st struct {
			Stored int64 `json:"stored_bytes"`
		}
		smpJSON(t, exitOK, &st, "stats", "--store", srvA.url, "--token", adminA, "--json")
		return st.Stored
	}

	stores := srvA.url + "," + srvB.url
	tokens := tokA + "," + tokB
	var out struct {
		remoteCaptureOut
		Reserved int64 `json:"reserved_first_bytes"`
	}
	r := smpJSON(t, exitOK, &out, "capture", "--store", stores, "--token", tokens, "--computer", "PC01", "--root", src, "--reserve-first", "--json")
	if !strings.Contains(r.stderr, "over its quota") || strings.Count(r.stderr, "trying the next SMP") != 1 {
		t.Fatalf("fallback after the plan: %s", r)
	}
	if got := packBytes(); got != 0 {
		t.Fatalf("the refusing SMP stores %d bytes: the plan uploaded", got)
	}
	if out.Reserved < 5<<20 || out.Uploaded == 0 || out.Uploaded > out.Reserved {
		t.Fatalf("reserved %d, uploaded %d: want at least 5 MiB reserved, and no more sent", out.Reserved, out.Uploaded)
	}
	dst := tmpDir(t)
	restoreJSON(t, exitOK, srvB.url, "--token", tokB, "--record", out.Record, "--root", dst)
	compareTrees(t, src, dst, compareOpts{})

	// Without the plan, A takes data until its quota stops the capture.
	r = smp(t, "capture", "--store", srvA.url, "--token", tokA, "--computer", "PC01", "--root", src)
	if r.code != exitError || !strings.Contains(r.stderr, "over its quota") {
		t.Fatalf("without --reserve-first: %s", r)
	}
	// A local store has nothing to reserve.
	r = smp(t, "capture", "--store", newStore(t), "--computer", "PC01", "--root", src, "--reserve-first")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--reserve-first") {
		t.Fatalf("--reserve-first with a local store: %s", r)
	}
}
