package bench

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// medianRow makes a row of the run with the median wall time among runs
// (an odd number of them), noting how many there were and their range.
func medianRow(runs []child, tool, scenario string, logical int64) Row {
	sorted := slices.SortedFunc(slices.Values(runs), func(a, b child) int { return cmp.Compare(a.wall, b.wall) })
	var a agg
	a.add(sorted[len(sorted)/2])
	row := a.row(tool, scenario, logical)
	row.Note = fmt.Sprintf("median of %d runs (%.2f-%.2f s)", len(sorted), sorted[0].wall.Seconds(), sorted[len(sorted)-1].wall.Seconds())
	return row
}

// tail is the last 600 bytes of a child's stderr.
func tail(b *bytes.Buffer) string {
	msg := strings.TrimSpace(b.String())
	if len(msg) > 600 {
		msg = "..." + msg[len(msg)-600:]
	}
	return msg
}

// settle prepares a timed step: it flushes earlier steps' dirty pages and
// waits for the work directory's disk to finish what it has in flight, so
// that their writeback is not charged to this step (in the ABBA rounds,
// to the other store's round), and reads paths so every tool starts from
// the same warm page cache (this machine evicts pages idle for about a
// minute). None of it is timed.
func (r *runner) settle(paths ...string) error {
	r.event("settle " + strings.Join(paths, " "))
	syncDisks()
	waitDiskIdle(r.work, diskIdleMax)
	buf := make([]byte, 1<<20)
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// settleRestore is settle for a restore step, which writes as many bytes
// as it reads: where the run may drop the page cache (root), it does so
// first, so that the restore starts with free memory and a cache holding
// what it reads. Otherwise the pages of earlier steps' files would be
// reclaimed inside the timed child, on its CPU time (direct reclaim), by
// an amount that depends on what ran before.
func (r *runner) settleRestore(paths ...string) error {
	if r.canDropCaches() {
		if err := dropCaches(); err != nil {
			return err
		}
	}
	return r.settle(paths...)
}

// The disk counts as idle after diskIdleSamples samples diskIdleSample
// apart without a request in flight; settle waits for that at most
// diskIdleMax (other processes' I/O on a shared machine may never stop).
const (
	diskIdleSamples = 5
	diskIdleSample  = 20 * time.Millisecond
	diskIdleMax     = 5 * time.Second
)

// event reports a step of the run to r.trace (tests: the order of
// settles and children), when set.
func (r *runner) event(e string) {
	if r.trace != nil {
		r.trace(e)
	}
}

// child is one finished child process.
type child struct {
	wall, cpu time.Duration
	maxRSS    int64 // KiB
	stdout    []byte
}

type execSpec struct {
	name string
	args []string
	env  []string // added to the runner's environment
	dir  string   // working directory ("": the bench process's)
}

// exec runs a child to completion; a non-zero exit is an error carrying
// the tail of its stderr.
func (r *runner) exec(ctx context.Context, s execSpec) (child, error) {
	if err := ctx.Err(); err != nil {
		return child{}, err
	}
	r.event("exec " + filepath.Base(s.name) + " " + strings.Join(s.args, " "))
	cmd := exec.CommandContext(ctx, s.name, s.args...)
	cmd.Env = append(slices.Clip(r.env), s.env...)
	cmd.Dir = s.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &tailWriter{buf: &stderr, max: 64 << 10}
	start := time.Now()
	err := cmd.Run()
	c := child{wall: time.Since(start), stdout: stdout.Bytes()}
	if ps := cmd.ProcessState; ps != nil {
		c.cpu = ps.UserTime() + ps.SystemTime()
		c.maxRSS = maxRSSKiB(ps)
	}
	if err != nil {
		if ctx.Err() != nil {
			return c, ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 600 {
			msg = "..." + msg[len(msg)-600:]
		}
		return c, &childError{cmd: filepath.Base(s.name) + " " + strings.Join(s.args, " "), err: err, stderr: msg}
	}
	return c, nil
}

// childError is a child that failed: its command line, exit status and
// the tail of its stderr.
type childError struct {
	cmd    string
	err    error
	stderr string
}

func (e *childError) Error() string { return fmt.Sprintf("%s: %v: %s", e.cmd, e.err, e.stderr) }
func (e *childError) Unwrap() error { return e.err }

// output runs a child and returns its stdout.
func (r *runner) output(ctx context.Context, name string, args ...string) (string, error) {
	c, err := r.exec(ctx, execSpec{name: name, args: args})
	return string(c.stdout), err
}

// combined runs a child and returns stdout and stderr together.
func (r *runner) combined(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = r.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// tailWriter keeps at most about max bytes, the latest.
type tailWriter struct {
	buf *bytes.Buffer
	max int
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf.Write(p)
	if t.buf.Len() > 2*t.max {
		b := slices.Clone(t.buf.Bytes()[t.buf.Len()-t.max:])
		t.buf.Reset()
		t.buf.Write(b)
	}
	return len(p), nil
}

// agg sums the children of one scenario.
type agg struct {
	wall, cpu time.Duration
	maxRSS    int64 // KiB
	runs      int
}

func (a *agg) add(c child) {
	a.wall += c.wall
	a.cpu += c.cpu
	a.maxRSS = max(a.maxRSS, c.maxRSS)
	a.runs++
}

func (a agg) row(tool, scenario string, logical int64) Row {
	row := Row{
		Tool: tool, Scenario: scenario, Status: StatusOK, Runs: a.runs,
		WallSeconds: a.wall.Seconds(), CPUSeconds: a.cpu.Seconds(), PeakRSSMiB: kibToMiB(a.maxRSS),
		LogicalBytes: logical,
	}
	if a.wall > 0 {
		row.MBps = float64(logical) / 1e6 / a.wall.Seconds()
	}
	return row
}

func kibToMiB(k int64) float64 { return float64(k) / 1024 }

func ratio(a, b int64) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
