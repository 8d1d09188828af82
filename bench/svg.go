package bench

// A hand-written SVG bar chart for `smp bench run --plot`: panels of
// grouped bars with axes, a legend and values on the bars. No plotting
// library: the output is plain SVG 1.1 that browsers and image viewers
// show as is.

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"
)

// Panel is one bar chart: Groups along the x axis, one bar per series in
// each group.
type Panel struct {
	Title  string
	YLabel string
	Groups []string
	Series []string
	// Values[g][s] is series s in group g. NaN draws no bar but "n/a"
	// (the tool was expected to run but did not); NotApplicable, or a
	// missing entry, draws nothing.
	Values [][]float64
	// Log draws a logarithmic y axis (non-positive values then show as
	// "n/a").
	Log bool
	// Format prints the value labels; nil uses FormatValue.
	Format func(float64) string
}

// NotApplicable in Panel.Values draws neither a bar nor "n/a".
var NotApplicable = math.Inf(-1)

// value returns series s in group g; ok is false for no bar, and then
// na tells whether to print "n/a".
func (p Panel) value(g, s int) (v float64, ok, na bool) {
	if g >= len(p.Values) || s >= len(p.Values[g]) {
		return 0, false, false
	}
	v = p.Values[g][s]
	switch {
	case math.IsInf(v, -1):
		return 0, false, false
	case math.IsNaN(v) || math.IsInf(v, 1) || v < 0 || (p.Log && v == 0):
		return 0, false, true
	}
	return v, true, false
}

// FormatValue prints a bar's value: 1,234 / 56.7 / 0.42.
func FormatValue(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "n/a"
	case a >= 100:
		return humanize.Comma(int64(math.Round(v)))
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a == 0:
		return "0"
	default:
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
}

// formatTick prints an axis tick: 0.1, 1, 2.5, 1,000.
func formatTick(v float64) string {
	if v >= 1000 {
		return humanize.Comma(int64(math.Round(v)))
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// palette colours the series; a series keeps its colour in every panel.
var palette = []string{"#1f5fbf", "#e07b00", "#2a9d4a", "#c8323c", "#7b52ab", "#8c5a3c", "#d0559b", "#6b6b6b"}

// Chart layout, in SVG user units.
const (
	chartW     = 1000.0
	titleH     = 56.0
	panelH     = 400.0
	footerH    = 28.0
	plotLeft   = 96.0
	plotRight  = 190.0 // legend column
	plotTop    = 48.0  // below the panel title
	plotBottom = 56.0  // group labels
	labelFont  = 10.0
)

// WriteSVG writes panels stacked vertically under title, with footer as a
// small caption at the bottom.
func WriteSVG(w io.Writer, title, footer string, panels []Panel) error {
	colors := map[string]string{}
	for _, p := range panels {
		for _, s := range p.Series {
			if _, ok := colors[s]; !ok {
				colors[s] = palette[len(colors)%len(palette)]
			}
		}
	}
	height := titleH + float64(len(panels))*panelH + footerH
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%s" height="%s" viewBox="0 0 %s %s" font-family="Helvetica, Arial, sans-serif">`+"\n",
		num(chartW), num(height), num(chartW), num(height))
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%s" height="%s" fill="#ffffff"/>`+"\n", num(chartW), num(height))
	fmt.Fprintf(&b, `<text class="title" x="%s" y="34" font-size="20" font-weight="bold" text-anchor="middle">%s</text>`+"\n", num(chartW/2), esc(title))
	for i, p := range panels {
		writePanel(&b, p, titleH+float64(i)*panelH, colors)
	}
	if footer != "" {
		fmt.Fprintf(&b, `<text class="footer" x="%s" y="%s" font-size="11" fill="#555555">%s</text>`+"\n", num(12), num(height-10), esc(footer))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// axis maps values to heights in [0, 1] and lists the tick values.
type axis struct {
	log    bool
	lo, hi float64 // linear: 0 and the top tick; log: the bottom and top decades
	ticks  []float64
}

func newAxis(p Panel) axis {
	maxV, minPos := 0.0, math.Inf(1)
	for g := range p.Groups {
		for s := range p.Series {
			v, ok, _ := p.value(g, s)
			if !ok {
				continue
			}
			maxV = max(maxV, v)
			if v > 0 {
				minPos = min(minPos, v)
			}
		}
	}
	if p.Log {
		if math.IsInf(minPos, 1) {
			minPos, maxV = 1, 10
		}
		lo := math.Floor(math.Log10(minPos))
		hi := math.Ceil(math.Log10(maxV))
		if hi <= lo {
			hi = lo + 1
		}
		a := axis{log: true, lo: lo, hi: hi}
		for e := lo; e <= hi; e++ {
			a.ticks = append(a.ticks, math.Pow(10, e))
		}
		return a
	}
	if maxV <= 0 {
		maxV = 1
	}
	step := niceStep(maxV / 5)
	top := math.Ceil(maxV/step-1e-9) * step
	a := axis{lo: 0, hi: top}
	for i := 0; i <= int(math.Round(top/step)); i++ {
		a.ticks = append(a.ticks, float64(i)*step)
	}
	return a
}

// niceStep rounds x up to 1, 2, 2.5 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= x*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// frac is v's height as a fraction of the plot.
func (a axis) frac(v float64) float64 {
	var f float64
	if a.log {
		if v <= 0 {
			return 0
		}
		f = (math.Log10(v) - a.lo) / (a.hi - a.lo)
	} else {
		f = v / a.hi
	}
	return min(max(f, 0), 1)
}

func writePanel(b *strings.Builder, p Panel, top float64, colors map[string]string) {
	format := p.Format
	if format == nil {
		format = FormatValue
	}
	ax := newAxis(p)
	x0, x1 := plotLeft, chartW-plotRight
	y0, y1 := top+panelH-plotBottom, top+plotTop // y0 is the baseline
	plotH := y0 - y1
	yOf := func(v float64) float64 { return y0 - ax.frac(v)*plotH }

	fmt.Fprintf(b, `<g class="panel">`+"\n")
	title := p.Title
	if p.Log {
		title += " (log scale)"
	}
	fmt.Fprintf(b, `<text class="panel-title" x="%s" y="%s" font-size="15" font-weight="bold">%s</text>`+"\n", num(x0), num(top+24), esc(title))

	// Grid and y ticks.
	for _, t := range ax.ticks {
		y := yOf(t)
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#dddddd" stroke-width="1"/>`+"\n", num(x0), num(y), num(x1), num(y))
		fmt.Fprintf(b, `<text class="tick" x="%s" y="%s" font-size="11" text-anchor="end">%s</text>`+"\n", num(x0-6), num(y+4), esc(formatTick(t)))
	}
	// Axes.
	fmt.Fprintf(b, `<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s" stroke="#333333" stroke-width="1.2"/>`+"\n", num(x0), num(y0), num(x1), num(y0))
	fmt.Fprintf(b, `<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s" stroke="#333333" stroke-width="1.2"/>`+"\n", num(x0), num(y0), num(x0), num(y1))
	fmt.Fprintf(b, `<text class="ylabel" x="%s" y="%s" font-size="12" text-anchor="middle" transform="rotate(-90 %s %s)">%s</text>`+"\n",
		num(24), num((y0+y1)/2), num(24), num((y0+y1)/2), esc(p.YLabel))

	// Bars.
	if n, m := len(p.Groups), len(p.Series); n > 0 && m > 0 {
		groupW := (x1 - x0) / float64(n)
		slot := groupW * 0.84 / float64(m)
		barW := slot * 0.88
		for g, group := range p.Groups {
			gx := x0 + float64(g)*groupW
			fmt.Fprintf(b, `<text class="group" x="%s" y="%s" font-size="12" text-anchor="middle">%s</text>`+"\n", num(gx+groupW/2), num(y0+20), esc(group))
			for s, series := range p.Series {
				x := gx + groupW*0.08 + float64(s)*slot + (slot-barW)/2
				cx := x + barW/2
				v, ok, na := p.value(g, s)
				if !ok {
					if na {
						valueLabel(b, "n/a", cx, y0, barW, 0, "#888888", "na")
					}
					continue
				}
				y := yOf(v)
				h := y0 - y
				if h < 1 && v > 0 {
					h, y = 1, y0-1
				}
				fmt.Fprintf(b, `<rect class="bar" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s, %s: %s</title></rect>`+"\n",
					num(x), num(y), num(barW), num(h), colors[series], esc(series), esc(group), esc(format(v)))
				valueLabel(b, format(v), cx, y, barW, h, "#222222", "value")
			}
		}
	}

	// Legend.
	lx := x1 + 24
	for s, series := range p.Series {
		ly := y1 + float64(s)*22
		fmt.Fprintf(b, `<rect class="legend-key" x="%s" y="%s" width="14" height="14" fill="%s"/>`+"\n", num(lx), num(ly), colors[series])
		fmt.Fprintf(b, `<text class="legend" x="%s" y="%s" font-size="12">%s</text>`+"\n", num(lx+20), num(ly+11), esc(series))
	}
	b.WriteString("</g>\n")
}

// valueLabel writes a bar's value: horizontal above the bar when it fits
// the bar's width, otherwise turned upright; inside a tall bar (in white)
// when it would not fit above it.
func valueLabel(b *strings.Builder, text string, cx, top, barW, barH float64, color, class string) {
	textW := float64(len(text)) * labelFont * 0.6
	if textW+2 <= barW {
		fmt.Fprintf(b, `<text class="%s" x="%s" y="%s" font-size="%s" text-anchor="middle" fill="%s">%s</text>`+"\n",
			class, num(cx), num(top-4), num(labelFont), color, esc(text))
		return
	}
	// Upright: the text runs up from the bar's top, or down inside it
	// from the top when the bar is tall enough to hold it.
	x := cx + labelFont*0.35
	if barH > textW+8 && class == "value" {
		y := top + 4
		fmt.Fprintf(b, `<text class="%s" x="%s" y="%s" font-size="%s" text-anchor="end" fill="#ffffff" transform="rotate(-90 %s %s)">%s</text>`+"\n",
			class, num(x), num(y), num(labelFont), num(x), num(y), esc(text))
		return
	}
	y := top - 4
	fmt.Fprintf(b, `<text class="%s" x="%s" y="%s" font-size="%s" text-anchor="start" fill="%s" transform="rotate(-90 %s %s)">%s</text>`+"\n",
		class, num(x), num(y), num(labelFont), color, num(x), num(y), esc(text))
}

// num prints a coordinate (never NaN or Inf, which would break the SVG).
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// scenarioLabels name the scenarios on the chart.
var scenarioLabels = map[string]string{
	ScenarioCapture:     "org capture",
	ScenarioIncremental: "incremental",
	ScenarioRestore:     "restore 1 user",
	ScenarioHardlink:    "hard-link capture",
	ScenarioServe:       "smp serve",
}

var scenarioOrder = []string{ScenarioCapture, ScenarioIncremental, ScenarioRestore, ScenarioHardlink, ScenarioServe}

// Panels returns the report's two charts: throughput per tool per
// scenario, and stored bytes per tool.
func (r *Report) Panels() []Panel {
	build := func(scenarios []string, value func(Row) (float64, bool)) (groups, series []string, values [][]float64) {
		has := map[string]bool{}
		for _, row := range r.Rows {
			has[row.Scenario] = true
		}
		var keep []string
		for _, sc := range scenarios {
			if has[sc] {
				keep = append(keep, sc)
			}
		}
		seen := map[string]bool{}
		for _, row := range r.Rows {
			if _, ok := value(row); ok && !seen[row.Tool] && slices.Contains(keep, row.Scenario) {
				seen[row.Tool] = true
				series = append(series, row.Tool)
			}
		}
		for _, sc := range keep {
			vals := make([]float64, len(series))
			for i, tool := range series {
				vals[i] = NotApplicable
				if row, ok := r.Row(tool, sc); ok {
					vals[i] = math.NaN()
					if v, ok := value(row); ok {
						vals[i] = v
					}
				}
			}
			label := scenarioLabels[sc]
			if label == "" {
				label = sc
			}
			groups = append(groups, label)
			values = append(values, vals)
		}
		return groups, series, values
	}
	g1, s1, v1 := build(scenarioOrder, func(row Row) (float64, bool) { return row.MBps, row.OK() && row.MBps > 0 })
	tp := Panel{Title: "Throughput: logical MB/s (higher is better)", YLabel: "MB/s (10^6 bytes of file data per second)", Groups: g1, Series: s1, Values: v1}
	tp.Log = spread(v1) > 30

	stored := []string{ScenarioCapture, ScenarioIncremental, ScenarioHardlink}
	g2, s2, v2 := build(stored, func(row Row) (float64, bool) {
		return float64(row.StoredBytes) / (1 << 20), row.OK() && (row.StoredBytes > 0 || row.Scenario == ScenarioIncremental)
	})
	for i, g := range g2 {
		if g == scenarioLabels[ScenarioIncremental] {
			g2[i] = "incremental (added)"
		}
	}
	title := "Stored bytes: MiB kept by each tool (lower is better)"
	if info := r.Corpus.Info; info != nil && info.Bytes > 0 {
		title = fmt.Sprintf("Stored bytes: MiB kept of %s of file data (lower is better)", humanize.IBytes(uint64(info.Bytes)))
	}
	sp := Panel{Title: title, YLabel: "MiB stored", Groups: g2, Series: s2, Values: v2}
	sp.Log = spread(v2) > 30
	return []Panel{tp, sp}
}

// spread is the largest positive value over the smallest.
func spread(values [][]float64) float64 {
	lo, hi := math.Inf(1), 0.0
	for _, vs := range values {
		for _, v := range vs {
			if v > 0 && !math.IsInf(v, 0) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if hi == 0 {
		return 1
	}
	return hi / lo
}

// WriteSVG writes the report's charts.
func (r *Report) WriteSVG(w io.Writer) error {
	title := "smp bench"
	if info := r.Corpus.Info; info != nil {
		title += fmt.Sprintf(": %d users, %s", len(info.Users), humanize.IBytes(uint64(info.Bytes)))
	}
	m := r.Machine
	footer := fmt.Sprintf("%s; %d cores, %s/%s, %s", r.Date, m.Cores, m.GOOS, m.GOARCH, m.GoVersion)
	if m.SMPVersion != "" {
		footer += "; " + m.SMPVersion
	}
	for _, row := range r.Rows {
		if !row.OK() {
			footer += "; n/a: skipped, not installed or not in this build (see the table)"
			break
		}
	}
	return WriteSVG(w, title, footer, r.Panels())
}
