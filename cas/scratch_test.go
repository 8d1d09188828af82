package cas

import "testing"

func TestScratchSize(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{0, 64 << 10}, {1, 64 << 10}, {64 << 10, 64 << 10}, {64<<10 + 1, 128 << 10},
		{300 << 10, 512 << 10}, {1 << 20, 1 << 20}, {1<<20 + 1, 2 << 20}, {(4 << 20) + 64, 5 << 20},
	} {
		if got := scratchSize(c.n); got != c.want || got < c.n {
			t.Errorf("scratchSize(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	b := getScratch(5000)
	if len(*b) < 5000 {
		t.Fatalf("getScratch(5000) has %d bytes", len(*b))
	}
}
