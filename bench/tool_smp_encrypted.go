package bench

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// ToolSMPEncrypted is smp on an encrypted store (`smp init` with a key
// file in the scratch directory): its capture and restore rows sit beside
// smp's, measured in the same rounds.
const ToolSMPEncrypted = "smp encrypted"

// smpInit makes a fresh store: unencrypted when keyFile is "", else
// encrypted with its key file written to keyFile (a new file, which smp
// init refuses to overwrite: an earlier round's is removed first).
func (r *runner) smpInit(ctx context.Context, store, keyFile string) error {
	args := initArgs(store, keyFile != "")
	if keyFile != "" {
		if err := os.Remove(keyFile); err != nil && !os.IsNotExist(err) {
			return err
		}
		args = append(args, "--key-file", keyFile)
	}
	_, err := r.output(ctx, r.opts.Bin, args...)
	return err
}

// keyArgs are the flags that give a command the key of the store whose
// key file is keyFile ("" for an unencrypted store).
func keyArgs(keyFile string) []string {
	if keyFile == "" {
		return nil
	}
	return []string{"--key-file", keyFile}
}

// variant is one of the two stores the capture and restore scenarios
// measure in alternation: unencrypted (smp) and encrypted.
type variant struct {
	tool    string
	store   string
	keyFile string // "" for the unencrypted store
}

// variants are the stores of the capture and restore scenarios: smp's,
// then the encrypted one when this build has encrypted stores.
func (r *runner) variants() []variant {
	vs := []variant{{tool: ToolSMP, store: filepath.Join(r.work, "smp-store")}}
	if r.smpHasEncrypt {
		vs = append(vs, variant{tool: ToolSMPEncrypted, store: filepath.Join(r.work, "smp-enc-store"), keyFile: filepath.Join(r.work, "smp-enc.key")})
	}
	return vs
}

// roundOrder is the order of the variants in round k: forward in even
// rounds, backward in odd ones (ABBA), so that neither always runs first
// after a settle or always second while the first one's writeback drains.
func roundOrder(k, n int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
		if k%2 == 1 {
			order[i] = n - 1 - i
		}
	}
	return order
}

// noEncryption adds the encrypted row of scenario that a build without
// encrypted stores cannot measure.
func (r *runner) noEncryption(scenario string) {
	if !r.smpHasEncrypt {
		r.add(Row{Tool: ToolSMPEncrypted, Scenario: scenario, Status: StatusUnavailable, Note: "not available in this build (smp init has no --key-file)"})
	}
}

// rounds is how many times the capture, restore and restore-all
// scenarios run.
func (r *runner) rounds() int { return max(r.opts.Rounds, 1) }

// medianAgg is the round with the median wall time (the lower median of
// an even number), and the walls of every round in the order they ran.
func medianAgg(rounds []agg) (agg, []float64) {
	walls := make([]float64, len(rounds))
	for i, a := range rounds {
		walls[i] = a.wall.Seconds()
	}
	sorted := slices.SortedFunc(slices.Values(rounds), func(a, b agg) int { return cmp.Compare(a.wall, b.wall) })
	return sorted[(len(sorted)-1)/2], walls
}

// roundsNote is "median of 3 rounds (10.1-11.3 s), alternating with
// smp encrypted", or "" for one round.
func roundsNote(walls []float64, other string) string {
	if len(walls) < 2 {
		return ""
	}
	lo, hi := slices.Min(walls), slices.Max(walls)
	s := fmt.Sprintf("median of %d rounds (%.2f-%.2f s)", len(walls), lo, hi)
	if other != "" {
		s += ", alternating with " + other
	}
	return s
}

// otherTool is the tool the rounds of v alternate with ("" when alone).
func otherTool(vs []variant, v variant) string {
	for _, o := range vs {
		if o.tool != v.tool {
			return o.tool
		}
	}
	return ""
}

// EncryptionCost is what encryption at rest costs smp on this run: the
// wall and CPU times of the capture rounds (every user) and the
// restore-all rounds (every user's record) on an unencrypted and an
// encrypted store, run alternately so that the machine's noise falls on
// both alike. Goal is the largest ratio of medians issue 16 allows.
type EncryptionCost struct {
	Rounds  int         `json:"rounds"`
	Goal    float64     `json:"goal"`
	Capture PairedWalls `json:"capture"`
	Restore PairedWalls `json:"restore"` // the restore-all scenario
}

// of returns the ratios of scenario (capture or restore-all), when e
// holds them.
func (e *EncryptionCost) of(scenario string) (PairedWalls, bool) {
	var p PairedWalls
	switch {
	case e == nil:
	case scenario == ScenarioCapture:
		p = e.Capture
	case scenario == ScenarioRestoreAll:
		p = e.Restore
	}
	return p, p.Ratio > 0
}

// encryptionGoal: encrypted capture and restore within 10% of the
// unencrypted ones' wall time.
const encryptionGoal = 1.10

// PairedWalls are one scenario's wall and CPU seconds per round, in the
// order the rounds ran. Ratio is the median encrypted wall time over the
// median unencrypted one (1.05: encryption costs 5% of wall time),
// CPURatio the same of CPU seconds (each median taken on its own), and
// PairRatios the wall ratios round by round.
type PairedWalls struct {
	Unencrypted    []float64 `json:"unencrypted_wall_seconds"`
	Encrypted      []float64 `json:"encrypted_wall_seconds"`
	UnencryptedCPU []float64 `json:"unencrypted_cpu_seconds"`
	EncryptedCPU   []float64 `json:"encrypted_cpu_seconds"`
	Ratio          float64   `json:"ratio"`
	CPURatio       float64   `json:"cpu_ratio,omitempty"`
	PairRatios     []float64 `json:"pair_ratios"`
}

// Within reports whether both medians, wall and CPU, are within goal.
func (p PairedWalls) Within(goal float64) bool {
	return p.Ratio > 0 && p.Ratio <= goal && p.CPURatio > 0 && p.CPURatio <= goal
}

// median is the lower median of v (0 for none).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	return s[(len(s)-1)/2]
}

// pair fills p from the rounds of the two variants.
func pair(plain, enc []agg) PairedWalls {
	_, pw := medianAgg(plain)
	_, ew := medianAgg(enc)
	p := PairedWalls{Unencrypted: pw, Encrypted: ew, UnencryptedCPU: cpuSeconds(plain), EncryptedCPU: cpuSeconds(enc)}
	if m := median(pw); m > 0 {
		p.Ratio = median(ew) / m
	}
	if m := median(p.UnencryptedCPU); m > 0 {
		p.CPURatio = median(p.EncryptedCPU) / m
	}
	for i := range min(len(pw), len(ew)) {
		if pw[i] > 0 {
			p.PairRatios = append(p.PairRatios, ew[i]/pw[i])
		}
	}
	return p
}

func cpuSeconds(rounds []agg) []float64 {
	out := make([]float64, len(rounds))
	for i, a := range rounds {
		out[i] = a.cpu.Seconds()
	}
	return out
}

// recordCost records the encrypted/unencrypted ratios of scenario
// (capture or restore-all) when both variants ran.
func (r *runner) recordCost(scenario string, byTool map[string][]agg) {
	plain, enc := byTool[ToolSMP], byTool[ToolSMPEncrypted]
	if len(plain) == 0 || len(enc) == 0 {
		return
	}
	if r.rep.Encryption == nil {
		r.rep.Encryption = &EncryptionCost{Rounds: r.rounds(), Goal: encryptionGoal}
	}
	p := pair(plain, enc)
	switch scenario {
	case ScenarioCapture:
		r.rep.Encryption.Capture = p
	case ScenarioRestoreAll:
		r.rep.Encryption.Restore = p
	}
	verdict := "within"
	if !p.Within(encryptionGoal) {
		verdict = "NOT within"
	}
	r.logf("[%s] encrypted/unencrypted: wall %.3f, CPU %.3f (medians of %d rounds; %s the goal of %.2f); wall rounds %v vs %v, CPU rounds %v vs %v", scenario, p.Ratio, p.CPURatio,
		len(p.Encrypted), verdict, encryptionGoal, fmtSeconds(p.Encrypted), fmtSeconds(p.Unencrypted), fmtSeconds(p.EncryptedCPU), fmtSeconds(p.UnencryptedCPU))
}

func fmtSeconds(s []float64) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = (time.Duration(v*1e3) * time.Millisecond).Round(10 * time.Millisecond).String()
	}
	return out
}
