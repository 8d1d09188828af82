package bench

import (
	"fmt"
	"strings"
	"testing"
)

// TestListenWatcher finds the URL however the output is cut.
func TestListenWatcher(t *testing.T) {
	out := "tls fingerprint ab\nsmp serve: store /s listening on http://127.0.0.1:4321\nmore\n"
	for cut := range len(out) {
		w := &listenWatcher{found: make(chan string, 1)}
		w.Write([]byte(out[:cut]))
		w.Write([]byte(out[cut:]))
		select {
		case u := <-w.found:
			if u != "http://127.0.0.1:4321" {
				t.Fatalf("cut %d: %q", cut, u)
			}
		default:
			t.Fatalf("cut %d: no URL", cut)
		}
	}
}

// TestWarnLines keeps the last three warnings of a log.
func TestWarnLines(t *testing.T) {
	var w warnLines
	log := "time=1 level=INFO msg=request status=200\ntime=1 level=WARN msg=request method=GET path=/v1/record status=404\n"
	for i := range 5 {
		log += fmt.Sprintf("time=2 level=WARN msg=request status=409 n=%d\ntime=3 level=INFO msg=request\n", i)
	}
	log += "time=4 level=WARN msg=request method=GET path=/v1/record status=404\ntime=4 level=ERROR msg=\"fetch read\"\nhttp: panic serving 127.0.0.1:1: boom"
	for _, part := range strings.SplitAfter(log, "=") {
		w.Write([]byte(part))
	}
	w.Write([]byte("\n"))
	if got, want := w.String(), "time=2 level=WARN msg=request status=409 n=4 / time=4 level=ERROR msg=\"fetch read\" / http: panic serving 127.0.0.1:1: boom"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
