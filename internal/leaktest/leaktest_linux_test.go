package leaktest

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
)

// TestScanFindsEveryWindow: a run of 64 bytes of a random block is found
// wherever it starts in the block and in the file (at the file's start
// and end too), a run of 63 is not, and neither are zeros; sentinels are
// found in any file.
func TestScanFindsEveryWindow(t *testing.T) {
	sec := &Secrets{}
	for range 2 {
		b := make([]byte, 4096)
		rand.Read(b)
		sec.Blocks = append(sec.Blocks, b)
	}
	s := sec.Sentinel("x")
	padOf := func(blk []byte, start int) []byte {
		// Not the block's byte before the run: the run found is exactly it.
		var c byte = 0xaa
		if start > 0 {
			c = blk[start-1] ^ 0xff
		}
		return bytes.Repeat([]byte{c}, 1000)
	}
	pad := padOf(nil, 0)
	scan := func(content []byte) []Leak {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f"), content, 0o600); err != nil {
			t.Fatal(err)
		}
		leaks, files, err := Scan(dir, sec)
		if err != nil || files != 1 {
			t.Fatalf("scan: %d files, %v", files, err)
		}
		return leaks
	}
	for _, start := range []int{0, 1, 7, 31, 32, 33, 63, 100, 4096 - 64} {
		blk := sec.Blocks[start%2]
		run := blk[start : start+64]
		pad := padOf(blk, start)
		for _, content := range [][]byte{
			append(append(append([]byte{}, pad[:start%13]...), run...), pad...),
			append(append([]byte{}, pad...), run...),
			run,
		} {
			if leaks := scan(content); len(leaks) != 1 || leaks[0].Sentinel != "" || !bytes.Equal(content[leaks[0].Offset:leaks[0].Offset+64], run) {
				t.Errorf("run at block offset %d: %v", start, leaks)
			}
		}
		if leaks := scan(append(append([]byte{}, pad...), run[:63]...)); len(leaks) != 0 {
			t.Errorf("63 bytes at block offset %d reported: %v", start, leaks)
		}
	}
	// Pages of zeros are skipped, not the runs beside or across them.
	m := 100
	for sec.Blocks[0][m-1] == 0 { // so that the run found starts at m
		m++
	}
	for _, at := range []int{4096, 4090, 8192 - 1, 4096 - 64} {
		run := sec.Blocks[0][m : m+64]
		content := make([]byte, 3*4096)
		copy(content[at:], run)
		if leaks := scan(content); len(leaks) != 1 || leaks[0].Offset != at {
			t.Errorf("run at %d among zero pages: %v", at, leaks)
		}
	}
	if leaks := scan(make([]byte, 1<<20)); len(leaks) != 0 {
		t.Errorf("zeros: %v", leaks)
	}
	if leaks := scan(append(append([]byte{}, pad...), s...)); len(leaks) != 1 || leaks[0].Sentinel != s {
		t.Errorf("sentinel: %v", leaks)
	}
}
