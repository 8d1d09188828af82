package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serveProc is a running `smp serve`.
type serveProc struct {
	cmd     *exec.Cmd
	url     string
	start   time.Time
	exited  chan error // Wait's result
	stderr  *bytes.Buffer
	warns   *warnLines // its log's warnings and errors
	stopped bool
	res     child
	err     error
}

// startServe runs `smp serve --insecure` on a free loopback port and
// waits until it listens.
func (r *runner) startServe(ctx context.Context, store string) (*serveProc, error) {
	return r.startServeOn(ctx, "", store)
}

// startServeOn is startServe with the server pinned to cpus ("" for no
// pinning).
func (r *runner) startServeOn(ctx context.Context, cpus, store string) (*serveProc, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := &serveProc{exited: make(chan error, 1), stderr: &bytes.Buffer{}, warns: &warnLines{}}
	spec := r.pinned(cpus, r.opts.Bin, "serve", "--store", store, "--listen", "127.0.0.1:0", "--insecure")
	p.cmd = exec.Command(spec.name, spec.args...)
	p.cmd.Env = r.env
	lw := &listenWatcher{found: make(chan string, 1)}
	// The request log goes to stderr: keep its tail, and its warnings
	// for a client's failure (a refused request may reach the client as a
	// reset connection only).
	p.cmd.Stdout, p.cmd.Stderr = lw, io.MultiWriter(&tailWriter{buf: p.stderr, max: 64 << 10}, p.warns)
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("smp serve: %w", err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	select {
	case p.url = <-lw.found:
		return p, nil
	case err := <-p.exited:
		return nil, &childError{cmd: "smp serve", err: fmt.Errorf("exited before listening: %v", err), stderr: tail(p.stderr)}
	case <-timeout.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		return nil, &childError{cmd: "smp serve", err: errors.New("not listening after 30 s"), stderr: tail(p.stderr)}
	case <-ctx.Done():
		_ = p.cmd.Process.Kill()
		<-p.exited
		return nil, ctx.Err()
	}
}

// stop sends SIGTERM, waits for a clean exit and returns the server's
// usage over its whole life; later calls return the same.
func (p *serveProc) stop() (child, error) {
	if p.stopped {
		return p.res, p.err
	}
	p.stopped = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timeout := time.NewTimer(2 * time.Minute)
	defer timeout.Stop()
	var err error
	select {
	case err = <-p.exited:
	case <-timeout.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		err = errors.New("did not stop within 2 minutes of SIGTERM")
	}
	p.res = child{wall: time.Since(p.start)}
	if ps := p.cmd.ProcessState; ps != nil {
		p.res.cpu = ps.UserTime() + ps.SystemTime()
		p.res.maxRSS = maxRSSKiB(ps)
	}
	if err != nil {
		p.err = &childError{cmd: "smp serve", err: err, stderr: tail(p.stderr)}
	}
	return p.res, p.err
}

// clientError adds the server's last warnings to a client's error.
func (p *serveProc) clientError(err error) error {
	if w := p.warns.String(); w != "" {
		return fmt.Errorf("%w; smp serve logged: %s", err, w)
	}
	return err
}

// warnLines keeps the last few lines of a log that are warnings, errors
// or a panic, leaving out the expected "no record yet" answers.
type warnLines struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
}

func (w *warnLines) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		line, rest, ok := bytes.Cut(w.partial, []byte("\n"))
		if !ok {
			break
		}
		w.partial = rest
		l := string(line)
		if strings.Contains(l, "path=/v1/record status=404") {
			continue // a first capture's look-up of its parent record
		}
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.Contains(l, "panic") {
			if len(l) > 400 {
				l = l[:400] + "..."
			}
			w.lines = append(w.lines, l)
			if len(w.lines) > 3 {
				w.lines = w.lines[1:]
			}
		}
	}
	if len(w.partial) > 64<<10 {
		w.partial = nil
	}
	return len(p), nil
}

func (w *warnLines) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, " / ")
}

// listenWatcher is smp serve's stdout: it sends the URL of the
// "listening on URL" line to found, once.
type listenWatcher struct {
	mu    sync.Mutex
	buf   []byte
	found chan string
	done  bool
}

func (w *listenWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		line, rest, ok := bytes.Cut(w.buf, []byte("\n"))
		if !ok {
			break
		}
		w.buf = rest
		if _, url, ok := strings.Cut(string(line), "listening on "); ok {
			w.found <- strings.TrimSpace(url)
			w.done, w.buf = true, nil
			break
		}
	}
	if len(w.buf) > 64<<10 {
		w.buf = nil
	}
	return len(p), nil
}
