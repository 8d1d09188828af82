package bench

import (
	"testing"
	"time"
)

func TestMedianRow(t *testing.T) {
	ms := func(n int) child {
		return child{wall: time.Duration(n) * time.Millisecond, cpu: time.Duration(2*n) * time.Millisecond, maxRSS: int64(n)}
	}
	tests := []struct {
		name     string
		runs     []child
		wantWall float64
		wantNote string
	}{
		{"one run", []child{ms(100)}, 0.1, "median of 1 runs (0.10-0.10 s)"},
		{"odd, unsorted", []child{ms(300), ms(100), ms(200)}, 0.2, "median of 3 runs (0.10-0.30 s)"},
		{"outlier ignored", []child{ms(120), ms(110), ms(900), ms(130), ms(100)}, 0.12, "median of 5 runs (0.10-0.90 s)"},
	}
	for _, tt := range tests {
		row := medianRow(tt.runs, ToolSMP, ScenarioHardlinkAll, 1e6)
		if row.WallSeconds != tt.wantWall || row.Note != tt.wantNote || row.Runs != 1 {
			t.Errorf("%s: wall %v, runs %d, note %q; want %v, 1, %q", tt.name, row.WallSeconds, row.Runs, row.Note, tt.wantWall, tt.wantNote)
		}
		// The row is that run's: its CPU time and throughput go with its wall.
		if row.CPUSeconds != 2*tt.wantWall || row.MBps != 1/tt.wantWall {
			t.Errorf("%s: cpu %v, MB/s %v; want the median run's", tt.name, row.CPUSeconds, row.MBps)
		}
	}
}
