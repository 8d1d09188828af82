package capture

import (
	"testing"

	"smp/cas"
)

// TestBufClass checks the pools of chunk copies: every size up to the
// largest chunk has a pool, whose copies hold it with at most a quarter
// (or, below 4 KiB, up to 4 KiB) to spare, and a copy returns to the pool
// it came from.
func TestBufClass(t *testing.T) {
	var c capturer
	largest := 4 * cas.MaxAvgChunkSize
	check := func(n int) {
		k := bufClass(n)
		if k < 0 || k >= len(c.bufPools) {
			t.Fatalf("bufClass(%d) = %d, outside the %d pools", n, k, len(c.bufPools))
		}
		size := bufClassSize(k)
		if size < n || (n > 1<<minBufClass && size > n+n/4) || (n <= 1<<minBufClass && size != 1<<minBufClass) {
			t.Fatalf("a %d-byte chunk is copied into pool %d of %d-byte buffers", n, k, size)
		}
		if bufClass(size) != k {
			t.Fatalf("a %d-byte buffer of pool %d returns to pool %d", size, k, bufClass(size))
		}
		if k > 0 && bufClassSize(k-1) >= n {
			t.Fatalf("%d bytes go to pool %d, but pool %d's %d-byte buffers hold them", n, k, k-1, bufClassSize(k-1))
		}
	}
	for n := 1; n <= 1<<16; n++ {
		check(n)
	}
	for n := 1 << 16; n <= largest; n += n/1000 + 1 {
		check(n)
	}
	check(largest)
	if bufClass(largest) != len(c.bufPools)-1 {
		t.Errorf("the largest chunk goes to pool %d of %d: the array of pools is not sized to it", bufClass(largest), len(c.bufPools))
	}
	b := c.getBuf(1<<20 + 1)
	if len(*b) != 1<<20+1 || cap(*b) != 1<<20+1<<18 {
		t.Errorf("getBuf(1 MiB + 1): len %d cap %d, want a 1.25 MiB buffer", len(*b), cap(*b))
	}
}
