package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRunEncrypted runs the capture, restore and restore-all scenarios
// with the real binary in two rounds: the capture and restore-all rows of
// smp and smp encrypted are each a median round, the report carries their
// wall and CPU ratios, the restore row (the first user, beside the
// baselines) is smp's alone, the encrypted store holds its key slots and
// its key file stays in the scratch directory.
func TestRunEncrypted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds smp and captures a corpus four times")
	}
	bin := buildSMP(t)
	work := t.TempDir()
	corpus := filepath.Join(work, "corpus")
	if out, err := exec.Command(bin, "bench", "corpus", "--out", corpus, "--users", "2", "--size", "6MiB", "--seed", "5").CombinedOutput(); err != nil {
		t.Fatalf("smp bench corpus: %v\n%s", err, out)
	}
	config := t.TempDir() // where smp init would keep a key file without --key-file
	var log bytes.Buffer
	env := append(childEnv("XDG_CONFIG_HOME=", "HOME=", "SMP_KEY_FILE="), "XDG_CONFIG_HOME="+config, "HOME="+config)
	r := &runner{opts: RunOptions{Bin: bin, Corpus: corpus, Rounds: 2}, log: &log, work: work, tools: map[string]string{}, env: env, userFiles: map[string]int64{}}
	r.rep = &Report{Corpus: CorpusReport{}}
	var events []string
	r.trace = func(e string) { events = append(events, e) }
	ctx := context.Background()
	r.smpHasEncrypt = true
	if err := r.prepareCorpus(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.smpCapture(ctx); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	enc := filepath.Join(work, "smp-enc-store")
	if _, err := os.Stat(filepath.Join(enc, "keys.json")); err != nil {
		t.Errorf("the encrypted store has no key slots: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.smpStore, "keys.json")); err == nil {
		t.Errorf("the unencrypted store %s has key slots", r.smpStore)
	}
	if err := r.smpRestore(ctx); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if err := r.smpRestoreAll(ctx); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Logf("\n%s", log.String())
	plain := filepath.Join(work, "smp-store")
	checkSettledRounds(t, events, "capture", r.users, "settle "+r.root, []string{plain, enc, enc, plain}, true)
	checkSettledRounds(t, events, "restore", r.users, "settle ", []string{plain, plain, plain, enc, enc, plain}, false)
	if row, ok := r.rep.Row(ToolSMP, ScenarioRestore); !ok || !row.OK() || row.Runs != 1 || row.Verified == nil || !*row.Verified ||
		!strings.Contains(row.Note, "median of 2 rounds") || strings.Contains(row.Note, "alternating") {
		t.Errorf("smp restore: %+v", row)
	}
	if row, ok := r.rep.Row(ToolSMPEncrypted, ScenarioRestore); ok {
		t.Errorf("an encrypted restore row of one user: %+v", row)
	}
	for _, tool := range []string{ToolSMP, ToolSMPEncrypted} {
		for _, sc := range []string{ScenarioCapture, ScenarioRestoreAll} {
			row, ok := r.rep.Row(tool, sc)
			if !ok || !row.OK() || row.WallSeconds <= 0 || row.CPUSeconds <= 0 || row.LogicalBytes != r.logical || row.Runs != len(r.users) ||
				!strings.Contains(row.Note, "median of 2 rounds") || !strings.Contains(row.Note, "alternating with") {
				t.Errorf("%s %s: %+v", tool, sc, row)
			}
			if sc == ScenarioRestoreAll && (row.Verified == nil || !*row.Verified) {
				t.Errorf("%s restore-all not verified: %+v", tool, row)
			}
		}
	}
	e := r.rep.Encryption
	if e == nil || e.Rounds != 2 || e.Goal != encryptionGoal {
		t.Fatalf("encryption cost: %+v", e)
	}
	for name, p := range map[string]PairedWalls{"capture": e.Capture, "restore": e.Restore} {
		if len(p.Unencrypted) != 2 || len(p.Encrypted) != 2 || len(p.UnencryptedCPU) != 2 || len(p.EncryptedCPU) != 2 ||
			len(p.PairRatios) != 2 || p.Ratio <= 0 || p.CPURatio <= 0 {
			t.Errorf("%s: %+v", name, p)
		}
	}
	plainRA, _ := r.rep.Row(ToolSMP, ScenarioRestoreAll)
	encRA, _ := r.rep.Row(ToolSMPEncrypted, ScenarioRestoreAll)
	if got, want := e.Restore.Ratio, encRA.WallSeconds/plainRA.WallSeconds; got < want*0.999 || got > want*1.001 {
		t.Errorf("restore ratio %v, rows give %v", got, want)
	}
	if !strings.Contains(log.String(), "[restore-all] encrypted/unencrypted: wall ") {
		t.Errorf("no restore-all cost line in the log")
	}
	ratios := r.rep.Compare()
	i := slices.IndexFunc(ratios, func(c Comparison) bool {
		return c.Scenario == ScenarioRestoreAll && strings.HasPrefix(c.Text, "encrypted store: ")
	})
	if i < 0 || ratios[i].Speedup <= 0 {
		t.Errorf("no encrypted restore-all comparison in %+v", ratios)
	}
	// The key file went to the scratch directory, never the user's.
	if ents, _ := os.ReadDir(config); len(ents) != 0 {
		t.Errorf("smp init wrote to the config directory: %v", ents)
	}
	if st, err := os.Stat(filepath.Join(work, "smp-enc.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", st, err)
	}
	// The restore-all scenario removes the encrypted store; the
	// unencrypted one stays for the later scenarios.
	if _, err := os.Stat(enc); !os.IsNotExist(err) {
		t.Errorf("encrypted store left behind: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.smpStore, "config.json")); err != nil {
		t.Errorf("unencrypted store: %v", err)
	}
}

// checkSettledRounds checks the order of the timed children of verb
// (capture or restore) among events (a runner's trace): they come in runs
// of one store each, in the order stores names (one child per user, or
// one for a run of a single restore); each run follows a settle that
// begins with settle (a capture's settles read the corpus, a restore's
// read the store: settle+store), with no other step in between, so no
// earlier step's writeback or cold pages land in a round; with fresh, the
// run's store was made by smp init right before that settle.
func checkSettledRounds(t *testing.T, events []string, verb string, users []string, settle string, stores []string, fresh bool) {
	t.Helper()
	storeOf := func(e string) string {
		f := strings.Fields(e)
		if i := slices.Index(f, "--store"); i >= 0 && i+1 < len(f) {
			return f[i+1]
		}
		return ""
	}
	timed := func(e string) bool { return strings.HasPrefix(e, "exec smp "+verb+" ") }
	var runs []string
	for i := 0; i < len(events); i++ {
		if !timed(events[i]) {
			continue
		}
		store, n := storeOf(events[i]), 0
		for i+n < len(events) && timed(events[i+n]) && storeOf(events[i+n]) == store {
			n++
		}
		if n != len(users) && n != 1 {
			t.Errorf("%s run %d into %s has %d children, want %d or 1: %q", verb, len(runs), store, n, len(users), events[i:i+n])
		}
		want := settle
		if verb == "restore" {
			want += store
		}
		if i == 0 || events[i-1] != want {
			t.Errorf("%s run %d into %s not right after %q: %q", verb, len(runs), store, want, events[max(i-2, 0):i+1])
		}
		if fresh && (i < 2 || !strings.HasPrefix(events[i-2], "exec smp init --store "+store)) {
			t.Errorf("%s run %d into %s: no smp init right before its settle: %q", verb, len(runs), store, events[max(i-2, 0):i+1])
		}
		runs = append(runs, store)
		i += n - 1
	}
	if !slices.Equal(runs, stores) {
		t.Errorf("%s runs into %q, want %q", verb, runs, stores)
	}
}

// TestRoundsMedian: rounds alternate ABBA and a row is the median round.
func TestRoundsMedian(t *testing.T) {
	if got := [][]int{roundOrder(0, 2), roundOrder(1, 2), roundOrder(2, 2), roundOrder(1, 1)}; !slices.EqualFunc(got, [][]int{{0, 1}, {1, 0}, {0, 1}, {0}}, slices.Equal) {
		t.Errorf("round orders %v", got)
	}
	s := func(f float64) agg {
		return agg{wall: time.Duration(f * float64(time.Second)), cpu: time.Second, runs: 1}
	}
	m, walls := medianAgg([]agg{s(3), s(1), s(2)})
	if m.wall != 2*time.Second || !slices.Equal(walls, []float64{3, 1, 2}) {
		t.Errorf("median %v of %v", m.wall, walls)
	}
	if m, _ := medianAgg([]agg{s(4), s(2)}); m.wall != 2*time.Second {
		t.Errorf("lower median of two: %v", m.wall)
	}
	p := pair([]agg{s(2), s(4), s(3)}, []agg{s(2.2), s(4), s(3.3)})
	if p.Ratio < 1.0999 || p.Ratio > 1.1001 || len(p.PairRatios) != 3 || p.PairRatios[1] != 1 || p.CPURatio != 1 {
		t.Errorf("pair: %+v", p)
	}
	// CPU has its own median: not the CPU of the median wall round.
	c := func(wall, cpu float64) agg {
		return agg{wall: time.Duration(wall * float64(time.Second)), cpu: time.Duration(cpu * float64(time.Second)), runs: 1}
	}
	p = pair([]agg{c(2, 1.0), c(3, 1.2), c(4, 1.1)}, []agg{c(2.1, 1.5), c(3.0, 1.1), c(5, 1.2)})
	if p.Ratio != 1 || p.CPURatio < 1.0908 || p.CPURatio > 1.0910 || !slices.Equal(p.EncryptedCPU, []float64{1.5, 1.1, 1.2}) {
		t.Errorf("pair with CPU: %+v", p)
	}
	if !p.Within(1.10) || p.Within(1.05) || (PairedWalls{Ratio: 1.05}).Within(1.10) || (PairedWalls{Ratio: 1.2, CPURatio: 1}).Within(1.10) {
		t.Errorf("Within: %+v", p)
	}
	if m := median([]float64{3, 1, 2, 4}); m != 2 {
		t.Errorf("lower median %v", m)
	}
	if m := median(nil); m != 0 {
		t.Errorf("median of none %v", m)
	}
	if n := roundsNote([]float64{1}, "x"); n != "" {
		t.Errorf("one round's note %q", n)
	}
	if n := roundsNote([]float64{2, 1.5, 3}, ToolSMP); n != "median of 3 rounds (1.50-3.00 s), alternating with smp" {
		t.Errorf("note %q", n)
	}
}

// TestCompareEncrypted: the "encrypted store" ratio of capture and
// restore-all gives the wall ratio of the rows (the median rounds) and
// the CPU ratio of the medians of every round's CPU, as the report's
// encryption section does; restore (one user) has no such line.
func TestCompareEncrypted(t *testing.T) {
	row := func(tool, sc string, wall, cpu float64) Row {
		return Row{Tool: tool, Scenario: sc, Status: StatusOK, WallSeconds: wall, CPUSeconds: cpu, MBps: 1}
	}
	rep := &Report{Rows: []Row{
		row(ToolSMP, ScenarioCapture, 10, 15), row(ToolSMPEncrypted, ScenarioCapture, 10.5, 18),
		row(ToolSMP, ScenarioRestore, 1, 1.5),
		row(ToolSMP, ScenarioRestoreAll, 8, 12), row(ToolSMPEncrypted, ScenarioRestoreAll, 8.8, 13),
	}}
	rep.Encryption = &EncryptionCost{Rounds: 5, Goal: encryptionGoal,
		Capture: PairedWalls{Ratio: 1.05, CPURatio: 1.07},
		Restore: PairedWalls{Ratio: 1.1, CPURatio: 1.09}}
	texts := map[string]Comparison{}
	for _, c := range rep.Compare() {
		if strings.HasPrefix(c.Text, "encrypted store: ") {
			texts[c.Scenario] = c
		}
	}
	if c := texts[ScenarioCapture]; c.Text != "encrypted store: 1.050x the unencrypted wall time (CPU 1.070x)" || c.CPURatio != 1.07 {
		t.Errorf("capture: %+v", c)
	}
	if c := texts[ScenarioRestoreAll]; c.Text != "encrypted store: 1.100x the unencrypted wall time (CPU 1.090x)" {
		t.Errorf("restore-all: %+v", c)
	}
	if c, ok := texts[ScenarioRestore]; ok || len(texts) != 2 {
		t.Errorf("restore of one user: %+v (%d lines)", c, len(texts))
	}
	// Without the encryption section (a report from before), the rows'
	// own CPU seconds.
	rep.Encryption = nil
	for _, c := range rep.Compare() {
		if c.Scenario == ScenarioCapture && strings.HasPrefix(c.Text, "encrypted store: ") && c.CPURatio != 1.2 {
			t.Errorf("capture without the encryption section: %+v", c)
		}
	}
}
