package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// progressLog writes USMT-style progress lines (see docs/PROGRESS.md) so
// deployment task sequences that parse scanstate/loadstate progress files
// keep working: one line per event, comma separated:
//
//	25 Nov 2026 20:51:02, 00:00:03, [0x000000] PHASE, Capture
//	25 Nov 2026 20:51:02, 00:00:03, [0x000000] totalSizeInMBToTransfer, 512.00
//	25 Nov 2026 20:51:02, 00:00:03, [0x000000] totalPercentageCompleted, 40
//	25 Nov 2026 20:51:02, 00:00:03, [0x000000] totalMinutesRemaining, 1
//	25 Nov 2026 20:51:02, 00:00:03, [0x080000] error, /home/a/f, permission denied
//	25 Nov 2026 20:51:02, 00:00:03, [0x080000] action, /home/a/f, skipped
//	25 Nov 2026 20:51:04, 00:00:05, [0x000000] PHASE, Done
type progressLog struct {
	mu    sync.Mutex
	f     *os.File
	w     *bufio.Writer
	start time.Time
	stop  chan struct{}
	done  chan struct{}
}

// openProgressLog starts a log at path ("" = none) for phase; get returns
// bytes done and total so far.
func openProgressLog(path, phase string, get func() (done, total uint64)) (*progressLog, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, usagef("--progress-log: %v", err)
	}
	l := &progressLog{f: f, w: bufio.NewWriter(f), start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	l.line(0, "PHASE", phase)
	go func() {
		defer close(l.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				l.snapshot(get, true)
				return
			case <-t.C:
				l.snapshot(get, false)
			}
		}
	}()
	return l, nil
}

func (l *progressLog) line(code int, key, value string) {
	now := time.Now()
	el := now.Sub(l.start).Round(time.Second)
	h, m, s := int(el.Hours()), int(el.Minutes())%60, int(el.Seconds())%60
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s, %02d:%02d:%02d, [0x%06x] %s, %s\n", now.Format("02 Jan 2006 15:04:05"), h, m, s, code, key, value)
	l.w.Flush() // readers tail this file while we run
}

func (l *progressLog) snapshot(get func() (uint64, uint64), final bool) {
	done, total := get()
	pct := 100
	if total > 0 && !final {
		pct = min(int(done*100/total), 99)
	}
	remaining := 0
	if el := time.Since(l.start); done > 0 && total > done && !final {
		remaining = int((time.Duration(float64(el) * float64(total-done) / float64(done))).Minutes() + 0.5)
	}
	l.line(0, "totalSizeInMBToTransfer", fmt.Sprintf("%.2f", float64(total)/(1<<20)))
	l.line(0, "totalPercentageCompleted", fmt.Sprint(pct))
	l.line(0, "totalMinutesRemaining", fmt.Sprint(remaining))
}

// problem logs a skipped path as an error (or warning) line and the action
// taken.
func (l *progressLog) problem(path string, err error, action string, warning bool) {
	if l == nil {
		return
	}
	msg := strings.NewReplacer("\n", " ", ",", ";").Replace(err.Error())
	key := "error"
	if warning {
		key = "warning"
	}
	l.line(0x080000, key, path+", "+msg)
	l.line(0x080000, "action", path+", "+action)
}

// finish writes the final figures and the outcome and closes the file.
func (l *progressLog) finish(err error) {
	if l == nil {
		return
	}
	close(l.stop)
	<-l.done
	if err != nil {
		l.line(0x000001, "PHASE", "Failed, "+strings.ReplaceAll(err.Error(), "\n", " "))
	} else {
		l.line(0, "PHASE", "Done")
	}
	l.f.Close()
}
