package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smp/bench"
)

// TestE2EBenchRunQuick is the CI smoke test of `smp bench run`: the real
// binary (built by TestMain, without -race) generates a
// small corpus, captures and restores it as child processes and compares
// with the baselines that are installed, and through smp serve (one client
// at a time, then 16 at once, verified). It checks the report's shape and
// invariants, not speeds. About a minute on 2 busy vCPUs.
func TestE2EBenchRunQuick(t *testing.T) {
	t.Parallel()
	work := tmpDir(t)
	plot := filepath.Join(work, "bench.svg")
	args := []string{"bench", "run", "--quick", "--json", "--work", work, "--plot", plot}
	if raceEnabled() {
		// The -race run shares the machine with every other package's
		// tests: a smaller corpus keeps this smoke test of the harness
		// short. smpPath is a plain build here too (16 race-instrumented
		// clients at once took over 10 minutes on 2 vCPUs).
		args = append(args, "--size", "16MiB")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, smpPath(t), args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SMP_STORE=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("smp %s: %.1fs\n%s", strings.Join(args, " "), time.Since(start).Seconds(), stderr.String())
	if err != nil {
		t.Fatalf("smp bench run: %v\nstdout:\n%s", err, stdout.String())
	}
	if strings.Contains(stderr.String(), "WARNING: DATA RACE") {
		t.Errorf("data race in smp bench run")
	}

	var rep bench.Report
	dec := json.NewDecoder(&stdout)
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("decode the report: %v", err)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value on stdout")
	}
	row := func(tool, scenario string) bench.Row {
		t.Helper()
		r, ok := rep.Row(tool, scenario)
		if !ok {
			t.Fatalf("no %s %s row in %+v", tool, scenario, rep.Rows)
		}
		return r
	}

	info := rep.Corpus.Info
	if info == nil || len(info.Users) != 3 || info.Bytes <= 0 || !rep.Corpus.Generated {
		t.Fatalf("corpus: %+v", rep.Corpus)
	}
	if rep.Machine.Cores < 1 || rep.Machine.GOOS == "" || rep.Machine.GoVersion == "" || rep.Date == "" {
		t.Errorf("machine info: %+v, date %q", rep.Machine, rep.Date)
	}

	capture := row("smp", bench.ScenarioCapture)
	if !capture.OK() || capture.Runs != 3 || capture.MBps <= 0 || capture.WallSeconds <= 0 || capture.CPUSeconds <= 0 || capture.PeakRSSMiB <= 0 {
		t.Errorf("smp capture row: %+v", capture)
	}
	if capture.LogicalBytes != info.Bytes {
		t.Errorf("smp captured %d logical bytes; the corpus holds %d", capture.LogicalBytes, info.Bytes)
	}
	if capture.StoredBytes <= 0 || capture.StoredBytes >= capture.LogicalBytes || capture.DedupeRatio <= 1 {
		t.Errorf("smp capture: stored %d of %d logical bytes, dedupe %.2f; want 0 < stored < logical",
			capture.StoredBytes, capture.LogicalBytes, capture.DedupeRatio)
	}
	restore := row("smp", bench.ScenarioRestore)
	if !restore.OK() || restore.MBps <= 0 || restore.LogicalBytes <= 0 || restore.Verified == nil || !*restore.Verified {
		t.Errorf("smp restore row: %+v", restore)
	}
	if !rep.RestoreVerified {
		t.Errorf("restore_verified is false")
	}
	// Capture and the restore of every user, on both stores, and what
	// encryption costs.
	for _, tool := range []string{bench.ToolSMP, bench.ToolSMPEncrypted} {
		for _, sc := range []string{bench.ScenarioCapture, bench.ScenarioRestoreAll} {
			if r := row(tool, sc); !r.OK() || r.MBps <= 0 || r.LogicalBytes != info.Bytes {
				t.Errorf("%s %s row: %+v", tool, sc, r)
			}
		}
	}
	if r := row(bench.ToolSMPEncrypted, bench.ScenarioRestoreAll); r.Verified == nil || !*r.Verified || r.Runs != len(info.Users) {
		t.Errorf("smp encrypted restore-all row: %+v", r)
	}
	if e := rep.Encryption; e == nil || e.Rounds != 1 || e.Goal != 1.10 || e.Capture.Ratio <= 0 || e.Restore.Ratio <= 0 || e.Restore.CPURatio <= 0 {
		t.Errorf("encryption cost: %+v", e)
	}

	// Baselines: measured when installed, otherwise rows that say so.
	for _, b := range []struct{ tool, bin string }{{"cp -a", "cp"}, {"tar|zstd", "zstd"}, {"restic", "restic"}, {"borg", "borg"}} {
		for _, sc := range []string{bench.ScenarioCapture, bench.ScenarioRestore} {
			r := row(b.tool, sc)
			if _, err := exec.LookPath(b.bin); err != nil {
				if r.Status != bench.StatusNotInstalled || !strings.Contains(r.Note, "install-baselines.sh") {
					t.Errorf("%s %s without %s: %+v", b.tool, sc, b.bin, r)
				}
				continue
			}
			if !r.OK() || r.MBps <= 0 {
				t.Errorf("%s %s row: %+v", b.tool, sc, r)
			}
			if sc == bench.ScenarioRestore && (r.Verified == nil || !*r.Verified) {
				t.Errorf("%s restore not verified: %+v", b.tool, r)
			}
		}
	}
	// The incremental scenario runs or is skipped (while corpus.MutateOrg is
	// not implemented), but is reported either way.
	inc := row("smp", bench.ScenarioIncremental)
	switch inc.Status {
	case bench.StatusOK:
		if inc.MBps <= 0 || inc.LogicalBytes <= 0 {
			t.Errorf("smp incremental row: %+v", inc)
		}
	case bench.StatusSkipped:
		if inc.Note == "" {
			t.Errorf("incremental skipped without a reason")
		}
	default:
		t.Errorf("smp incremental row: %+v", inc)
	}
	if r := row("smp", bench.ScenarioHardlink); r.Status != bench.StatusOK && r.Status != bench.StatusUnavailable && r.Status != bench.StatusSkipped {
		t.Errorf("smp %s row: %+v", bench.ScenarioHardlink, r)
	}
	// The one-process hard-link rows are the median of interleaved runs.
	for _, b := range []struct{ tool, sc string }{{"smp", bench.ScenarioHardlinkAll}, {"smp", bench.ScenarioHardlinkRestore}, {"cp -al", bench.ScenarioHardlinkAll}} {
		if r := row(b.tool, b.sc); !r.OK() || r.WallSeconds <= 0 || !strings.Contains(r.Note, "median of 5 runs (") {
			t.Errorf("%s %s row: %+v", b.tool, b.sc, r)
		}
	}
	if r := row("smp", bench.ScenarioHardlinkRestore); r.Verified == nil || !*r.Verified {
		t.Errorf("smp %s not verified: %+v", bench.ScenarioHardlinkRestore, r)
	}
	// Through smp serve: the same captures one at a time, then 16 clients
	// at once, every record restored byte-identical and each shared chunk
	// stored once.
	corpusNow := capture.LogicalBytes
	if inc.OK() {
		corpusNow = inc.LogicalBytes // serve runs on the changed corpus
	}
	serve := row("smp", bench.ScenarioServe)
	if !serve.OK() || serve.Runs != 3 || serve.MBps <= 0 || serve.CPUSeconds <= 0 || serve.LogicalBytes != corpusNow ||
		serve.StoredBytes <= 0 || !strings.Contains(serve.Note, "% of local capture throughput") {
		t.Errorf("smp serve row: %+v", serve)
	}
	load := row("smp", bench.ScenarioServeLoad)
	if !load.OK() || load.Runs != 16 || load.Verified == nil || !*load.Verified || load.MBps <= 0 || load.LogicalBytes <= 5*corpusNow ||
		!strings.Contains(load.Note, "16 concurrent clients, 16 records verified byte-identical, chunks stored once (") {
		t.Errorf("smp serve-16 row: %+v", load)
	}
	var serveSummary bool
	for _, l := range rep.Summary() {
		serveSummary = serveSummary || (strings.HasPrefix(l, "serve: ") && strings.Contains(l, "16 clients: "))
	}
	if !serveSummary {
		t.Errorf("no serve line in the summary %q", rep.Summary())
	}
	checkBenchCold(t, &rep)
	if len(rep.Ratios) == 0 && len(rep.Rows) > 0 {
		if r, _ := rep.Row("cp -a", bench.ScenarioCapture); r.OK() {
			t.Errorf("no ratios although cp -a ran")
		}
	}

	// The chart is well-formed SVG.
	svg, err := os.ReadFile(plot)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(svg))
	for {
		if _, err := d.Token(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Errorf("--plot output is not well-formed: %v", err)
			}
			break
		}
	}
	// The scratch directory under --work was removed.
	if ents, _ := os.ReadDir(work); len(ents) != 1 || ents[0].Name() != "bench.svg" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("--work holds %v after the run; want only bench.svg", names)
	}
}

// checkBenchCold checks TestE2EBenchRunQuick's cold rows of every tool
// (measured as root, skipped otherwise), the issues' criteria (each met,
// not met, or not measured with a reason; the restore-cold ones measured
// when the cold rows and the baseline ran) and the phase times.
func checkBenchCold(t *testing.T, rep *bench.Report) {
	t.Helper()
	root := os.Geteuid() == 0
	for _, c := range []struct {
		tool, bin, sc string
	}{
		{bench.ToolSMPEncrypted, "", bench.ScenarioCaptureCold}, {bench.ToolSMPEncrypted, "", bench.ScenarioRestoreCold},
		{bench.ToolSMP, "", bench.ScenarioRestoreCold}, {bench.ToolCp, "cp", bench.ScenarioRestoreCold},
		{bench.ToolTar, "zstd", bench.ScenarioCaptureCold}, {bench.ToolTar, "zstd", bench.ScenarioRestoreCold},
		{bench.ToolRestic, "restic", bench.ScenarioCaptureCold}, {bench.ToolRestic, "restic", bench.ScenarioRestoreCold},
		{bench.ToolBorg, "borg", bench.ScenarioCaptureCold}, {bench.ToolBorg, "borg", bench.ScenarioRestoreCold},
	} {
		r, ok := rep.Row(c.tool, c.sc)
		_, missing := exec.LookPath(c.bin)
		switch {
		case !ok:
			t.Errorf("no %s %s row", c.tool, c.sc)
		case !root:
			if r.Status != bench.StatusSkipped || !strings.Contains(r.Note, "not root") {
				t.Errorf("%s %s without root: %+v", c.tool, c.sc, r)
			}
		case c.bin != "" && missing != nil:
			if r.Status != bench.StatusNotInstalled {
				t.Errorf("%s %s without %s: %+v", c.tool, c.sc, c.bin, r)
			}
		case !r.OK() || r.WallSeconds <= 0 || !strings.Contains(r.Note, "page cache dropped first"):
			t.Errorf("%s %s row: %+v", c.tool, c.sc, r)
		case c.sc == bench.ScenarioRestoreCold && (r.Verified == nil || !*r.Verified):
			t.Errorf("%s %s not verified: %+v", c.tool, c.sc, r)
		}
	}
	if len(rep.Criteria) != 11 {
		t.Errorf("%d criteria: %+v", len(rep.Criteria), rep.Criteria)
	}
	for _, c := range rep.Criteria {
		switch c.Verdict {
		case bench.VerdictMet, bench.VerdictNotMet:
			if c.Value <= 0 || c.Text == "-" {
				t.Errorf("criterion %+v", c)
			}
		case bench.VerdictNotMeasured:
			if c.Detail == "" {
				t.Errorf("criterion not measured without a reason: %+v", c)
			}
		default:
			t.Errorf("criterion %+v", c)
		}
		_, restic := exec.LookPath("restic")
		if c.Name == "restore-cold speed / restic" && (c.Verdict == bench.VerdictNotMeasured) != (!root || restic != nil) {
			t.Errorf("criterion %+v (root %v, restic %v)", c, root, restic)
		}
	}
	var names []string
	for _, p := range rep.Phases {
		names = append(names, p.Name)
		if p.Seconds < 0 {
			t.Errorf("phase %+v", p)
		}
	}
	if got := strings.Join(names, ","); !strings.HasPrefix(got, "setup and corpus,capture,capture-cold,restore,restore-cold,restore-all,") || !strings.HasSuffix(got, ",serve") {
		t.Errorf("phases %s", got)
	}
}
