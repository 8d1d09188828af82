package console

import (
	"fmt"
	"strings"
	"time"
)

// chart is the overview's history chart, laid out on the server: the
// template draws it as inline SVG (no script, no external library).
type chart struct {
	Width, Height int
	Stored        string // polyline points
	Logical       string
	Records       string
	MaxBytes      uint64
	MaxRecords    int
	From, To      time.Time
	Empty         bool
}

const chartW, chartH = 800, 200

func buildChart(ss []sample) chart {
	c := chart{Width: chartW, Height: chartH, Empty: len(ss) == 0}
	if c.Empty {
		return c
	}
	for _, s := range ss {
		c.MaxBytes = max(c.MaxBytes, s.Stored, s.Logical)
		c.MaxRecords = max(c.MaxRecords, s.Records)
	}
	t0, t1 := ss[0].At, ss[len(ss)-1].At
	c.From, c.To = time.Unix(t0, 0).UTC(), time.Unix(t1, 0).UTC()
	x := func(t int64) float64 {
		if t1 == t0 {
			return chartW
		}
		return float64(t-t0) * chartW / float64(t1-t0)
	}
	y := func(v, maxV float64) float64 {
		if maxV == 0 {
			return chartH
		}
		return chartH - v*(chartH-10)/maxV
	}
	var st, lo, re strings.Builder
	for i, s := range ss {
		if i == 0 && len(ss) == 1 {
			// One point: a flat line across, so it is visible.
			fmt.Fprintf(&st, "0,%.1f ", y(float64(s.Stored), float64(c.MaxBytes)))
			fmt.Fprintf(&lo, "0,%.1f ", y(float64(s.Logical), float64(c.MaxBytes)))
			fmt.Fprintf(&re, "0,%.1f ", y(float64(s.Records), float64(c.MaxRecords)))
		}
		fmt.Fprintf(&st, "%.1f,%.1f ", x(s.At), y(float64(s.Stored), float64(c.MaxBytes)))
		fmt.Fprintf(&lo, "%.1f,%.1f ", x(s.At), y(float64(s.Logical), float64(c.MaxBytes)))
		fmt.Fprintf(&re, "%.1f,%.1f ", x(s.At), y(float64(s.Records), float64(c.MaxRecords)))
	}
	c.Stored, c.Logical, c.Records = st.String(), lo.String(), re.String()
	return c
}

// bar is a horizontal capacity bar: segment widths in percent of the
// whole, drawn as SVG rects (attributes, not inline styles: the CSP allows
// no inline style).
type bar struct {
	UsedPct, ReservedPct, FreePct, FloorPct float64
	ReservedX, FreeX, FloorX                float64
}

func buildBar(used, reserved, free, floor uint64) bar {
	total := float64(used + reserved + free)
	if total == 0 {
		return bar{}
	}
	p := func(v uint64) float64 { return float64(v) * 100 / total }
	b := bar{UsedPct: p(used), ReservedPct: p(reserved), FreePct: p(free), FloorPct: min(p(floor), 100)}
	b.ReservedX = b.UsedPct
	b.FreeX = b.UsedPct + b.ReservedPct
	b.FloorX = 100 - b.FloorPct
	return b
}
