package console

import (
	"testing"
	"time"
)

func TestProgressOf(t *testing.T) {
	tests := []struct {
		name             string
		done, total      uint64
		elapsed          time.Duration
		wantPct          float64
		wantETA          time.Duration
		wantHasTotal     bool
		wantRateBytesSec float64
	}{
		{"no total", 100, 0, 10 * time.Second, 0, 0, false, 10},
		{"half way", 50, 100, 10 * time.Second, 50, 10 * time.Second, true, 5},
		{"done", 100, 100, 10 * time.Second, 100, 0, true, 10},
		{"past the total", 150, 100, 10 * time.Second, 100, 0, true, 15},
		{"no time yet", 0, 100, 0, 0, 0, true, 0},
		{"a claimed 2^56 bytes at 1 B/s", 1, 1 << 56, time.Second, 100 / float64(uint64(1)<<56), maxETA, true, 1},
	}
	for _, tc := range tests {
		p := progressOf(tc.done, tc.total, tc.elapsed)
		if p.HasTotal != tc.wantHasTotal || p.Pct != tc.wantPct || p.ETA != tc.wantETA || p.RateBytesS != tc.wantRateBytesSec {
			t.Errorf("%s: %+v, want total %v, %v%%, ETA %v, %v B/s", tc.name, p, tc.wantHasTotal, tc.wantPct, tc.wantETA, tc.wantRateBytesSec)
		}
	}
}
