package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ToolSMPS3 is smp on a store on S3: the same captures and restore as
// smp's rows, the store's objects in a bucket of a SeaweedFS on loopback
// that the bench starts (from the binary .ci/seaweedfs.sh caches), its
// index in a local cache directory.
const ToolSMPS3 = "smp s3"

// weedVersion is the SeaweedFS build .ci/seaweedfs.sh caches.
const weedVersion = "v0.0.0-20261109003541-7506e5f91cd6"

// findWeed returns the weed binary: $SMP_WEED, or the cache of
// .ci/seaweedfs.sh ($SMP_WEED_CACHE, default ~/.cache/smp-seaweedfs).
func findWeed() (string, error) {
	if p := os.Getenv("SMP_WEED"); p != "" {
		return p, nil
	}
	cache := os.Getenv("SMP_WEED_CACHE")
	if cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(dir, "smp-seaweedfs")
	}
	p := filepath.Join(cache, "weed-"+weedVersion)
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
		return "", errors.New("no SeaweedFS binary: run .ci/seaweedfs.sh (about 4 minutes, once) or set SMP_WEED")
	}
	return p, nil
}

// weedServer is a `weed server -s3` on loopback, anonymous (no
// identities: every request is allowed), its data in a directory of the
// scratch directory.
type weedServer struct {
	cmd      *exec.Cmd
	done     chan struct{}
	endpoint string
	data     string // its volumes and filer store
}

func startWeed(bin, dir string) (*weedServer, error) {
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	// Grow volumes two at a time, at once (not seven, after a delay).
	toml := "[master.volume_growth]\ncopy_1 = 2\ncopy_2 = 2\ncopy_3 = 1\nallocation_deferral = \"0s\"\n"
	if err := os.WriteFile(filepath.Join(dir, "master.toml"), []byte(toml), 0o600); err != nil {
		return nil, err
	}
	ports, err := freeLoopbackPorts(8)
	if err != nil {
		return nil, err
	}
	p := func(i int) string { return strconv.Itoa(ports[i]) }
	args := []string{"server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + data,
		"-master.port=" + p(0), "-master.port.grpc=" + p(1), "-volume.port=" + p(2), "-volume.port.grpc=" + p(3),
		"-filer", "-filer.port=" + p(4), "-filer.port.grpc=" + p(5),
		"-s3", "-s3.port=" + p(6), "-s3.port.grpc=" + p(7), "-s3.port.iceberg=0", "-s3.port.lance=0",
		"-master.volumeSizeLimitMB=256", "-volume.max=100",
		"-filer.localSocket=" + filepath.Join(dir, "filer.sock"), "-s3.localSocket=" + filepath.Join(dir, "s3.sock"),
	}
	logf, err := os.Create(filepath.Join(dir, "weed.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	w := &weedServer{cmd: exec.Command(bin, args...), done: make(chan struct{}), endpoint: "127.0.0.1:" + p(6), data: data}
	w.cmd.Stdout, w.cmd.Stderr, w.cmd.Dir = logf, logf, dir
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { w.cmd.Wait(); close(w.done) }()
	return w, nil
}

// freeLoopbackPorts returns n distinct loopback ports free at the time of
// the call (the listeners are closed before it returns, for weed to take).
func freeLoopbackPorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// makeBucket creates bucket, waiting up to a minute for the gateway.
func (w *weedServer) makeBucket(ctx context.Context, bucket string) error {
	deadline := time.Now().Add(time.Minute)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-w.done:
			return errors.New("weed server exited (see weed.log in the scratch directory)")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+w.endpoint+"/"+bucket, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the S3 gateway did not make a bucket within a minute: %v", last)
}

// cpu is the CPU time the weed process used so far (0 when unknown).
func (w *weedServer) cpu() time.Duration {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(w.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(st)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond // clock ticks of 1/100 s
}

func (w *weedServer) stop() {
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		w.cmd.Process.Kill()
		<-w.done
	}
}

// smpS3 measures the capture and restore scenarios on a store on S3 (as
// smp's rows: unencrypted, every user captured in turn into a fresh
// store, the first user restored and compared with the corpus), each
// round into a fresh prefix of one bucket. Without a weed binary both rows
// are skipped with the reason.
func (r *runner) smpS3(ctx context.Context) error {
	bin, err := findWeed()
	if err != nil {
		for _, s := range []string{ScenarioCapture, ScenarioRestore} {
			r.add(Row{Tool: ToolSMPS3, Scenario: s, Status: StatusSkipped, Note: err.Error()})
		}
		return nil
	}
	dir := filepath.Join(r.work, "weed")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	w, err := startWeed(bin, dir)
	if err != nil {
		return fmt.Errorf("start SeaweedFS: %w", err)
	}
	defer w.stop()
	defer removeAll(dir)
	if err := w.makeBucket(ctx, "smp-bench"); err != nil {
		return err
	}
	var caps []agg
	var weedCap time.Duration
	var loc, cache string
	var records map[string]string
	var logical int64
	for k := range r.rounds() {
		loc = "s3://" + w.endpoint + "/smp-bench/r" + strconv.Itoa(k)
		cache = filepath.Join(r.work, "s3-cache-"+strconv.Itoa(k))
		flags := []string{"--s3-insecure", "--cache", cache}
		if _, err := r.output(ctx, r.opts.Bin, append(initArgs(loc, false), flags...)...); err != nil {
			return fmt.Errorf("smp init on S3: %w", err)
		}
		before := w.cpu()
		var a agg
		a, logical, _, _, records, err = r.smpCaptureAll(ctx, loc, false, append(r.chunked(), flags...)...)
		if err != nil {
			r.add(Row{Tool: ToolSMPS3, Scenario: ScenarioCapture, Status: StatusFailed, Note: err.Error()})
			return fmt.Errorf("smp capture on S3: %w", err)
		}
		weedCap += w.cpu() - before
		caps = append(caps, a)
		if k < r.rounds()-1 {
			removeAll(cache)
		}
	}
	defer removeAll(cache)
	a, walls := medianAgg(caps)
	row := a.row(ToolSMPS3, ScenarioCapture, logical)
	row.Note = r.s3Note(ScenarioCapture, row, weedCap/time.Duration(len(caps)), walls)
	r.add(row)
	return r.smpS3Restore(ctx, w, loc, cache, records)
}

// smpS3Restore measures the restore of the first user from the store on
// S3, compared with the corpus.
func (r *runner) smpS3Restore(ctx context.Context, w *weedServer, loc, cache string, records map[string]string) error {
	u := r.users[0]
	var rounds []agg
	var weed time.Duration
	for range r.rounds() {
		target := filepath.Join(r.work, "restore-smp-s3")
		if err := os.Mkdir(target, 0o755); err != nil {
			return err
		}
		if err := r.settleRestore(cache, w.data); err != nil {
			return err
		}
		before := w.cpu()
		c, err := r.exec(ctx, execSpec{name: r.opts.Bin, args: []string{"restore", "--store", loc, "--s3-insecure", "--cache", cache,
			"--record", records[u], "--root", target, "--json"}})
		weed += w.cpu() - before
		if err == nil {
			if cerr := compareTrees(filepath.Join(r.root, "home", u), filepath.Join(target, "home", u)); cerr != nil {
				err = fmt.Errorf("%w: %w", errRestoreDiffers, cerr)
			}
		}
		removeAll(target)
		if err != nil {
			r.add(Row{Tool: ToolSMPS3, Scenario: ScenarioRestore, Status: StatusFailed, Note: err.Error()})
			return fmt.Errorf("smp restore on S3: %w", err)
		}
		var a agg
		a.add(c)
		rounds = append(rounds, a)
	}
	_, logical, _ := treeSize(filepath.Join(r.root, "home", u))
	a, walls := medianAgg(rounds)
	row := a.row(ToolSMPS3, ScenarioRestore, logical)
	verified := true
	row.Verified = &verified
	row.Note = "restore of " + u + ", verified byte for byte; " + r.s3Note(ScenarioRestore, row, weed/time.Duration(len(rounds)), walls)
	r.add(row)
	return nil
}

// s3Note says how row compares with smp's row of scenario on the local
// store, and what the object store itself used.
func (r *runner) s3Note(scenario string, row Row, weedCPU time.Duration, walls []float64) string {
	notes := []string{"a SeaweedFS on loopback (weed server -s3, one volume server) on the same cores"}
	for _, l := range r.rep.Rows {
		if l.Tool == ToolSMP && l.Scenario == scenario && l.OK() && l.WallSeconds > 0 {
			notes = append(notes, fmt.Sprintf("%.2fx the wall time of the local store (%.2f s)", row.WallSeconds/l.WallSeconds, l.WallSeconds))
		}
	}
	notes = append(notes, fmt.Sprintf("weed used %.1f CPU-s besides", weedCPU.Seconds()))
	if n := roundsNote(walls, ""); n != "" {
		notes = append(notes, n)
	}
	return strings.Join(notes, "; ")
}
