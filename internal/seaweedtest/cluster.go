package seaweedtest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Cluster is a SeaweedFS of separate processes on loopback: a master,
// Volumes volume servers, a filer and the S3 gateway, so a test can kill
// one volume server and see the object store go on with the replicas on
// the others.
type Cluster struct {
	*Server // the S3 gateway's endpoint and identity
	dir     string
	procs   []*exec.Cmd // master, volume servers, filer, gateway
	volumes []*exec.Cmd
	done    map[*exec.Cmd]chan struct{}
}

// ClusterOptions shape a Cluster.
type ClusterOptions struct {
	Volumes int // volume servers (0: 3)
	// Replication is the placement of every volume (0: "001", a second
	// copy on another server of the same rack).
	Replication string
	// VolumeSizeLimitMB is the size at which a volume is full and new
	// ones are grown (0: 16), small so a test sees volumes grow.
	VolumeSizeLimitMB int
}

// StartCluster runs the processes of a Cluster from bin with their data
// under dir (removed by Stop) and waits until the gateway creates buckets.
// Each service listens on a port and a gRPC port of its own. The ports
// freePorts picks are free only when it returns, and tests running in
// parallel may take one before a service binds it, so a cluster that does
// not come up is started again on new ports, up to three times.
func StartCluster(bin, dir string, o ClusterOptions) (*Cluster, error) {
	var err error
	for range 3 {
		var c *Cluster
		if c, err = startCluster(bin, dir, o); err == nil {
			return c, nil
		}
		if mkErr := os.MkdirAll(dir, 0o700); mkErr != nil { // Stop removed it
			return nil, mkErr
		}
	}
	return nil, err
}

func startCluster(bin, dir string, o ClusterOptions) (*Cluster, error) {
	if o.Volumes <= 0 {
		o.Volumes = 3
	}
	if o.Replication == "" {
		o.Replication = "001"
	}
	if o.VolumeSizeLimitMB <= 0 {
		o.VolumeSizeLimitMB = 16
	}
	c := &Cluster{Server: &Server{AccessKey: "smp" + randomHex(6), SecretKey: randomHex(20), dir: dir, done: make(chan struct{})}, dir: dir, done: map[*exec.Cmd]chan struct{}{}}
	ident := map[string]any{"identities": []any{map[string]any{
		"name":        "smp",
		"credentials": []any{map[string]string{"accessKey": c.AccessKey, "secretKey": c.SecretKey}},
		"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}}
	b, _ := json.Marshal(ident)
	cfg := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		return nil, err
	}
	p, err := freePorts(2 * (3 + o.Volumes))
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(p[i]) + "." + strconv.Itoa(p[i+1]) }
	c.Endpoint = "127.0.0.1:" + strconv.Itoa(p[4])
	master := addr(0)
	loop := []string{"-ip=127.0.0.1", "-ip.bind=127.0.0.1"}
	ports := func(i int) []string {
		return []string{"-port=" + strconv.Itoa(p[i]), "-port.grpc=" + strconv.Itoa(p[i+1])}
	}
	// Volumes of two copies grow two at a time, at once.
	toml := "[master.volume_growth]\ncopy_1 = 2\ncopy_2 = 2\ncopy_3 = 1\nallocation_deferral = \"0s\"\n"
	if err := c.start(bin, "master", toml, append(append(loop, ports(0)...), "-mdir=.",
		"-volumeSizeLimitMB="+strconv.Itoa(o.VolumeSizeLimitMB), "-defaultReplication="+o.Replication)); err != nil {
		c.Stop()
		return nil, err
	}
	for v := range o.Volumes {
		if err := c.start(bin, "volume"+strconv.Itoa(v), "", append(append(loop, ports(6+2*v)...), "-dir=.", "-max=100", "-master="+master)); err != nil {
			c.Stop()
			return nil, err
		}
		c.volumes = append(c.volumes, c.procs[len(c.procs)-1])
	}
	if err := c.start(bin, "filer", "", append(append(loop, ports(2)...), "-master="+master,
		"-defaultReplicaPlacement="+o.Replication, "-localSocket="+filepath.Join(dir, "filer.sock"))); err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.start(bin, "s3", "", append(append([]string{"-ip.bind=127.0.0.1"}, ports(4)...), "-filer="+addr(2),
		"-config="+cfg, "-port.iceberg=0", "-port.lance=0", "-localSocket="+filepath.Join(dir, "s3.sock"))); err != nil {
		c.Stop()
		return nil, err
	}
	for _, i := range []int{1, 3, 5} {
		c.sockets = append(c.sockets, fmt.Sprintf("/tmp/seaweedfs-*-grpc-%d.sock", p[i]))
	}
	c.log = filepath.Join(dir, "s3", "weed.log")
	if err := c.waitReady(90 * time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// start runs `weed <service> args` in dir/name (with toml as its
// master.toml when given), logging to weed.log there.
func (c *Cluster) start(bin, name, toml string, args []string) error {
	wd := filepath.Join(c.dir, name)
	if err := os.MkdirAll(wd, 0o700); err != nil {
		return err
	}
	if toml != "" {
		if err := os.WriteFile(filepath.Join(wd, "master.toml"), []byte(toml), 0o600); err != nil {
			return err
		}
	}
	service := name
	if len(name) > 6 && name[:6] == "volume" {
		service = "volume"
	}
	logf, err := os.Create(filepath.Join(wd, "weed.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, append([]string{service}, args...)...)
	cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, wd
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start weed %s: %w", service, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	c.procs = append(c.procs, cmd)
	c.done[cmd] = done
	if service == "s3" {
		c.Server.done = done // waitReady stops when the gateway exits
	}
	return nil
}

// KillVolume kills volume server i (SIGKILL), as a crashed machine.
func (c *Cluster) KillVolume(i int) error {
	cmd := c.volumes[i]
	if err := cmd.Process.Kill(); err != nil {
		return err
	}
	<-c.done[cmd]
	return nil
}

// Stop ends every process, the gateway first, and removes the data.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		cmd := c.procs[i]
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done[cmd]:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-c.done[cmd]
		}
	}
	c.procs = nil
	for _, pat := range c.sockets {
		if m, err := filepath.Glob(pat); err == nil {
			for _, f := range m {
				os.Remove(f)
			}
		}
	}
	if os.Getenv("SMP_WEED_KEEP") != "" {
		fmt.Fprintf(os.Stderr, "seaweedtest: kept the cluster's data and logs in %s\n", c.dir)
	} else {
		os.RemoveAll(c.dir)
	}
}
