package bench

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// baselines lists, per scenario, the baselines smp is compared with.
var baselines = map[string][]string{
	ScenarioCapture:     {ToolRestic, ToolBorg, ToolTar, ToolCp},
	ScenarioIncremental: {ToolRestic, ToolBorg, ToolTar, ToolCp},
	ScenarioRestore:     {ToolRestic, ToolBorg, ToolTar, ToolCp},
	ScenarioCaptureCold: {ToolRestic, ToolBorg, ToolTar},
	ScenarioRestoreCold: {ToolRestic, ToolBorg, ToolTar, ToolCp},
	ScenarioHardlink:    {ToolCpLink},
	ScenarioHardlinkAll: {ToolCpLink},
}

// Compare computes smp's ratios to every baseline that ran: the
// unencrypted store's rows, but the default store's (DefaultSMP) in the
// cold scenarios, which measure that one. The serve scenarios have no baseline tool: serve is compared with smp's own local
// capture (Speedup is then the ratio of throughputs, the corpus having
// changed in between), serve-16 with serve.
func (r *Report) Compare() []Comparison {
	out := []Comparison{}
	for _, sc := range []string{ScenarioCapture, ScenarioCaptureCold, ScenarioIncremental, ScenarioRestore, ScenarioRestoreCold, ScenarioRestoreAll, ScenarioHardlink, ScenarioHardlinkAll} {
		cold := sc == ScenarioCaptureCold || sc == ScenarioRestoreCold
		s, ok := r.Row(ToolSMP, sc)
		if cold {
			s, ok = r.DefaultSMP(sc)
		}
		if !ok || !s.OK() || s.WallSeconds <= 0 {
			continue
		}
		for _, tool := range baselines[sc] {
			b, ok := r.Row(tool, sc)
			if !ok || !b.OK() || b.WallSeconds <= 0 {
				continue
			}
			c := Comparison{Scenario: sc, Baseline: tool, Speedup: b.WallSeconds / s.WallSeconds}
			if s.StoredBytes > 0 && b.StoredBytes > 0 && sc != ScenarioRestore {
				c.StoredRatio = float64(s.StoredBytes) / float64(b.StoredBytes)
			}
			if s.CPUSeconds > 0 && b.CPUSeconds > 0 {
				c.CPURatio = s.CPUSeconds / b.CPUSeconds
			}
			if s.PeakRSSMiB > 0 && b.PeakRSSMiB > 0 {
				c.RSSRatio = s.PeakRSSMiB / b.PeakRSSMiB
			}
			c.Text = c.describe()
			if s.Tool != ToolSMP {
				c.SMP = s.Tool
			}
			out = append(out, c)
		}
		if c, ok := r.compareEncrypted(sc, s); ok && !cold {
			out = append(out, c)
		}
	}
	// Restoring a hard-link record does what cp -al does: link every file
	// into a new tree.
	if s, ok := r.Row(ToolSMP, ScenarioHardlinkRestore); ok && s.OK() && s.WallSeconds > 0 {
		if b, ok := r.Row(ToolCpLink, ScenarioHardlinkAll); ok && b.OK() && b.WallSeconds > 0 {
			c := Comparison{Scenario: ScenarioHardlinkRestore, Baseline: ToolCpLink, Speedup: b.WallSeconds / s.WallSeconds}
			c.Text = c.describe()
			out = append(out, c)
		}
	}
	return append(out, r.compareServe()...)
}

// compareEncrypted is "encrypted store: 1.04x the unencrypted wall time
// (CPU 1.06x)" for the capture and restore-all scenarios. Speedup is, as for
// the baselines, the unencrypted wall time over the encrypted one; the
// text gives its inverse, the cost.
func (r *Report) compareEncrypted(scenario string, plain Row) (Comparison, bool) {
	e, ok := r.Row(ToolSMPEncrypted, scenario)
	if !ok || !e.OK() || e.WallSeconds <= 0 {
		return Comparison{}, false
	}
	c := Comparison{Scenario: scenario, Baseline: ToolSMP + " (unencrypted)", Speedup: plain.WallSeconds / e.WallSeconds}
	if e.CPUSeconds > 0 && plain.CPUSeconds > 0 {
		c.CPURatio = e.CPUSeconds / plain.CPUSeconds
	}
	if p, ok := r.Encryption.of(scenario); ok && p.CPURatio > 0 {
		c.CPURatio = p.CPURatio // the median of every round's CPU, not the median wall round's
	}
	if e.PeakRSSMiB > 0 && plain.PeakRSSMiB > 0 {
		c.RSSRatio = e.PeakRSSMiB / plain.PeakRSSMiB
	}
	if e.StoredBytes > 0 && plain.StoredBytes > 0 {
		c.StoredRatio = float64(e.StoredBytes) / float64(plain.StoredBytes)
	}
	c.Text = fmt.Sprintf("encrypted store: %.3fx the unencrypted wall time", e.WallSeconds/plain.WallSeconds)
	if c.CPURatio > 0 {
		c.Text += fmt.Sprintf(" (CPU %.3fx)", c.CPURatio)
	}
	return c, true
}

// compareServe is "N% of local capture throughput" for serve and "16
// clients: R MB/s aggregate (Kx one client at a time)" for serve-16.
func (r *Report) compareServe() []Comparison {
	var out []Comparison
	ok := func(row Row, found bool) bool { return found && row.OK() && row.MBps > 0 }
	local, localOK := r.Row(ToolSMP, ScenarioCapture)
	serve, serveOK := r.Row(ToolSMP, ScenarioServe)
	localOK, serveOK = ok(local, localOK), ok(serve, serveOK)
	if serveOK && localOK {
		c := Comparison{Scenario: ScenarioServe, Baseline: "smp capture (local)", Speedup: serve.MBps / local.MBps}
		if serve.CPUSeconds > 0 && local.CPUSeconds > 0 && serve.LogicalBytes > 0 && local.LogicalBytes > 0 {
			// Per logical byte: the corpus changed between the two.
			c.CPURatio = (serve.CPUSeconds / float64(serve.LogicalBytes)) / (local.CPUSeconds / float64(local.LogicalBytes))
		}
		if serve.PeakRSSMiB > 0 && local.PeakRSSMiB > 0 {
			c.RSSRatio = serve.PeakRSSMiB / local.PeakRSSMiB
		}
		c.Text = fmt.Sprintf("%.0f%% of local capture throughput", 100*c.Speedup)
		out = append(out, c)
	}
	if split, found := r.Row(ToolSMP, ScenarioServeSplit); ok(split, found) {
		if one, found := r.Row(ToolSMP, ScenarioCapture1CPU); ok(one, found) {
			c := Comparison{Scenario: ScenarioServeSplit, Baseline: "smp capture (local, same one CPU)", Speedup: split.MBps / one.MBps}
			c.Text = fmt.Sprintf("client and server on separate CPUs: %.0f%% of a local capture on the client's CPU", 100*c.Speedup)
			out = append(out, c)
		}
	}
	if load, found := r.Row(ToolSMP, ScenarioServeLoad); ok(load, found) {
		c := Comparison{Scenario: ScenarioServeLoad, Text: fmt.Sprintf("%d clients: %.0f MB/s aggregate", load.Runs, load.MBps)}
		if serveOK {
			c.Baseline, c.Speedup = "smp serve (one client at a time)", load.MBps/serve.MBps
			c.Text += fmt.Sprintf(" (%sx one client at a time)", FormatRatio(c.Speedup))
		}
		out = append(out, c)
	}
	return out
}

// describe is "2.7x faster than restic, 0.8x the stored bytes".
func (c Comparison) describe() string {
	var s string
	switch {
	case c.Speedup >= 1:
		s = fmt.Sprintf("%sx faster than %s", FormatRatio(c.Speedup), c.Baseline)
	case c.Speedup > 0:
		s = fmt.Sprintf("%sx slower than %s", FormatRatio(1/c.Speedup), c.Baseline)
	}
	if c.StoredRatio > 0 {
		what := "the stored bytes"
		if c.Scenario == ScenarioIncremental {
			what = "the new stored bytes"
		}
		s += fmt.Sprintf(", %sx %s", FormatRatio(c.StoredRatio), what)
	}
	return s
}

// FormatRatio prints a ratio with two significant digits (0.83, 2.7, 12,
// 140).
func FormatRatio(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "-"
	case v >= 9.95:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	case v >= 0.995:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
}

// Summary returns one line per scenario: "capture: 2.7x faster than
// restic, 0.8x the stored bytes; 1.3x faster than cp -a, ...", the
// scenario followed by smp's store when that is not the unencrypted one
// ("restore-cold (smp encrypted): ...").
func (r *Report) Summary() []string {
	var lines []string
	var cur string
	var parts []string
	flush := func() {
		if cur != "" {
			lines = append(lines, cur+": "+strings.Join(parts, "; "))
		}
	}
	for _, c := range r.Ratios {
		sc := c.Scenario
		if sc == ScenarioServeLoad || sc == ScenarioServeSplit {
			sc = ScenarioServe // one line: "serve: 84% ...; 16 clients: ...; separate CPUs: ..."
		}
		if c.SMP != "" {
			sc += " (" + c.SMP + ")"
		}
		if sc != cur {
			flush()
			cur, parts = sc, nil
		}
		parts = append(parts, c.Text)
	}
	flush()
	return lines
}
