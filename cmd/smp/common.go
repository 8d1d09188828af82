package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"smp/repo"
)

func openStore(dir string) (*repo.Repo, error) { return openStoreWith(dir, repo.Open) }

// openStoreReadOnly opens a local store for a command that only reads it.
func openStoreReadOnly(dir string) (*repo.Repo, error) {
	return openStoreWith(dir, repo.OpenReadOnly)
}

func openStoreWith[S any](dir string, open func(string) (S, error)) (S, error) {
	if err := needStore(dir); err != nil {
		var zero S
		return zero, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		var zero S
		return zero, err
	}
	return open(abs)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
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
