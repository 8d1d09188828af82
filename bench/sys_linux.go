package bench

import (
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// syncDisks flushes every filesystem's dirty pages.
func syncDisks() { syscall.Sync() }

// waitDiskIdle waits, up to limit, until the block device that holds dir
// has had no request in flight for diskIdleSamples samples in a row
// (its sysfs inflight counters): sync returns when the dirty pages are
// written, but I/O the filesystem issues on its own afterwards (online
// discards of a removed store's blocks, its journal) would otherwise run
// during the next timed step. A directory on a filesystem without a block
// device (tmpfs) returns at once.
func waitDiskIdle(dir string, limit time.Duration) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return
	}
	path := fmt.Sprintf("/sys/dev/block/%d:%d/inflight", unix.Major(st.Dev), unix.Minor(st.Dev))
	deadline := time.Now().Add(limit)
	for idle := 0; idle < diskIdleSamples; {
		b, err := os.ReadFile(path)
		if err != nil {
			return
		}
		if f := strings.Fields(string(b)); len(f) == 2 && f[0] == "0" && f[1] == "0" {
			idle++
		} else {
			idle = 0
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(diskIdleSample)
	}
}

// selfCPU returns the CPU time (user and system) this process has used so
// far, in all its threads.
func selfCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// maxRSSKiB returns the peak resident set of a finished child, in KiB.
func maxRSSKiB(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}

// fileUsage returns the bytes info's file occupies on disk, and its inode
// identity when it has other names (to count it once).
func fileUsage(info fs.FileInfo) (used int64, key [2]uint64, shared bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return info.Size(), key, false
	}
	return st.Blocks * 512, [2]uint64{uint64(st.Dev), st.Ino}, st.Nlink > 1 && !info.IsDir()
}

// allocatedBytes returns the bytes info's file occupies on disk, or 0 when
// unknown.
func allocatedBytes(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return 0
}

// twoCPUs returns two CPUs this process may run on, or false.
func twoCPUs() (a, b string, ok bool) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return "", "", false
	}
	var cpus []string
	for i := 0; i < len(set)*64 && len(cpus) < 2; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, strconv.Itoa(i))
		}
	}
	if len(cpus) < 2 {
		return "", "", false
	}
	return cpus[0], cpus[1], true
}

// dropCaches writes back every dirty page and drops the page cache,
// dentries and inodes (root only), so that the next step reads from the
// disk.
func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
}
