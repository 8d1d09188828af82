package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestDiskUsageCountsHardLinksOnce(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.MkdirAll(a, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a, "f"), bytes.Repeat([]byte{1}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(a, "f"), filepath.Join(b, "f")); err != nil {
		t.Skipf("no hard links here: %v", err)
	}
	u := diskUsage(a, b)
	if u[0] < 1<<20 {
		t.Errorf("a: %d bytes, want at least 1 MiB", u[0])
	}
	if u[1] >= 1<<20 {
		t.Errorf("b: %d bytes: the hard-linked file was counted twice", u[1])
	}
	if alone := du(b); alone < 1<<20 {
		t.Errorf("b alone: %d bytes, want at least 1 MiB", alone)
	}
}
