package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// problems collects the problem lines of a capture, restore or verify
// repair, the one place they are said: each is printed on stderr as it
// happens (erasing the progress bar on a terminal) unless the output is
// JSON, where the command lists them under "problems", and goes to the
// progress log with the action taken. Safe for concurrent use.
type problems struct {
	mu    sync.Mutex
	lines []string
	quiet bool         // --json: collect only
	log   *progressLog // nil: none
}

func newProblems(quiet bool) *problems { return &problems{lines: []string{}, quiet: quiet} }

// add reports one path: kind is the line's first word (error, warning,
// skipped), action what was done about it (for the progress log).
func (p *problems) add(kind, path string, err error, action string, warning bool) {
	line := fmt.Sprintf("%s: %s: %v", kind, path, err)
	p.mu.Lock()
	p.lines = append(p.lines, line)
	p.mu.Unlock()
	if !p.quiet {
		printProblem(line)
	}
	p.log.problem(path, err, action, warning)
}

// list returns the lines reported so far (never nil).
func (p *problems) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string{}, p.lines...)
}

// isTerminal reports whether stderr, where the progress bar and the
// problem lines go, is a terminal: only there may smp draw with carriage
// returns and erase sequences; a log file or pipe gets plain lines.
func isTerminal() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

// printProblem writes one problem line to stderr. On a terminal it first
// erases the progress bar's line so the two do not mix.
func printProblem(line string) {
	if isTerminal() {
		fmt.Fprintf(os.Stderr, "\r\033[K%s\n", line)
		return
	}
	fmt.Fprintln(os.Stderr, line)
}

func bytesStr(n uint64) string { return humanize.IBytes(n) }

func rate(n uint64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return humanize.IBytes(uint64(float64(n)/d.Seconds())) + "/s"
}

// liveBar draws a progress bar on a terminal until stop is called. get
// returns done and total bytes and a short description.
func liveBar(enabled bool, get func() (done, total uint64, desc string)) (stop func()) {
	if !enabled {
		return func() {}
	}
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
	)
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				bar.Clear()
				return
			case <-t.C:
				done, total, desc := get()
				if total > 0 {
					bar.ChangeMax64(int64(total))
				}
				bar.Describe(desc)
				_ = bar.Set64(int64(done))
			}
		}
	}()
	return func() { close(quit); <-finished; fmt.Fprint(os.Stderr, "\r\033[K") }
}
