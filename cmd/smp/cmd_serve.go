package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/dustin/go-humanize"

	"smp/internal/sysfile"
	"smp/remote/access"
	"smp/remote/server"
)

const serveArgs = "--store DIR [--listen ADDR] (--tls-cert FILE --tls-key FILE | --tls-self-signed | --insecure) [--restore-only]"

func runServe(ctx context.Context, args []string) error {
	fs := newFlags("serve", serveArgs)
	store := storeFlag(fs)
	listen := fs.String("listen", ":8443", "address to listen on (HOST:PORT; port 0 picks a free one)")
	certFile := fs.String("tls-cert", "", "PEM certificate (chain) to serve")
	keyFile := fs.String("tls-key", "", "PEM private key of --tls-cert")
	selfSigned := fs.Bool("tls-self-signed", false, "create (once) and keep a self-signed certificate in DIR/tls; clients pin its printed fingerprint")
	hosts := fs.StringArray("tls-host", nil, "extra DNS name or IP for the self-signed certificate (repeatable)")
	insecure := fs.Bool("insecure", false, "serve plain HTTP; allowed only on a loopback address (tests, a local TLS proxy)")
	restoreOnly := fs.Bool("restore-only", false, "refuse new captures; restores go on (also: smp admin restore-only on)")
	logFormat := fs.String("log-format", "text", "request log format on stderr: text or json")
	sessionIdle := fs.Duration("session-idle", time.Hour, "forget a capture session unused for this long")
	maxRecords := fs.Int("max-records", 0, "refuse captures once the store holds this many records (plus captures in progress); 0: no limit")
	minFreeFlag := fs.String("min-free", "", "refuse captures that would leave less free space than this on the store's filesystem, e.g. 50GiB")
	quotaFlag := fs.String("quota", "", "per computer: refuse captures that would make its records' new stored bytes exceed this, e.g. 20GiB")
	retentionFlag := fs.String("retention", "", "with --gc-every: remove released records this long after their release, e.g. 7d")
	gcEvery := fs.String("gc-every", "", "run gc (and retention) at this interval while serving, e.g. 24h")
	headerTimeout := fs.Duration("read-header-timeout", 10*time.Second, "close a connection whose request headers take longer (slow or stalled clients)")
	requestTimeout := fs.Duration("request-timeout", 10*time.Minute, "longest time to read one request (a 64 MiB upload batch must arrive within it)")
	metricsListen := fs.String("metrics-listen", "", "also serve Prometheus /metrics without a token, in plain HTTP, on this address (e.g. 127.0.0.1:9464); /metrics on the main address needs an admin token")
	gcGraceFlag := fs.String("gc-grace", "1h", "gc keeps packs younger than this: uploads of captures not committed yet")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := needStore(*store); err != nil {
		return err
	}
	if isRemoteStore(*store) {
		return usagef("smp serve serves a local store directory, not %s", *store)
	}
	tlsModes := 0
	for _, on := range []bool{*certFile != "" || *keyFile != "", *selfSigned, *insecure} {
		if on {
			tlsModes++
		}
	}
	if tlsModes != 1 {
		return usagef("give exactly one of --tls-cert/--tls-key, --tls-self-signed or --insecure (loopback only)")
	}
	if (*certFile == "") != (*keyFile == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	var limits struct {
		minFree, quota          uint64
		retention, every, grace time.Duration
	}
	for _, f := range []struct {
		name, val string
		dst       *uint64
	}{{"--min-free", *minFreeFlag, &limits.minFree}, {"--quota", *quotaFlag, &limits.quota}} {
		if f.val == "" {
			continue
		}
		n, err := humanize.ParseBytes(f.val)
		if err != nil || n == 0 {
			return usagef("%s %q: want a size like 50GiB", f.name, f.val)
		}
		*f.dst = n
	}
	for _, f := range []struct {
		name, val string
		dst       *time.Duration
	}{{"--retention", *retentionFlag, &limits.retention}, {"--gc-every", *gcEvery, &limits.every}, {"--gc-grace", *gcGraceFlag, &limits.grace}} {
		if f.val == "" {
			continue
		}
		d, err := parseDays(f.val)
		if err != nil {
			return usagef("%s: %v", f.name, err)
		}
		*f.dst = d
	}
	if limits.retention > 0 && limits.every == 0 {
		return usagef("--retention needs --gc-every (how often to apply it), e.g. --gc-every 24h")
	}
	if *maxRecords < 0 {
		return usagef("--max-records %d: want 0 (no limit) or more", *maxRecords)
	}
	if *insecure && !loopback(*listen) {
		return usagef("--insecure serves plain HTTP and is allowed only on a loopback address such as 127.0.0.1:8443, not %q", *listen)
	}
	var handler slog.Handler
	switch *logFormat {
	case "text":
		handler = slog.NewTextHandler(os.Stderr, nil)
	case "json":
		handler = slog.NewJSONHandler(os.Stderr, nil)
	default:
		return usagef("--log-format %q: want text or json", *logFormat)
	}
	logger := slog.New(handler)

	r, err := openStore(*store)
	if err != nil {
		return err
	}
	defer r.Close()
	acc, err := access.Open(r.Dir)
	if err != nil {
		return err
	}
	var tlsConf *tls.Config
	scheme := "http"
	if !*insecure {
		scheme = "https"
		if *selfSigned {
			*certFile, *keyFile, err = selfSignedCert(r.Dir, *hosts)
			if err != nil {
				return err
			}
		}
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		fp := sha256.Sum256(cert.Certificate[0])
		fmt.Printf("tls fingerprint %x\n", fp)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	srv := server.New(server.Options{Repo: r, Access: acc, Log: logger, RestoreOnly: *restoreOnly, SessionIdle: *sessionIdle,
		MaxRecords: *maxRecords, MinFree: limits.minFree, Quota: limits.quota, GCGrace: limits.grace})
	if limits.every > 0 {
		go srv.Maintain(ctx, limits.every, limits.retention, 0.5)
	}
	if *metricsListen != "" {
		mln, err := net.Listen("tcp", *metricsListen)
		if err != nil {
			return fmt.Errorf("--metrics-listen %s: %w", *metricsListen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", srv.Metrics().Handler())
		ms := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = ms.Serve(mln) }()
		defer ms.Close()
		fmt.Printf("smp serve: metrics on http://%s/metrics\n", mln.Addr())
	}
	hs := &http.Server{
		Handler:   srv,
		TLSConfig: tlsConf,
		// Slow or stalled clients cannot hold connections for ever.
		ReadHeaderTimeout: *headerTimeout,
		ReadTimeout:       *requestTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
	}
	fmt.Printf("smp serve: store %s listening on %s://%s\n", r.Dir, scheme, ln.Addr())
	os.Stdout.Sync()
	errc := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// In-flight requests finish (an upload's blobs are committed before
	// its answer); after the grace period the rest are cut, and what they
	// had not committed is discarded with the open packs on close.
	logger.Info("shutting down: waiting for requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// selfSignedCert returns DIR/tls/cert.pem and key.pem, creating them the
// first time: the same certificate (and fingerprint) on every start.
func selfSignedCert(dir string, extraHosts []string) (string, string, error) {
	tdir := filepath.Join(dir, "tls")
	certPath, keyPath := filepath.Join(tdir, "cert.pem"), filepath.Join(tdir, "key.pem")
	if _, err := os.Stat(certPath); err == nil {
		return certPath, keyPath, nil
	}
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "smp state migration point"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if h, err := os.Hostname(); err == nil {
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	for _, h := range extraHosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	// Key first: a crash between the two leaves no certificate, so the
	// next start makes a fresh pair rather than a mismatched one.
	if err := sysfile.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	if err := sysfile.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}
