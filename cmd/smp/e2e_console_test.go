package main

import (
	"context"
	"crypto/tls"

	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The web console's browser tests: headless Chromium (Debian's chromium,
// installed by .ci/install-chromium.sh) drives `smp serve --tls-self-signed`
// so the Secure cookie is exercised. SMP_CONSOLE_SCREENSHOTS names a
// directory for 1280x800 screenshots of the overview and computers pages.

// hostileNames are file and computer names whose markup would set
// window.__x if the console let it through.
var hostileNames = []string{
	`<script>window.__x=1;alert(1)`, // a file name cannot hold '/': the tag still opens a script
	`<img src=x onerror=window.__x=2>`,
	`<svg onload=window.__x=3>`,
}

const hostileComputer = `<img src=x onerror=window.__x=4>`

// newBrowser starts headless Chromium, or skips when it is not installed.
func newBrowser(t *testing.T) (context.Context, *atomic.Int32) {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (.ci/install-chromium.sh installs it)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// The server's certificate is self-signed; the connection is still
		// TLS, so the page is a secure context and Secure cookies apply.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	var dialogs atomic.Int32
	var ctx context.Context
	// A dialog (alert from an injected payload) is counted and dismissed;
	// the listener may not call the browser itself.
	listener := func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			t.Logf("dialog opened: %s", d.Message)
		}
	}
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithListener(listener))
	t.Cleanup(func() { cancelC(); cancelA() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx, &dialogs
}

// brun runs browser steps, failing the test on an error; each step gets
// a minute.
func brun(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if _, err := bval(ctx, chromedp.Steps(steps...)); err != nil {
		loc, _ := bval(ctx, chromedp.Location())
		html, _ := bval(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
		t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, html)
	}
}

func bval[T any](ctx context.Context, a chromedp.Action[T]) (T, error) {
	return chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (T, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return a(ctx, tg)
	})
}

func must[T any](t *testing.T, what string, v T, err error) T {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := bval(ctx, chromedp.Text(chromedp.CSS(sel)))
	return strings.TrimSpace(must(t, "read "+sel, s, err))
}

// confirmAction opens the confirmation page of an action and confirms it.
func confirmAction(t *testing.T, ctx context.Context, base, query string) string {
	t.Helper()
	brun(t, ctx, "confirm "+query, chromedp.Navigate(base+"/confirm?"+query),
		chromedp.WaitVisible(chromedp.CSS("#confirm")), chromedp.Click(chromedp.CSS("#confirm")),
		chromedp.WaitVisible(chromedp.CSS("#message, #error")))
	return text(t, ctx, "main")
}

func TestE2EConsoleBrowser(t *testing.T) {
	t.Parallel()
	ctx, dialogs := newBrowser(t)
	store := newStore(t)
	srv := startServer(t, store, "--tls-self-signed", "--min-free", "1MiB")
	base := srv.url
	fp := "--tls-fingerprint=" + srv.fingerprint
	admin := newToken(t, store, "--role", "admin")
	pc01 := newToken(t, store, "--computer", "PC01")

	// Two captures: PC01's profile, and a computer with a hostile name
	// whose files have hostile and invalid UTF-8 names.
	src := tmpDir(t)
	serveProfile(t, src, 1, 2)
	remoteCapture(t, exitOK, base, pc01, "PC01", "--root", src, fp)
	hostile := tmpDir(t)
	mkdirs(t, filepath.Join(hostile, "home", "user"))
	for i, n := range append(hostileNames, "bad\xff\xfename.txt") {
		writeFile(t, filepath.Join(hostile, "home", "user", n), []byte(strings.Repeat("x", 100*(i+1))), 0o644)
	}
	hrec := remoteCapture(t, exitOK, base, admin, hostileComputer, "--root", hostile, fp)

	// No session: every page sends the browser to the login form.
	brun(t, ctx, "open / without a session", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	loc, err := bval(ctx, chromedp.Location())
	must(t, "location", loc, err)
	if !strings.HasSuffix(loc, "/login") {
		t.Fatalf("without a session / went to %s, want /login", loc)
	}
	// A client token is refused.
	brun(t, ctx, "log in with a client token", chromedp.SendKeys(chromedp.CSS("#token"), pc01), chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#login-error")))
	if msg := text(t, ctx, "#login-error"); !strings.Contains(msg, "needs an admin token") {
		t.Fatalf("client token login says %q", msg)
	}
	// The admin token logs in.
	brun(t, ctx, "log in", chromedp.Navigate(base+"/login"), chromedp.SendKeys(chromedp.CSS("#token"), admin),
		chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#records")))

	// The session cookie: a random ID (not the token), HttpOnly, Secure,
	// SameSite=Strict, host-only (__Host- prefix).
	cres, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base}})
	cookies := must(t, "cookies", cres, err).Cookies
	if len(cookies) != 1 {
		t.Fatalf("cookies %+v, want one", cookies)
	}
	ck := cookies[0]
	if ck.Name != "__Host-smp_session" || !ck.HTTPOnly || !ck.Secure || ck.SameSite != network.CookieSameSiteStrict ||
		len(ck.Value) != 64 || strings.Contains(admin, ck.Value) {
		t.Fatalf("session cookie %+v: want __Host-smp_session, HttpOnly, Secure, SameSite=Strict, a 256-bit ID", ck)
	}

	// The overview shows the figures of smp stats --json.
	var st statsOut
	smpJSON(t, exitOK, &st, "stats", "--store", base, "--token", admin, fp, "--json")
	var storedRaw statsStored
	smpJSON(t, exitOK, &storedRaw, "stats", "--store", base, "--token", admin, fp, "--json")
	if got := text(t, ctx, "#records"); got != strconv.Itoa(st.Records) || st.Records != 2 {
		t.Errorf("overview records %q, smp stats --json %d (want 2)", got, st.Records)
	}
	if got := text(t, ctx, "#stored-bytes"); got != strconv.FormatUint(storedRaw.StoredBytes, 10) {
		t.Errorf("overview stored bytes %q, smp stats --json %d", got, storedRaw.StoredBytes)
	}
	if got := text(t, ctx, "#logical-bytes"); got != strconv.FormatUint(st.LogicalBytes, 10) {
		t.Errorf("overview logical bytes %q, smp stats --json %d", got, st.LogicalBytes)
	}

	// A capture in progress shows its progress, throughput and ETA from
	// the walk totals the client sent: a real smp capture through a proxy
	// that slows it, paused part way so the figures hold still while the
	// overview and smp stats --json are compared.
	big := tmpDir(t)
	serveProfile(t, big, 7, 12) // 12 files of 1 MiB and 3 small ones
	proxy := startSlowProxy(t, strings.TrimPrefix(base, "https://"), 3<<20)
	done := make(chan result, 1)
	go func() {
		done <- smp(t, "capture", "--store", "https://"+proxy.addr, "--token", admin, "--computer", "PC02", "--root", big, fp)
	}()
	deadline := time.Now().Add(time.Minute)
	for proxy.sent.Load() < 4<<20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	proxy.Pause()
	capacity := stableCapacity(t, base, admin, fp)
	brun(t, ctx, "overview with a capture", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#captures progress")))
	row := text(t, ctx, "#captures")
	pct, err := bval(ctx, chromedp.Evaluate[float64](`document.querySelector("#captures progress").value`))
	must(t, "progress value", pct, err)
	eta := text(t, ctx, "#captures td.eta")
	if !strings.Contains(row, "PC02") || !strings.Contains(row, "in 15 files") || pct <= 0 || pct >= 100 ||
		!regexp.MustCompile(`^(\d+h)?(\d+m)?\d+s$`).MatchString(eta) || !strings.Contains(row, "/s done") {
		t.Errorf("capture in progress: progress %.1f%%, ETA %q, row %q", pct, eta, row)
	}
	// The capacity figures are those of smp stats --json.
	for id, want := range map[string]uint64{"#used-bytes": capacity.StoredBytes, "#reserved-bytes": capacity.Capacity.ReservedBytes,
		"#quota-committed-bytes": capacity.Capacity.QuotaCommittedBytes, "#min-free-bytes": capacity.Capacity.MinFreeBytes} {
		if got := text(t, ctx, id); got != strconv.FormatUint(want, 10) {
			t.Errorf("overview %s %s, smp stats --json %d", id, got, want)
		}
	}
	if capacity.Capacity.QuotaCommittedBytes == 0 || capacity.Capacity.MinFreeBytes != 1<<20 || capacity.Capacity.Captures != 1 {
		t.Errorf("smp stats --json capacity during a capture: %+v", capacity.Capacity)
	}
	// Free space is the disk's, which other processes change: within 1 GiB.
	free, err := strconv.ParseUint(text(t, ctx, "#free-bytes"), 10, 64)
	if err != nil || max(free, capacity.FreeBytes)-min(free, capacity.FreeBytes) > 1<<30 {
		t.Errorf("overview free bytes %d (%v), smp stats --json %d", free, err, capacity.FreeBytes)
	}
	shoot(t, ctx, "console-overview.png")
	proxy.Resume()
	if r := <-done; r.code != exitOK {
		t.Fatalf("capture through the slow proxy: %s", r)
	}

	// Hostile names render as text: the computers list, the computer page
	// and the record's files. Nothing sets window.__x, no dialog opens,
	// and no element came from a name (escaping holds even without the CSP).
	brun(t, ctx, "computers", chromedp.Navigate(base+"/computers"), chromedp.WaitVisible(chromedp.CSS("#computers")))
	if got := text(t, ctx, "#computers"); !strings.Contains(got, hostileComputer) || !strings.Contains(got, "PC01") {
		t.Errorf("computers page %q lacks the computers' names as text", got)
	}
	shoot(t, ctx, "console-computers.png")
	brun(t, ctx, "computer page", chromedp.Navigate(base+"/computer?name="+url.QueryEscape(hostileComputer)),
		chromedp.WaitVisible(chromedp.CSS("#computer-name")))
	if got := text(t, ctx, "#computer-name"); got != hostileComputer {
		t.Errorf("computer page heading %q, want %q", got, hostileComputer)
	}
	brun(t, ctx, "record files", chromedp.Navigate(base+"/record?id="+hrec.Record+"&dir=home/user"), chromedp.WaitVisible(chromedp.CSS("#files")))
	names, err := bval(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#files td.name")].map(td => td.firstChild.textContent.trim())`))
	must(t, "file names", names, err)
	want := []string{hostileNames[0], hostileNames[1], hostileNames[2], "bad\ufffdname.txt"}
	for _, w := range want {
		if !containsStr(names, w) {
			t.Errorf("file list %q lacks %q as text", names, w)
		}
	}
	injected, err := bval(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main img, main svg:not(.bar):not(.chart), main script, header img").length`))
	must(t, "injected elements", injected, err)
	xType, err := bval(ctx, chromedp.Evaluate[string](`typeof window.__x`))
	must(t, "window.__x", xType, err)
	if injected != 0 || xType != "undefined" || dialogs.Load() != 0 {
		t.Errorf("hostile names: %d injected elements, window.__x %s, %d dialogs", injected, xType, dialogs.Load())
	}

	// A new client token: its secret is shown once, on a no-store page.
	brun(t, ctx, "create token", chromedp.Navigate(base+"/confirm?op=token-create&computer=PC03"),
		chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("#secret")))
	if sec := text(t, ctx, "#secret"); !strings.HasPrefix(sec, "smp_") {
		t.Errorf("new token secret %q", sec)
	} else {
		mustSMP(t, "records", "--store", base, "--token", sec, fp)
	}

	// Revoke PC01's token in the UI: its next capture gets 401.
	brun(t, ctx, "tokens", chromedp.Navigate(base+"/tokens"), chromedp.WaitVisible(chromedp.CSS("#revoke-"+tokenID(pc01))),
		chromedp.Click(chromedp.CSS("#revoke-"+tokenID(pc01))), chromedp.WaitVisible(chromedp.CSS("#confirm")),
		chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("#message")))
	r := smp(t, "capture", "--store", base, "--token", pc01, "--computer", "PC01", "--root", src, fp)
	if r.code == exitOK || !strings.Contains(r.stderr, "revoked") {
		t.Errorf("capture with the revoked token: %s", r)
	}
	if !srv.logMatches(regexp.MustCompile(`path=/v1/info status=401 .*error="token revoked"`)) {
		t.Errorf("the server logged no 401 for the revoked token:\n%s", srv.logText())
	}

	// Restore-only from the UI refuses a capture; switching it off lets
	// captures in again.
	if msg := confirmAction(t, ctx, base, "op=restore-only&on=1"); !strings.Contains(msg, "Restore-only is now on") {
		t.Fatalf("restore-only on: %q", msg)
	}
	r = smp(t, "capture", "--store", base, "--token", admin, "--computer", "PC01", "--root", src, fp)
	if r.code == exitOK || !strings.Contains(r.stderr, "restore-only") {
		t.Errorf("capture in restore-only mode: %s", r)
	}
	confirmAction(t, ctx, base, "op=restore-only&on=0")

	// CSRF: a POST with the session cookie but no CSRF token is refused,
	// and so is a cross-origin page's form submitted by the browser.
	form := url.Values{"op": {"restore-only"}, "on": {"1"}}
	hc := insecureClient()
	req, _ := http.NewRequest(http.MethodPost, base+"/action", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST without a CSRF token: status %d, want 403", resp.StatusCode)
	}
	evil := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<form method="post" action="%s/action"><input name="op" value="restore-only"><input name="on" value="1"></form><script>document.forms[0].submit()</script>`, base)
	}))
	defer evil.Close()
	brun(t, ctx, "cross-site form", chromedp.Navigate(evil.URL), chromedp.WaitVisible(chromedp.CSS("#error")))
	if msg := text(t, ctx, "#error"); !strings.Contains(msg, "cross-site") && !strings.Contains(msg, "CSRF") {
		t.Errorf("cross-site POST answered %q", msg)
	}
	// Neither switched restore-only on: a capture goes through.
	remoteCapture(t, exitOK, base, admin, "PC04", "--root", src, fp)

	// Headers: the CSP and no-store on every page; the login page too.
	req, _ = http.NewRequest(http.MethodGet, base+"/", nil)
	req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode != 200 || !strings.Contains(csp, "default-src 'none'") ||
		strings.Contains(csp, "script-src") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("overview: status %d, CSP %q, Cache-Control %q", resp.StatusCode, csp, resp.Header.Get("Cache-Control"))
	}
	// Every action was logged with the admin token's ID.
	for _, action := range []string{"token-create", "token-revoke", "restore-only"} {
		if !srv.logMatches(regexp.MustCompile(`action=` + action + ` token=` + tokenID(admin))) {
			t.Errorf("no log line for action %s with token %s", action, tokenID(admin))
		}
	}
	// Logging out ends the session on the server: the old cookie no
	// longer opens a page.
	brun(t, ctx, "log out", chromedp.Navigate(base+"/"), chromedp.Click(chromedp.CSS(".logout button")), chromedp.WaitVisible(chromedp.CSS("#token")))
	req, _ = http.NewRequest(http.MethodGet, base+"/", nil)
	req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/login" {
		t.Errorf("after logout the old cookie reached %s", resp.Request.URL.Path)
	}
}

// capacityOut is stats --json against an SMP: the figures the overview
// shows beside the disk.
type capacityOut struct {
	StoredBytes uint64 `json:"stored_bytes"`
	FreeBytes   uint64 `json:"free_bytes"`
	Capacity    struct {
		Captures            int    `json:"captures"`
		ReservedBytes       uint64 `json:"reserved_bytes"`
		QuotaCommittedBytes uint64 `json:"quota_committed_bytes"`
		MinFreeBytes        uint64 `json:"min_free_bytes"`
	} `json:"capacity"`
}

// stableCapacity reads smp stats --json until two readings half a second
// apart agree on everything but free space: the paused capture's last
// bytes have landed.
func stableCapacity(t *testing.T, base, admin, fp string) capacityOut {
	t.Helper()
	var prev capacityOut
	for range 40 {
		var cur capacityOut
		smpJSON(t, exitOK, &cur, "stats", "--store", base, "--token", admin, fp, "--json")
		cur.FreeBytes, prev.FreeBytes = 0, 0
		if cur == prev {
			smpJSON(t, exitOK, &cur, "stats", "--store", base, "--token", admin, fp, "--json")
			return cur
		}
		prev = cur
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatal("smp stats --json did not settle while the capture was paused")
	return prev
}

// statsStored is the stored_bytes of stats --json.
type statsStored struct {
	StoredBytes uint64 `json:"stored_bytes"`
}

func containsStr(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// insecureClient talks to the test server's self-signed certificate.
func insecureClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

// shoot saves a 1280x800 screenshot when SMP_CONSOLE_SCREENSHOTS names a
// directory.
func shoot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("SMP_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := bval(ctx, chromedp.CaptureScreenshot())
	must(t, "screenshot", png, err)
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
