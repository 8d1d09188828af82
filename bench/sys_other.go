//go:build !linux

package bench

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

// The benchmark harness measures with Linux facilities (rusage peak RSS,
// block counts, CPU affinity); elsewhere these report nothing, and a run's
// figures lack them.

func syncDisks() {}

func waitDiskIdle(string, time.Duration) {}
func selfCPU() time.Duration             { return 0 }

func maxRSSKiB(*os.ProcessState) int64 { return 0 }

func fileUsage(info fs.FileInfo) (used int64, key [2]uint64, shared bool) {
	return info.Size(), key, false
}

func allocatedBytes(fs.FileInfo) int64 { return 0 }

func twoCPUs() (a, b string, ok bool) { return "", "", false }

func dropCaches() error { return errors.New("dropping the page cache needs Linux") }
