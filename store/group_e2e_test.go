package store

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smp/capture"
	"smp/cas"
	"smp/remote/access"
	"smp/remote/server"
	"smp/repo"
)

// smpForTest serves a new store directory in process and returns its URL
// and an admin token.
func smpForTest(t *testing.T, restoreOnly bool) (url, token string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	params, err := cas.ChunkerParamsForAvg(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Init(dir, params); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := access.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err = acc.CreateToken("", access.RoleAdmin, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{Repo: r, Access: acc, RestoreOnly: restoreOnly, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); r.Close() })
	return hs.URL, token
}

func profile(t *testing.T, text string) string {
	t.Helper()
	src := t.TempDir()
	home := filepath.Join(src, "home", "alice")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "f.txt"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return src
}

// TestGroupStore: a group captures to the first SMP that accepts (A is
// restore-only: B takes it, and the fallback is logged), lists the records
// of every SMP with the SMP holding each, resolves a computer's newest
// record across the group and reads it from its SMP.
func TestGroupStore(t *testing.T) {
	ctx := context.Background()
	urlA, tokA := smpForTest(t, true)
	urlB, tokB := smpForTest(t, false)
	var log bytes.Buffer
	st, err := Open(ctx, urlA+","+urlB, Options{Token: tokA + "," + tokB, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, ok := st.(*group); !ok {
		t.Fatalf("Open of two SMPs returned %T, want a group", st)
	}
	var ids []cas.ID
	for _, text := range []string{"first", "second"} {
		res, err := st.Capture(ctx, CaptureOptions{Options: capture.Options{Computer: "PC01", Root: profile(t, text)}})
		if err != nil {
			t.Fatalf("capture: %v", err)
		}
		if res.SMP != urlB {
			t.Errorf("capture went to %s, want %s (A is restore-only)", res.SMP, urlB)
		}
		ids = append(ids, res.ID)
	}
	if !strings.Contains(log.String(), urlA) || !strings.Contains(log.String(), "trying the next SMP") {
		t.Errorf("the fallback was not logged: %q", log.String())
	}
	recs, err := st.Records(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].ID != ids[0] || recs[1].ID != ids[1] || recs[0].SMP != urlB || recs[1].SMP != urlB {
		t.Fatalf("records = %+v; want both captures, oldest first, on %s", recs, urlB)
	}
	rec, err := st.FindRecord(ctx, "", "PC01")
	if err != nil || rec.ID != ids[1] || rec.SMP != urlB {
		t.Fatalf("FindRecord PC01 = %s on %s, %v; want the newest %s", rec.ID.Short(), rec.SMP, err, ids[1].Short())
	}
	rd, err := st.Reader(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if _, err := rd.LoadTree(rec.Tree); err != nil {
		t.Errorf("read the record's root tree from its SMP: %v", err)
	}
	if _, err := st.Capture(ctx, CaptureOptions{Options: capture.Options{Computer: "PC01", Root: t.TempDir(), Hardlink: capture.HardlinkAlways}}); err == nil {
		t.Error("a group took --hardlink always")
	}
}

func TestParseLocation(t *testing.T) {
	for _, c := range []struct {
		loc, dir string
		smps     int
		err      string
	}{
		{"/srv/store", "/srv/store", 0, ""},
		{"dir,with,commas", "dir,with,commas", 0, ""},
		{"https://a:1", "", 1, ""},
		{" https://a:1 , http://127.0.0.1:2 ", "", 2, ""},
		{"gs://bucket/x", "", 0, "does not know the scheme \"gs\""},
		{"s3://127.0.0.1:9000/bucket/x", "s3://127.0.0.1:9000/bucket/x", 0, ""},
		{"https://a:1,s3://h:1/bucket", "", 0, "does not know the scheme \"s3\""},
		{"https://a:1,/srv/store", "", 0, "must all be https:// URLs"},
		{"", "", 0, "--store DIR is required"},
		{"http://[::1]:8443", "", 1, ""},
		{"http://localhost:8443", "", 1, ""},
		{"https://a:1,http://smp.example:8443", "", 0, "allowed only to a loopback address"},
		{"http://10.0.0.5:8443", "", 0, "allowed only to a loopback address"},
	} {
		dir, smps, err := parseLocation(c.loc)
		if want := err == nil && len(smps) == 0 && !strings.HasPrefix(c.loc, "s3://"); IsDir(c.loc) != want {
			t.Errorf("IsDir(%q) = %v, want %v", c.loc, !want, want)
		}
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.loc, err, c.err)
			}
			continue
		}
		if err != nil || dir != c.dir || len(smps) != c.smps {
			t.Errorf("%q = %q, %v, %v; want %q and %d SMPs", c.loc, dir, smps, err, c.dir, c.smps)
		}
	}
	if _, err := Open(context.Background(), "https://a:1,https://b:2,https://c:3", Options{Token: "x,y"}); err == nil || !strings.Contains(err.Error(), "2 tokens for 3 SMPs") {
		t.Errorf("a token list of the wrong length: %v", err)
	}
	if err := CheckDir("serve", "https://a:1"); err == nil || !strings.Contains(err.Error(), "smp serve works on a store directory") {
		t.Errorf("CheckDir of an SMP: %v", err)
	}
}

// tlsSMPForTest serves a new store directory over TLS with a self-signed
// certificate of its own, and returns its URL, an admin token and the
// certificate's SHA-256 fingerprint (what smp serve prints).
func tlsSMPForTest(t *testing.T) (url, token, fingerprint string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	params, err := cas.ChunkerParamsForAvg(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Init(dir, params); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := access.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err = acc.CreateToken("", access.RoleAdmin, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smp test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{Repo: r, Access: acc, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewUnstartedServer(srv)
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	hs.StartTLS()
	t.Cleanup(func() { hs.Close(); r.Close() })
	sum := sha256.Sum256(der)
	return hs.URL, token, hex.EncodeToString(sum[:])
}

// TestGroupFingerprints: --tls-fingerprint takes one pin per SMP of a
// group, in --store order, as --token does: each SMP is checked against
// its own pin, one pin for all pins every SMP to that one certificate, and
// a list of another length is refused before anything is reached.
func TestGroupFingerprints(t *testing.T) {
	ctx := context.Background()
	urlA, tokA, fpA := tlsSMPForTest(t)
	urlB, tokB, fpB := tlsSMPForTest(t)
	if fpA == fpB {
		t.Fatal("the two SMPs have the same certificate")
	}
	open := func(location, tokens, pins string, log io.Writer) Store {
		t.Helper()
		st, err := Open(ctx, location, Options{Token: tokens, Fingerprint: pins, Log: log})
		if err != nil {
			t.Fatalf("Open %s with pins %s: %v", location, pins, err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	// Each SMP is reached through its own pin: a capture lands on the
	// first of each order.
	for _, g := range []struct{ location, tokens, pins, want string }{
		{urlA + "," + urlB, tokA + "," + tokB, fpA + "," + fpB, urlA},
		{urlB + "," + urlA, tokB + "," + tokA, " " + fpB + " , " + fpA, urlB},
	} {
		var log bytes.Buffer
		res, err := open(g.location, g.tokens, g.pins, &log).Capture(ctx, CaptureOptions{Options: capture.Options{Computer: "PC01", Root: profile(t, g.want)}})
		if err != nil || res.SMP != g.want {
			t.Fatalf("capture through %s with pins %s: on %s, %v; want %s (log %q)", g.location, g.pins, res.SMP, err, g.want, log.String())
		}
	}
	var log bytes.Buffer
	recs, err := open(urlA+","+urlB, tokA+","+tokB, fpA+","+fpB, &log).Records(ctx)
	if err != nil || len(recs) != 2 || log.Len() != 0 {
		t.Fatalf("records with a pin per SMP: %d records, %v, log %q; want one on each SMP", len(recs), err, log.String())
	}
	// One pin for all: B's certificate does not match it, so B is
	// skipped and named.
	log.Reset()
	recs, err = open(urlA+","+urlB, tokA+","+tokB, fpA, &log).Records(ctx)
	if err != nil || len(recs) != 1 || recs[0].SMP != urlA || !strings.Contains(log.String(), urlB) || !strings.Contains(log.String(), "does not match --tls-fingerprint") {
		t.Fatalf("records with A's pin for both: %+v, %v, log %q; want A's record and B named as not matching", recs, err, log.String())
	}
	// Pins in the wrong order match neither SMP.
	if _, err := open(urlA+","+urlB, tokA+","+tokB, fpB+","+fpA, io.Discard).Records(ctx); err == nil || !strings.Contains(err.Error(), "does not match --tls-fingerprint") {
		t.Fatalf("records with the pins swapped: %v, want both SMPs refused", err)
	}
	_, err = Open(ctx, urlA+","+urlB, Options{Token: tokA, Fingerprint: fpA + "," + fpB + "," + fpA})
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "3 fingerprints for 2 SMPs") {
		t.Fatalf("three pins for two SMPs: %v, want a usage error", err)
	}
}
