package main

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowProxy forwards TCP connections to a server, the client's bytes at a
// bounded rate and only while it is not paused: a capture through it is in
// progress for as long as a test needs, and holds still while paused. The
// server's answers pass as they come. TLS passes through untouched.
type slowProxy struct {
	addr      string
	bytesPerS int
	sent      atomic.Int64 // client bytes forwarded
	mu        sync.Mutex
	resume    chan struct{} // closed when running; open while paused
}

func startSlowProxy(t *testing.T, target string, bytesPerS int) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{addr: ln.Addr().String(), bytesPerS: bytesPerS, resume: make(chan struct{})}
	close(p.resume)
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); p.Resume(); conns.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			conns.Add(2)
			go func() { defer conns.Done(); p.throttle(s, c); s.(*net.TCPConn).CloseWrite() }()
			go func() { defer conns.Done(); io.Copy(c, s); c.Close(); s.Close() }()
		}
	}()
	return p
}

// throttle copies src to dst in 16 KiB steps at p.bytesPerS, waiting
// while the proxy is paused.
func (p *slowProxy) throttle(dst, src net.Conn) {
	buf := make([]byte, 16<<10)
	step := time.Duration(len(buf)) * time.Second / time.Duration(p.bytesPerS)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.resume
			p.mu.Unlock()
			<-gate
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			p.sent.Add(int64(n))
			time.Sleep(step * time.Duration(n) / time.Duration(len(buf)))
		}
		if err != nil {
			return
		}
	}
}

// Pause holds every client byte from now until Resume.
func (p *slowProxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.resume:
		p.resume = make(chan struct{})
	default:
	}
}

// Resume lets client bytes through again.
func (p *slowProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.resume:
	default:
		close(p.resume)
	}
}
