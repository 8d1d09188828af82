package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"smp/remote/server"
	"smp/store"
)

const serveArgs = "--store DIR [--listen ADDR] (--tls-cert FILE --tls-key FILE | --tls-self-signed | --insecure) [--restore-only]"

// serveOptions are the flags of smp serve.
type serveOptions struct {
	Store, Listen, CertFile, KeyFile  string
	SelfSigned, Insecure, RestoreOnly bool
	Hosts                             []string
	LogFormat                         string
	S3                                s3Flags
	SessionIdle                       time.Duration
	MaxRecords                        int
	MinFree, Quota, MaxStoreBytes     string
	Retention, GCEvery, GCGrace       string
	HeaderTimeout, RequestTimeout     time.Duration
	MetricsListen                     string
	keyFlags
}

func (o *serveOptions) AddFlags(fs *pflag.FlagSet) {
	storeLocVar(fs, &o.Store, &o.S3)
	o.keyFlags.AddFlags(fs)
	fs.StringVar(&o.Listen, "listen", ":8443", "address to listen on (HOST:PORT; port 0 picks a free one)")
	fs.StringVar(&o.CertFile, "tls-cert", "", "PEM certificate (chain) to serve")
	fs.StringVar(&o.KeyFile, "tls-key", "", "PEM private key of --tls-cert")
	fs.BoolVar(&o.SelfSigned, "tls-self-signed", false, "create (once) and keep a self-signed certificate in DIR/tls; clients pin its printed fingerprint")
	fs.StringArrayVar(&o.Hosts, "tls-host", nil, "extra DNS name or IP for the self-signed certificate (repeatable)")
	fs.BoolVar(&o.Insecure, "insecure", false, "serve plain HTTP; allowed only on a loopback address (tests, a local TLS proxy)")
	fs.BoolVar(&o.RestoreOnly, "restore-only", false, "refuse new captures; restores go on (also: smp admin restore-only on)")
	fs.StringVar(&o.LogFormat, "log-format", "text", "request log format on stderr: text or json")
	fs.DurationVar(&o.SessionIdle, "session-idle", time.Hour, "forget a capture session unused for this long")
	fs.IntVar(&o.MaxRecords, "max-records", 0, "refuse captures once the store holds this many records (plus captures in progress); 0: no limit")
	fs.StringVar(&o.MinFree, "min-free", "", "refuse captures that would leave less free space than this on the store's filesystem, e.g. 50GiB")
	fs.StringVar(&o.MaxStoreBytes, "max-store-bytes", "", "refuse captures that would take the store's stored bytes (plus captures in progress) over this, e.g. 2TiB; the limit of a store on s3:// instead of --min-free (servers sharing a store reserve each for its own captures, so together they may exceed it by what they reserved)")
	fs.StringVar(&o.Quota, "quota", "", "per computer: refuse captures that would make its records' new stored bytes exceed this, e.g. 20GiB")
	fs.StringVar(&o.Retention, "retention", "", "with --gc-every: remove released records this long after their release, e.g. 7d")
	fs.StringVar(&o.GCEvery, "gc-every", "", "run gc (and retention) at this interval while serving, e.g. 24h")
	fs.DurationVar(&o.HeaderTimeout, "read-header-timeout", 10*time.Second, "close a connection whose request headers take longer (slow or stalled clients)")
	fs.DurationVar(&o.RequestTimeout, "request-timeout", 10*time.Minute, "longest time to read one request (a 64 MiB upload batch must arrive within it)")
	fs.StringVar(&o.MetricsListen, "metrics-listen", "", "also serve Prometheus /metrics without a token, in plain HTTP, on this address (e.g. 127.0.0.1:9464); /metrics on the main address needs an admin token")
	fs.StringVar(&o.GCGrace, "gc-grace", "1h", "gc keeps packs younger than this: uploads of captures not committed yet")
}

func cmdServe(ctx context.Context, args []string) error {
	var o serveOptions
	fs := newFlags("serve", serveArgs)
	o.AddFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	return runServe(ctx, &o, os.Stdout)
}

// serveLimits are the parsed capacity and maintenance flags.
type serveLimits struct {
	minFree, quota, maxSize uint64
	retention, every, grace time.Duration
}

// check validates the flags and parses the limits.
func (o *serveOptions) check() (serveLimits, error) {
	var limits serveLimits
	if err := needStore(o.Store); err != nil {
		return limits, err
	}
	if store.IsS3(o.Store) && o.MinFree != "" {
		return limits, usagef("--min-free has no meaning for a store on S3 (a bucket has no free space): use --max-store-bytes")
	}
	tlsModes := 0
	for _, on := range []bool{o.CertFile != "" || o.KeyFile != "", o.SelfSigned, o.Insecure} {
		if on {
			tlsModes++
		}
	}
	if tlsModes != 1 {
		return limits, usagef("give exactly one of --tls-cert/--tls-key, --tls-self-signed or --insecure (loopback only)")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return limits, usagef("--tls-cert and --tls-key go together")
	}
	for _, f := range []struct {
		name, val string
		dst       *uint64
	}{{"--min-free", o.MinFree, &limits.minFree}, {"--quota", o.Quota, &limits.quota}, {"--max-store-bytes", o.MaxStoreBytes, &limits.maxSize}} {
		if f.val == "" {
			continue
		}
		n, err := humanize.ParseBytes(f.val)
		if err != nil || n == 0 {
			return limits, usagef("%s %q: want a size like 50GiB", f.name, f.val)
		}
		*f.dst = n
	}
	for _, f := range []struct {
		name, val string
		dst       *time.Duration
	}{{"--retention", o.Retention, &limits.retention}, {"--gc-every", o.GCEvery, &limits.every}, {"--gc-grace", o.GCGrace, &limits.grace}} {
		if f.val == "" {
			continue
		}
		d, err := parseDays(f.val)
		if err != nil {
			return limits, usagef("%s: %v", f.name, err)
		}
		*f.dst = d
	}
	if limits.retention > 0 && limits.every == 0 {
		return limits, usagef("--retention needs --gc-every (how often to apply it), e.g. --gc-every 24h")
	}
	if o.MaxRecords < 0 {
		return limits, usagef("--max-records %d: want 0 (no limit) or more", o.MaxRecords)
	}
	if o.Insecure && !loopback(o.Listen) {
		return limits, usagef("--insecure serves plain HTTP and is allowed only on a loopback address such as 127.0.0.1:8443, not %q", o.Listen)
	}
	return limits, nil
}

// logHandler is the request log handler of --log-format.
func (o *serveOptions) logHandler() (slog.Handler, error) {
	switch o.LogFormat {
	case "text":
		return slog.NewTextHandler(os.Stderr, nil), nil
	case "json":
		return slog.NewJSONHandler(os.Stderr, nil), nil
	}
	return nil, usagef("--log-format %q: want text or json", o.LogFormat)
}

// tlsConfig loads (or with --tls-self-signed creates in dir) the server
// certificate and prints its fingerprint; nil with --insecure. An
// encrypted store's self-signed key is sealed with its keys (sk).
func (o *serveOptions) tlsConfig(dir string, sk *storeKeys, stdout io.Writer) (*tls.Config, error) {
	if o.Insecure {
		return nil, nil
	}
	var cert tls.Certificate
	var err error
	if o.SelfSigned {
		var certPEM, keyPEM []byte
		if certPEM, keyPEM, err = selfSignedCert(dir, o.Hosts, sk); err != nil {
			return nil, err
		}
		cert, err = tls.X509KeyPair(certPEM, keyPEM)
	} else {
		cert, err = tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	fp := sha256.Sum256(cert.Certificate[0])
	fmt.Fprintf(stdout, "tls fingerprint %x\n", fp)
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func runServe(ctx context.Context, o *serveOptions, stdout io.Writer) error {
	limits, err := o.check()
	if err != nil {
		return err
	}
	handler, err := o.logHandler()
	if err != nil {
		return err
	}
	logger := slog.New(handler)
	d, err := store.OpenDir("serve", o.Store, store.Options{Unlock: o.unlock(), S3: o.S3.opts()})
	if err != nil {
		return err
	}
	defer d.Close()
	kr, storeID, err := d.Keyring()
	if err != nil {
		return err
	}
	var sk *storeKeys
	if kr != nil {
		sk = &storeKeys{kr: kr, storeID: storeID}
	}
	tlsConf, err := o.tlsConfig(d.CacheDir(), sk, stdout) // tls/ is this machine's
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	srv, err := d.NewServer(server.Options{Log: logger, RestoreOnly: o.RestoreOnly, SessionIdle: o.SessionIdle,
		MaxRecords: o.MaxRecords, MinFree: limits.minFree, Quota: limits.quota, MaxStoreBytes: limits.maxSize, GCGrace: limits.grace})
	if err != nil {
		ln.Close()
		return err
	}
	// The background work ends before the store closes (deferred above,
	// so run after this): a refresh or gc must not meet a closed index.
	bgCtx, stopBG := context.WithCancel(ctx)
	var bg sync.WaitGroup
	defer func() { stopBG(); bg.Wait() }()
	bg.Go(func() { srv.RunConsole(bgCtx) })
	if limits.every > 0 {
		bg.Go(func() { srv.Maintain(bgCtx, limits.every, limits.retention, 0.5) })
	}
	bg.Go(func() { d.KeepFresh(bgCtx, store.S3RefreshEvery, logger) }) // a store on S3 only
	if o.MetricsListen != "" {
		stop, err := serveMetrics(o.MetricsListen, srv, stdout)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	hs := &http.Server{
		Handler:   srv,
		TLSConfig: tlsConf,
		// Slow or stalled clients cannot hold connections for ever.
		ReadHeaderTimeout: o.HeaderTimeout,
		ReadTimeout:       o.RequestTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
	}
	scheme := "https"
	if tlsConf == nil {
		scheme = "http"
	}
	fmt.Fprintf(stdout, "smp serve: store %s listening on %s://%s\n", d.Location(), scheme, ln.Addr())
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}
	return serveUntilDone(ctx, hs, ln, logger)
}

// serveMetrics serves /metrics without a token on addr; stop closes it.
func serveMetrics(addr string, srv *server.Server, stdout io.Writer) (stop func(), err error) {
	mln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", srv.Metrics().Handler())
	ms := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = ms.Serve(mln) }()
	fmt.Fprintf(stdout, "smp serve: metrics on http://%s/metrics\n", mln.Addr())
	return func() { ms.Close() }, nil
}

// serveUntilDone serves on ln until ctx ends, then shuts down: in-flight
// requests finish (an upload's blobs are committed before its answer);
// after the grace period the rest are cut, and what they had not
// committed is discarded with the open packs on close.
func serveUntilDone(ctx context.Context, hs *http.Server, ln net.Listener, logger *slog.Logger) error {
	errc := make(chan error, 1)
	go func() {
		if hs.TLSConfig != nil {
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
