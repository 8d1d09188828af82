package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"smp/cas"
	"smp/remote/wire"
)

// Options say how to reach one SMP.
type Options struct {
	URL   string // https://host:port (http:// only for a loopback --insecure server)
	Token string
	// Fingerprint pins the server certificate by the hex SHA-256 of its DER
	// bytes (as `smp serve --tls-self-signed` prints it); colons allowed.
	Fingerprint string
	CAFile      string // PEM bundle to verify the server with instead
	// Streams bounds parallel requests of one kind (uploads, fetches).
	Streams int
}

// Client talks to one SMP. It is safe for concurrent use.
type Client struct {
	base   string
	token  string
	http   *http.Client
	info   wire.Info
	hasher *cas.Hasher
	opts   Options
}

// ErrCapacity marks a refusal another SMP might not give (restore-only,
// full, over quota): a client with a fallback list tries the next one.
var ErrCapacity = errors.New("SMP refused for capacity")

// Error is a refusal by the server, with its one-line reason.
type Error struct {
	Status   int
	Msg      string
	Capacity bool
}

func (e *Error) Error() string {
	switch e.Status {
	case http.StatusUnauthorized:
		return "SMP refused the token: " + e.Msg
	case http.StatusForbidden:
		return "not allowed: " + e.Msg
	}
	return e.Msg
}

// Is makes errors.Is(err, ErrCapacity) true for capacity refusals.
func (e *Error) Is(target error) bool { return target == ErrCapacity && e.Capacity }

// IsRemote reports whether a --store value names an SMP server.
func IsRemote(store string) bool {
	return strings.HasPrefix(store, "https://") || strings.HasPrefix(store, "http://")
}

// Dial connects to the SMP and reads its info; a wrong token fails here.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("store URL %q: want https://HOST:PORT", opts.URL)
	}
	if opts.Streams <= 0 {
		opts.Streams = 4
	}
	tlsConf, err := tlsConfig(opts)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4 * opts.Streams,
		ForceAttemptHTTP2:   false, // HTTP/1.1 streams: one request per connection, no head-of-line blocking
	}
	c := &Client{base: strings.TrimRight(opts.URL, "/") + wire.Prefix, token: opts.Token, http: &http.Client{Transport: tr}, opts: opts}
	if err := c.getJSON(ctx, "/info", &c.info); err != nil {
		return nil, err
	}
	if c.info.Protocol != wire.Version {
		return nil, fmt.Errorf("SMP %s speaks protocol v%d, this smp v%d: upgrade the older side", opts.URL, c.info.Protocol, wire.Version)
	}
	if len(c.info.HashKey) != 32 {
		return nil, fmt.Errorf("SMP %s sent a hash key of %d bytes: %w", opts.URL, len(c.info.HashKey), wire.ErrMalformed)
	}
	if err := c.info.Chunker.Validate(); err != nil {
		return nil, fmt.Errorf("SMP %s chunker: %w", opts.URL, err)
	}
	var key [32]byte
	copy(key[:], c.info.HashKey)
	c.hasher = cas.NewHasher(key)
	// A store with a keyed gear table (keyed_gear in /v1/info) chunks with
	// the table derived from its hash key: the client must cut the same
	// chunks as the server's own captures, or dedupe is lost.
	c.info.Chunker = c.info.Chunker.WithGearKey(key)
	return c, nil
}

func tlsConfig(opts Options) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s holds no PEM certificate", opts.CAFile)
		}
		conf.RootCAs = pool
	}
	if opts.Fingerprint != "" {
		want, err := hex.DecodeString(strings.ReplaceAll(strings.ToLower(opts.Fingerprint), ":", ""))
		if err != nil || len(want) != sha256.Size {
			return nil, fmt.Errorf("--tls-fingerprint %q: want the 64 hex digits smp serve printed", opts.Fingerprint)
		}
		// The pin replaces chain verification: a self-signed server
		// certificate is trusted exactly when its hash matches.
		conf.InsecureSkipVerify = true
		conf.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("server sent no certificate")
			}
			got := sha256.Sum256(raw[0])
			if !bytes.Equal(got[:], want) {
				return fmt.Errorf("server certificate fingerprint %x does not match --tls-fingerprint", got)
			}
			return nil
		}
	}
	return conf, nil
}

// Info returns what the server said about itself and the token.
func (c *Client) Info() wire.Info { return c.info }

// URL returns the SMP's base URL.
func (c *Client) URL() string { return c.opts.URL }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path, ctype string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("SMP %s: %w", c.opts.URL, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e wire.Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: HTTP %d", method, path, resp.StatusCode)
		}
		return nil, &Error{Status: resp.StatusCode, Msg: e.Error, Capacity: e.Capacity}
	}
	return resp, nil
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeJSON(resp.Body, v)
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, path, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	return decodeJSON(resp.Body, out)
}

func decodeJSON(r io.Reader, v any) error {
	if err := json.NewDecoder(io.LimitReader(r, wire.MaxRecordBytes*4)).Decode(v); err != nil {
		return fmt.Errorf("SMP answer: %v: %w", err, wire.ErrMalformed)
	}
	return nil
}

// Records lists the records this token may restore (computer "" = all).
func (c *Client) Records(ctx context.Context, computer string) ([]wire.RecordEntry, error) {
	var out []wire.RecordEntry
	err := c.getJSON(ctx, "/records?computer="+url.QueryEscape(computer), &out)
	for _, e := range out {
		if e.Record == nil {
			return nil, fmt.Errorf("SMP listed record %s without its contents: %w", e.ID, wire.ErrMalformed)
		}
	}
	return out, err
}

// FindRecord resolves an ID (or unique prefix), or the newest record of
// computer when ref is empty.
func (c *Client) FindRecord(ctx context.Context, ref, computer string) (cas.ID, wire.RecordEntry, error) {
	var e wire.RecordEntry
	q := url.Values{"ref": {ref}, "computer": {computer}}
	if err := c.getJSON(ctx, "/record?"+q.Encode(), &e); err != nil {
		return cas.ID{}, e, err
	}
	id, err := cas.ParseID(e.ID)
	if err != nil || e.Record == nil {
		return cas.ID{}, e, fmt.Errorf("SMP answered record %q: %w", e.ID, wire.ErrMalformed)
	}
	return id, e, nil
}

// Release marks a record restored (its retention clock starts).
func (c *Client) Release(ctx context.Context, id cas.ID) error {
	resp, err := c.do(ctx, http.MethodPost, "/records/"+id.String()+"/release", "", nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Remove drops a record (admin tokens only).
func (c *Client) Remove(ctx context.Context, id cas.ID) error {
	resp, err := c.do(ctx, http.MethodDelete, "/records/"+id.String(), "", nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Stats returns the store's figures (admin only), with per-computer and
// per-record usage when usage is set, and the count of released records
// past retention when it is positive.
func (c *Client) Stats(ctx context.Context, usage bool, retention time.Duration) (*wire.StatsReply, error) {
	q := url.Values{}
	if usage {
		q.Set("usage", "1")
	}
	if retention > 0 {
		q.Set("retention", retention.String())
	}
	var out wire.StatsReply
	if err := c.getJSON(ctx, "/stats?"+q.Encode(), &out); err != nil {
		return nil, err
	}
	if out.Stats == nil {
		return nil, fmt.Errorf("SMP sent no statistics")
	}
	return &out, nil
}

// Sum returns the store's ID of a data chunk.
func (c *Client) Sum(b []byte) cas.ID { return c.hasher.Sum(b) }

// GC asks the SMP to run its maintenance (admin only): retention, orphan
// link sets, gc.
func (c *Client) GC(ctx context.Context, req wire.GCRequest) (*wire.GCReply, error) {
	var out wire.GCReply
	if err := c.postJSON(ctx, "/gc", req, &out); err != nil {
		return nil, err
	}
	if out.GCReport == nil {
		return nil, fmt.Errorf("SMP sent no gc report")
	}
	return &out, nil
}
