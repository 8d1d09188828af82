package seaweedtest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is what FaultProxy does to one request.
type Fault struct {
	// Delay holds the request this long before anything else.
	Delay time.Duration
	// Status answers with this status and an S3 error body (Code)
	// without forwarding the request.
	Status int
	Code   string
	// Reset forwards the request and cuts the connection (TCP RST)
	// after half of the response body.
	Reset bool
	// Drop forwards the request and cuts the connection before any of
	// the response: the request took effect, its answer is lost.
	Drop bool
	// Stall forwards the request and pauses this long after half of the
	// response body.
	Stall time.Duration
}

// FaultProxy is a fault-injecting HTTP proxy in front of a real S3
// service: Decide chooses a Fault for each request (nil: none). The S3
// client signs for the proxy's address and the proxy keeps the Host
// header, so signatures still verify upstream.
type FaultProxy struct {
	Addr   string // host:port the clients use
	Decide func(r *http.Request) Fault

	target   string
	l        net.Listener
	srv      *http.Server
	tr       *http.Transport
	Requests atomic.Int64 // requests seen
	Faults   atomic.Int64 // requests given a fault
	mu       sync.Mutex
}

// NewFaultProxy listens on a loopback port and forwards to target
// (host:port).
func NewFaultProxy(target string) (*FaultProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &FaultProxy{Addr: l.Addr().String(), target: target, l: l, tr: &http.Transport{}}
	p.srv = &http.Server{Handler: p}
	go p.srv.Serve(l)
	return p, nil
}

// SetDecide replaces the fault policy.
func (p *FaultProxy) SetDecide(f func(r *http.Request) Fault) {
	p.mu.Lock()
	p.Decide = f
	p.mu.Unlock()
}

// Close stops the proxy.
func (p *FaultProxy) Close() error {
	p.tr.CloseIdleConnections()
	return p.srv.Close()
}

func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.Requests.Add(1)
	p.mu.Lock()
	decide := p.Decide
	p.mu.Unlock()
	var f Fault
	if decide != nil {
		f = decide(r)
	}
	if f != (Fault{}) {
		p.Faults.Add(1)
	}
	if f.Delay > 0 {
		time.Sleep(f.Delay)
	}
	if f.Status != 0 {
		io.Copy(io.Discard, r.Body)
		code := f.Code
		if code == "" {
			code = "ServiceUnavailable"
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(f.Status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by the fault proxy</Message><Resource>%s</Resource></Error>`, code, r.URL.Path)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = "http", p.target
	if r.ContentLength == 0 {
		out.Body = nil
	}
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if f.Drop {
		cut(w)
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	if f.Reset || f.Stall > 0 {
		half := resp.ContentLength / 2
		io.CopyN(w, resp.Body, half)
		http.NewResponseController(w).Flush()
		if f.Reset {
			cut(w)
			return
		}
		select {
		case <-time.After(f.Stall):
		case <-r.Context().Done():
			return
		}
	}
	io.Copy(w, resp.Body)
}

// cut closes the client's connection with a TCP reset.
func cut(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}
