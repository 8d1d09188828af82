package bench

import (
	"testing"
	"time"
)

// TestWaitDiskIdleBounded: waiting for the work disk to go idle returns
// within its limit (and one sample) even on a busy shared machine, and at
// once for a directory that does not exist.
func TestWaitDiskIdleBounded(t *testing.T) {
	start := time.Now()
	waitDiskIdle(t.TempDir(), 300*time.Millisecond)
	if d := time.Since(start); d > 300*time.Millisecond+4*diskIdleSample {
		t.Errorf("waitDiskIdle took %v with a limit of 300ms", d)
	}
	start = time.Now()
	waitDiskIdle("/nonexistent/smp-bench", time.Minute)
	if d := time.Since(start); d > time.Second {
		t.Errorf("waitDiskIdle of a missing directory took %v", d)
	}
}
