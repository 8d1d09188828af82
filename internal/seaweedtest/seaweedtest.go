// Package seaweedtest runs a real SeaweedFS S3 gateway for tests: the weed
// binary that .ci/seaweedfs.sh builds and caches, started on loopback with
// a temporary data directory and an S3 identity (access key and secret), so
// requests are signed and checked. Tests that need it call Shared (one
// server per test binary, stopped by Main) or Start.
//
// Without a weed binary the tests are skipped with a message saying how to
// get one, unless SMP_S3_REQUIRED is set (CI sets it): then they fail.
// SMP_S3_ENDPOINT (with SMP_S3_ACCESS_KEY and SMP_S3_SECRET_KEY) points the
// tests at a running S3 service instead of starting one; SMP_WEED_KEEP
// keeps a started one's data directory and log.
package seaweedtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Version is the SeaweedFS module version .ci/seaweedfs.sh builds.
const Version = "v0.0.0-20261109003541-7506e5f91cd6"

// Server is a running S3 service.
type Server struct {
	Endpoint  string // host:port, plain http
	AccessKey string
	SecretKey string

	cmd     *exec.Cmd
	dir     string
	log     string
	sockets []string // patterns of what weed leaves in /tmp
	done    chan struct{}
}

// Binary returns the path of the weed binary: $SMP_WEED, the cache of
// .ci/seaweedfs.sh, or weed on PATH.
func Binary() (string, error) {
	if p := os.Getenv("SMP_WEED"); p != "" {
		return p, nil
	}
	cache := os.Getenv("SMP_WEED_CACHE")
	if cache == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(dir, "smp-seaweedfs")
		}
	}
	if cache != "" {
		p := filepath.Join(cache, "weed-"+Version)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("weed"); err == nil {
		return p, nil
	}
	return "", errors.New("no SeaweedFS binary (weed): run .ci/seaweedfs.sh, or set SMP_WEED to one")
}

// Required reports whether the S3 tests must run (SMP_S3_REQUIRED set).
func Required() bool { return os.Getenv("SMP_S3_REQUIRED") != "" }

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
)

// Shared returns the test binary's one S3 service, starting it on first
// use; Main stops it. It skips t when no service can be had and the S3
// tests are not required.
func Shared(t testing.TB) *Server {
	t.Helper()
	sharedOnce.Do(func() {
		if ep := os.Getenv("SMP_S3_ENDPOINT"); ep != "" {
			shared = &Server{Endpoint: ep, AccessKey: os.Getenv("SMP_S3_ACCESS_KEY"), SecretKey: os.Getenv("SMP_S3_SECRET_KEY")}
			return
		}
		bin, err := Binary()
		if err != nil {
			sharedErr = err
			return
		}
		dir, err := os.MkdirTemp("", "seaweedfs-")
		if err != nil {
			sharedErr = err
			return
		}
		start := time.Now()
		shared, sharedErr = Start(bin, dir)
		if sharedErr == nil {
			fmt.Fprintf(os.Stderr, "seaweedtest: SeaweedFS answered S3 %.1fs after its start\n", time.Since(start).Seconds())
		}
	})
	if sharedErr != nil {
		skipOrFail(t, sharedErr)
	}
	return shared
}

func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if Required() {
		t.Fatalf("SMP_S3_REQUIRED is set: %v", err)
	}
	t.Skipf("skipping the S3 tests: %v", err)
}

// Main runs the tests of a package that uses Shared and stops the shared
// service after them: call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}

// StopShared stops the service Shared started, if it did (for a TestMain
// that does more than Main).
func StopShared() {
	if shared != nil {
		shared.Stop()
	}
}

// freePorts returns n distinct loopback ports free at the time of the call.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Start runs `weed server -s3` from bin on loopback ports with its data in
// dir (removed by Stop) and a fresh S3 identity, and waits until the
// gateway creates buckets.
func Start(bin, dir string) (*Server, error) {
	s := &Server{AccessKey: "smp" + randomHex(6), SecretKey: randomHex(20), dir: dir, done: make(chan struct{})}
	ident := map[string]any{"identities": []any{map[string]any{
		"name":        "smp",
		"credentials": []any{map[string]string{"accessKey": s.AccessKey, "secretKey": s.SecretKey}},
		"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}}
	b, _ := json.Marshal(ident)
	cfg := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		return nil, err
	}
	// Every bucket is a collection with volumes of its own: grow two at a
	// time (not seven), with room for hundreds of test buckets, and with
	// no hold on the first allocation of a new topology (a test setup).
	masterToml := "[master.volume_growth]\ncopy_1 = 2\ncopy_2 = 2\ncopy_3 = 1\nallocation_deferral = \"0s\"\n"
	if err := os.WriteFile(filepath.Join(dir, "master.toml"), []byte(masterToml), 0o600); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	p, err := freePorts(8)
	if err != nil {
		return nil, err
	}
	s.Endpoint = "127.0.0.1:" + strconv.Itoa(p[6])
	args := []string{"server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + data,
		"-master.port=" + strconv.Itoa(p[0]), "-master.port.grpc=" + strconv.Itoa(p[1]),
		"-volume.port=" + strconv.Itoa(p[2]), "-volume.port.grpc=" + strconv.Itoa(p[3]),
		"-filer", "-filer.port=" + strconv.Itoa(p[4]), "-filer.port.grpc=" + strconv.Itoa(p[5]),
		"-s3", "-s3.port=" + strconv.Itoa(p[6]), "-s3.port.grpc=" + strconv.Itoa(p[7]),
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.config=" + cfg,
		"-master.volumeSizeLimitMB=64", "-volume.max=1000",
		"-filer.localSocket=" + filepath.Join(dir, "filer.sock"), "-s3.localSocket=" + filepath.Join(dir, "s3.sock"),
	}
	// weed puts its gRPC sockets in /tmp whatever it is told: Stop
	// removes these.
	for _, port := range []int{p[1], p[3], p[5], p[7]} {
		s.sockets = append(s.sockets, fmt.Sprintf("/tmp/seaweedfs-*-grpc-%d.sock", port))
	}
	s.log = filepath.Join(dir, "weed.log")
	logf, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.Dir = dir // where weed reads master.toml
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	if err := s.waitReady(90 * time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// waitReady waits until the gateway answers a signed bucket creation.
func (s *Server) waitReady(timeout time.Duration) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	probe := "ready-" + randomHex(4)
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("weed server exited: %s", s.logTail())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		last = c.MakeBucket(ctx, probe, minio.MakeBucketOptions{})
		if last == nil {
			last = c.RemoveBucket(ctx, probe)
		}
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("weed server did not answer S3 within %v (%v): %s", timeout, last, s.logTail())
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// Client is a minio-go client of the service with its identity.
func (s *Server) Client() (*minio.Client, error) {
	return minio.New(s.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		BucketLookup: minio.BucketLookupPath,
		Transport:    http.DefaultTransport,
	})
}

// NewBucket returns the name of a new, empty bucket for t, made now.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	name := "t-" + randomHex(8)
	if err := c.MakeBucket(context.Background(), name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	return name
}

// Pid is the process ID of the weed server Start ran (0 for a service
// given by SMP_S3_ENDPOINT), for tests that measure its CPU time.
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop ends the service and removes its data.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	for _, pat := range s.sockets {
		if m, err := filepath.Glob(pat); err == nil {
			for _, f := range m {
				os.Remove(f)
			}
		}
	}
	if os.Getenv("SMP_WEED_KEEP") != "" {
		fmt.Fprintf(os.Stderr, "seaweedtest: kept the data and log (weed.log) in %s\n", s.dir)
	} else {
		os.RemoveAll(s.dir)
	}
	s.cmd = nil
}
