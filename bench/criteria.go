package bench

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dustin/go-humanize"
)

// The issues' performance criteria, checked on the rows of one run: what
// issue 17 asks of `smp bench run` on the realistic corpus (the serve
// path, the cold rows against the disk's floors, stored bytes, speed and
// memory against restic and borg, cold restore against every baseline)
// and issue 16's cost of encryption. smp's figure is the default store's
// (DefaultSMP: encrypted when this build has it), the store an
// organisation gets from `smp init`.

// Verdict is a criterion's outcome on one run.
type Verdict string

// Verdicts.
const (
	VerdictMet         Verdict = "met"
	VerdictNotMet      Verdict = "not met"
	VerdictNotMeasured Verdict = "not measured" // a row it needs is missing or did not run
)

// Bound is the side of its goal a criterion's value must fall on.
type Bound string

// Bounds.
const (
	AtLeast Bound = ">="
	AtMost  Bound = "<="
	Above   Bound = ">"
)

// holds reports whether v is on b's side of goal.
func (b Bound) holds(v, goal float64) bool {
	switch b {
	case AtLeast:
		return v >= goal
	case AtMost:
		return v <= goal
	case Above:
		return v > goal
	}
	return false
}

// Criterion is one criterion on this run. Value is the run's ratio (0
// when not measured), Text how the table shows it, Detail the figures
// it comes from or why it was not measured.
type Criterion struct {
	Name    string  `json:"name"`
	Issue   int     `json:"issue"`
	Bound   Bound   `json:"bound"`
	Goal    float64 `json:"goal"`
	Target  string  `json:"target"`
	Value   float64 `json:"value,omitempty"`
	Text    string  `json:"text"`
	Verdict Verdict `json:"verdict"`
	Detail  string  `json:"detail,omitempty"`
}

// criterionSpec defines a criterion: measure returns the run's value
// and the figures behind it, or an error saying what is missing.
type criterionSpec struct {
	name    string
	issue   int
	bound   Bound
	goal    float64
	percent bool // shown as a percentage
	measure func(r *Report) (value float64, detail string, err error)
}

// criteria are the criteria in the order the report shows them.
var criteria = []criterionSpec{
	{name: "serve-split / capture-1cpu throughput", issue: 17, bound: AtLeast, goal: 0.85, percent: true, measure: measureServeSplit},
	{name: "cold capture / cold-read floor", issue: 17, bound: AtMost, goal: 1.3, measure: overFloor(ScenarioCaptureCold, ScenarioFloorRead)},
	{name: "cold incremental / cold-walk floor", issue: 17, bound: AtMost, goal: 1.5, measure: overFloor(ScenarioIncrementalCold, ScenarioFloorWalk)},
	{name: "stored bytes / restic", issue: 17, bound: AtMost, goal: 0.95, measure: measureStored},
	{name: "warm capture speed / restic", issue: 17, bound: AtLeast, goal: 2.5, measure: measureCaptureSpeed},
	{name: "capture peak RSS / borg", issue: 17, bound: AtMost, goal: 1.0, measure: measureRSS},
	{name: "restore-cold speed / restic", issue: 17, bound: Above, goal: 1, measure: restoreColdOver(ToolRestic)},
	{name: "restore-cold speed / borg", issue: 17, bound: Above, goal: 1, measure: restoreColdOver(ToolBorg)},
	{name: "restore-cold speed / tar|zstd", issue: 17, bound: Above, goal: 1, measure: restoreColdOver(ToolTar)},
	{name: "encrypted / unencrypted capture wall (medians)", issue: 16, bound: AtMost, goal: encryptionGoal, measure: encryptionCost(ScenarioCapture)},
	{name: "encrypted / unencrypted restore-all wall (medians)", issue: 16, bound: AtMost, goal: encryptionGoal, measure: encryptionCost(ScenarioRestoreAll)},
}

// CheckCriteria checks every criterion on the report's rows.
func (r *Report) CheckCriteria() []Criterion {
	out := make([]Criterion, 0, len(criteria))
	for _, spec := range criteria {
		c := Criterion{Name: spec.name, Issue: spec.issue, Bound: spec.bound, Goal: spec.goal, Target: string(spec.bound) + " " + spec.format(spec.goal)}
		v, detail, err := spec.measure(r)
		switch {
		case err != nil:
			c.Text, c.Verdict, c.Detail = "-", VerdictNotMeasured, err.Error()
		default:
			c.Value, c.Text, c.Detail = v, spec.format(v), detail
			c.Verdict = VerdictNotMet
			if spec.bound.holds(v, spec.goal) {
				c.Verdict = VerdictMet
			}
		}
		out = append(out, c)
	}
	return out
}

func (s criterionSpec) format(v float64) string {
	if s.percent {
		return fmt.Sprintf("%.0f%%", 100*v)
	}
	return fmt.Sprintf("%.2fx", v)
}

// defaultStoreScenarios are the scenarios with a row per store (or, the
// cold ones, a row named after the default store): smp's row there is
// DefaultSMP's. The serve scenarios have one row, tool smp, whatever
// store `smp init` makes.
var defaultStoreScenarios = []string{ScenarioCapture, ScenarioCaptureCold, ScenarioRestoreCold, ScenarioIncrementalCold}

// measured returns tool's row of scenario, or an error saying it is
// missing or why it holds no measurements.
func (r *Report) measured(tool, scenario string) (Row, error) {
	row, ok := r.Row(tool, scenario)
	if tool == ToolSMP && slices.Contains(defaultStoreScenarios, scenario) {
		row, ok = r.DefaultSMP(scenario)
	}
	switch {
	case !ok:
		return row, fmt.Errorf("no %s %s row", tool, scenario)
	case !row.OK():
		return row, fmt.Errorf("%s %s: %s", row.Tool, scenario, strings.TrimSuffix(row.Status+": "+row.Note, ": "))
	case row.WallSeconds <= 0:
		return row, fmt.Errorf("%s %s: no wall time", row.Tool, scenario)
	}
	return row, nil
}

// measuredPair returns the rows of a and b in scenario (smp's: the
// default store's).
func (r *Report) measuredPair(scenario, a, b string) (Row, Row, error) {
	ra, err := r.measured(a, scenario)
	if err != nil {
		return ra, Row{}, err
	}
	rb, err := r.measured(b, scenario)
	return ra, rb, err
}

func measureServeSplit(r *Report) (float64, string, error) {
	split, err := r.measured(ToolSMP, ScenarioServeSplit)
	if err != nil {
		return 0, "", err
	}
	one, err := r.measured(ToolSMP, ScenarioCapture1CPU)
	if err != nil {
		return 0, "", err
	}
	if split.MBps <= 0 || one.MBps <= 0 {
		return 0, "", fmt.Errorf("no throughput in %s or %s", ScenarioServeSplit, ScenarioCapture1CPU)
	}
	return split.MBps / one.MBps, fmt.Sprintf("%.0f MB/s through smp serve, %.0f MB/s local, both on one client CPU", split.MBps, one.MBps), nil
}

// overFloor is smp's cold row of scenario over the floor row's wall.
func overFloor(scenario, floor string) func(*Report) (float64, string, error) {
	return func(r *Report) (float64, string, error) {
		s, err := r.measured(ToolSMP, scenario)
		if err != nil {
			return 0, "", err
		}
		f, err := r.measured(ToolFloor, floor)
		if err != nil {
			return 0, "", err
		}
		return s.WallSeconds / f.WallSeconds, fmt.Sprintf("%s %.2f s / %.2f s", s.Tool, s.WallSeconds, f.WallSeconds), nil
	}
}

// alsoUnencrypted is "; unencrypted store: X" when the default store is
// the encrypted one and the unencrypted store's row of scenario has the
// figure ratio computes.
func (r *Report) alsoUnencrypted(s Row, scenario string, ratio func(Row) (float64, bool), format func(float64) string) string {
	if s.Tool == ToolSMP {
		return ""
	}
	plain, ok := r.Row(ToolSMP, scenario)
	if !ok || !plain.OK() {
		return ""
	}
	if v, ok := ratio(plain); ok {
		return "; unencrypted store: " + format(v)
	}
	return ""
}

func ratioText(v float64) string { return fmt.Sprintf("%.2fx", v) }

func measureStored(r *Report) (float64, string, error) {
	s, b, err := r.measuredPair(ScenarioCapture, ToolSMP, ToolRestic)
	if err != nil {
		return 0, "", err
	}
	if s.StoredBytes <= 0 || b.StoredBytes <= 0 {
		return 0, "", fmt.Errorf("no stored bytes in %s's or restic's capture row", s.Tool)
	}
	ratio := func(x Row) (float64, bool) { return float64(x.StoredBytes) / float64(b.StoredBytes), x.StoredBytes > 0 }
	v, _ := ratio(s)
	return v, fmt.Sprintf("%s %s / restic %s", s.Tool, humanize.IBytes(uint64(s.StoredBytes)), humanize.IBytes(uint64(b.StoredBytes))) +
		r.alsoUnencrypted(s, ScenarioCapture, ratio, ratioText), nil
}

func measureCaptureSpeed(r *Report) (float64, string, error) {
	s, b, err := r.measuredPair(ScenarioCapture, ToolSMP, ToolRestic)
	if err != nil {
		return 0, "", err
	}
	ratio := func(x Row) (float64, bool) { return b.WallSeconds / x.WallSeconds, x.WallSeconds > 0 }
	v, _ := ratio(s)
	return v, fmt.Sprintf("restic %.2f s / %s %.2f s", b.WallSeconds, s.Tool, s.WallSeconds) + r.alsoUnencrypted(s, ScenarioCapture, ratio, ratioText), nil
}

func measureRSS(r *Report) (float64, string, error) {
	s, b, err := r.measuredPair(ScenarioCapture, ToolSMP, ToolBorg)
	if err != nil {
		return 0, "", err
	}
	if s.PeakRSSMiB <= 0 || b.PeakRSSMiB <= 0 {
		return 0, "", fmt.Errorf("no peak RSS in %s's or borg's capture row", s.Tool)
	}
	ratio := func(x Row) (float64, bool) { return x.PeakRSSMiB / b.PeakRSSMiB, x.PeakRSSMiB > 0 }
	v, _ := ratio(s)
	return v, fmt.Sprintf("%s %.0f MiB / borg %.0f MiB", s.Tool, s.PeakRSSMiB, b.PeakRSSMiB) + r.alsoUnencrypted(s, ScenarioCapture, ratio, ratioText), nil
}

// restoreColdOver is the baseline's restore-cold wall over smp's: above
// 1, smp restores the profile faster from a cold cache.
func restoreColdOver(baseline string) func(*Report) (float64, string, error) {
	return func(r *Report) (float64, string, error) {
		s, b, err := r.measuredPair(ScenarioRestoreCold, ToolSMP, baseline)
		if err != nil {
			return 0, "", err
		}
		ratio := func(x Row) (float64, bool) { return b.WallSeconds / x.WallSeconds, x.WallSeconds > 0 }
		v, _ := ratio(s)
		return v, fmt.Sprintf("%s %.2f s / %s %.2f s", baseline, b.WallSeconds, s.Tool, s.WallSeconds) + r.alsoUnencrypted(s, ScenarioRestoreCold, ratio, ratioText), nil
	}
}

// encryptionCost is issue 16's ratio of medians for scenario (capture or
// restore-all), from the report's EncryptionCost.
func encryptionCost(scenario string) func(*Report) (float64, string, error) {
	return func(r *Report) (float64, string, error) {
		p, ok := r.Encryption.of(scenario)
		if !ok {
			if row, err := r.measured(ToolSMPEncrypted, scenario); err != nil && row.Tool != "" {
				return 0, "", err
			}
			return 0, "", fmt.Errorf("no encrypted and unencrypted %s rounds", scenario)
		}
		d := fmt.Sprintf("medians of %d rounds", len(p.Encrypted))
		if len(p.Encrypted) == 1 {
			d = "one round"
		}
		if p.CPURatio > 0 {
			d += fmt.Sprintf("; CPU %.2fx", p.CPURatio)
		}
		return p.Ratio, d, nil
	}
}
