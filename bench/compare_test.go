package bench

import (
	"encoding/json"
	"strings"
	"testing"

	"smp/bench/corpus"
)

// syntheticReport is a report as Run would make it, with round numbers.
func syntheticReport() *Report {
	yes := true
	const gib = 1 << 30
	rep := &Report{
		Date:    "2026-11-25T12:00:00Z",
		Machine: Machine{Cores: 2, GOOS: "linux", GOARCH: "amd64", GoVersion: "go1.26.8", SMPVersion: "smp 0.1.0-dev"},
		Corpus: CorpusReport{Generated: true, Seed: 1, Size: 2 * gib,
			Info: &corpus.OrgInfo{Root: "/tmp/c", Users: []string{"user01", "user02"}, Files: 1000, Bytes: 2 * gib, ZstdRatio: 1.7}},
		RestoreVerified: true,
		Cold:            &ColdReport{ReadFloorSeconds: 4, ReadFloorCPUSeconds: 2.5, WalkFloorSeconds: 2, WalkFloorCPUSeconds: 0.8, CaptureOverReadFloor: 1.5, IncrementalOverWalkFloor: 1.2},
		Rows: []Row{
			{Tool: ToolSMP, Scenario: ScenarioCapture, Status: StatusOK, WallSeconds: 7.158, MBps: 300, CPUSeconds: 13, PeakRSSMiB: 180,
				LogicalBytes: 2 * gib, StoredBytes: 1200 << 20, DedupeRatio: 1.71, Files: 1000, FilesPerSec: 139.7},
			{Tool: ToolRestic, Scenario: ScenarioCapture, Status: StatusOK, WallSeconds: 19.33, MBps: 111, CPUSeconds: 30, PeakRSSMiB: 250,
				LogicalBytes: 2 * gib, StoredBytes: 1500 << 20, DedupeRatio: 1.37},
			{Tool: ToolTar, Scenario: ScenarioCapture, Status: StatusOK, WallSeconds: 7.158, MBps: 300, CPUSeconds: 14, PeakRSSMiB: 40,
				LogicalBytes: 2 * gib, StoredBytes: 1000 << 20, DedupeRatio: 2.06, Note: "one archive | user"},
			{Tool: ToolCp, Scenario: ScenarioCapture, Status: StatusFailed, Note: "cp: No space left on device"},
			{Tool: ToolSMP, Scenario: ScenarioRestore, Status: StatusOK, WallSeconds: 1, MBps: 268, CPUSeconds: 1.5, PeakRSSMiB: 90,
				LogicalBytes: gib / 4, Verified: &yes},
			{Tool: ToolRestic, Scenario: ScenarioRestore, Status: StatusOK, WallSeconds: 4, MBps: 67, CPUSeconds: 5, PeakRSSMiB: 200,
				LogicalBytes: gib / 4, Verified: &yes},
			{Tool: ToolTar, Scenario: ScenarioRestore, Status: StatusOK, WallSeconds: 1.9, MBps: 141, CPUSeconds: 2, PeakRSSMiB: 30,
				LogicalBytes: gib / 4, Verified: &yes},
			{Tool: ToolSMP, Scenario: ScenarioIncremental, Status: StatusSkipped, Note: "corpus mutation failed: not implemented yet"},
			{Tool: ToolRestic, Scenario: ScenarioIncremental, Status: StatusSkipped, Note: "corpus mutation failed: not implemented yet"},
			{Tool: ToolTar, Scenario: ScenarioIncremental, Status: StatusSkipped, Note: "corpus mutation failed: not implemented yet"},
			{Tool: ToolSMP, Scenario: ScenarioHardlink, Status: StatusUnavailable, Note: "not available in this build"},
			{Tool: ToolCpLink, Scenario: ScenarioHardlink, Status: StatusOK, WallSeconds: 0.8, MBps: 2700, CPUSeconds: 0.7, PeakRSSMiB: 12,
				LogicalBytes: 2 * gib, StoredBytes: 3 << 20, DedupeRatio: 680},
			{Tool: ToolSMP, Scenario: ScenarioServe, Status: StatusUnavailable, Note: "not available in this build"},
		},
	}
	rep.Ratios = rep.Compare()
	return rep
}

// syntheticServeReport is syntheticReport with both serve scenarios
// measured.
func syntheticServeReport() *Report {
	rep := syntheticReport()
	yes := true
	const gib = 1 << 30
	rows := rep.Rows[:0]
	for _, row := range rep.Rows {
		if row.Scenario != ScenarioServe {
			rows = append(rows, row)
		}
	}
	rep.Rows = append(rows,
		Row{Tool: ToolSMP, Scenario: ScenarioServe, Status: StatusOK, Runs: 2, WallSeconds: 8.5, MBps: 252, CPUSeconds: 19.5, PeakRSSMiB: 120,
			LogicalBytes: 2 * gib, StoredBytes: 1200 << 20, DedupeRatio: 1.71,
			Note: "through smp serve on loopback: 84% of local capture throughput; server CPU 6.0s (included), peak RSS 150 MiB"},
		Row{Tool: ToolSMP, Scenario: ScenarioServeLoad, Status: StatusOK, Runs: 16, WallSeconds: 41.9, MBps: 410, CPUSeconds: 120, PeakRSSMiB: 130,
			LogicalBytes: 16 * gib, StoredBytes: 1200 << 20, DedupeRatio: 13.6, Verified: &yes,
			Note: "16 concurrent clients, 16 records verified byte-identical, chunks stored once (9000 = 9000)"},
	)
	rep.Ratios = rep.Compare()
	return rep
}

func TestCompareServe(t *testing.T) {
	rep := syntheticServeReport()
	var serve, load *Comparison
	for i, c := range rep.Ratios {
		switch c.Scenario {
		case ScenarioServe:
			serve = &rep.Ratios[i]
		case ScenarioServeLoad:
			load = &rep.Ratios[i]
		}
	}
	if serve == nil || load == nil {
		t.Fatalf("no serve comparisons in %+v", rep.Ratios)
	}
	if d := serve.Speedup - 252.0/300; d > 1e-9 || d < -1e-9 || serve.Text != "84% of local capture throughput" || serve.Baseline == "" {
		t.Errorf("serve: %+v", *serve)
	}
	// More CPU per logical byte than the local capture.
	if d := serve.CPURatio - 1.5; d > 1e-9 || d < -1e-9 {
		t.Errorf("serve CPU ratio %v, want 1.5", serve.CPURatio)
	}
	if d := load.Speedup - 410.0/252; d > 1e-9 || d < -1e-9 || load.Text != "16 clients: 410 MB/s aggregate (1.6x one client at a time)" {
		t.Errorf("serve-16: %+v", *load)
	}
	// Without a sequential serve row, serve-16 stands alone; without the
	// local capture, serve has nothing to be compared with.
	rep.Rows = append(rep.Rows[:0:0], rep.Rows...)
	for i, row := range rep.Rows {
		if row.Scenario == ScenarioServe || (row.Tool == ToolSMP && row.Scenario == ScenarioCapture) {
			rep.Rows[i].Status = StatusFailed
		}
	}
	var got []Comparison
	for _, c := range rep.Compare() {
		if c.Scenario == ScenarioServe || c.Scenario == ScenarioServeLoad {
			got = append(got, c)
		}
	}
	if len(got) != 1 || got[0].Scenario != ScenarioServeLoad || got[0].Text != "16 clients: 410 MB/s aggregate" || got[0].Speedup != 0 {
		t.Errorf("without serve and capture: %+v", got)
	}
}

func TestSummaryServe(t *testing.T) {
	got := syntheticServeReport().Summary()
	want := []string{
		"capture: 2.7x faster than restic, 0.8x the stored bytes; 1.0x faster than tar|zstd, 1.2x the stored bytes",
		"restore: 4.0x faster than restic; 1.9x faster than tar|zstd",
		"serve: 84% of local capture throughput; 16 clients: 410 MB/s aggregate (1.6x one client at a time)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("summary:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFormatRatio(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{2.7, "2.7"}, {2.74, "2.7"}, {1, "1.0"}, {0.8, "0.8"}, {0.834, "0.83"}, {0.0456, "0.046"},
		{12.4, "12"}, {140.2, "140"}, {9.96, "10"}, {9.94, "9.9"}, {0.996, "1.0"}, {0.99, "0.99"},
	} {
		if got := FormatRatio(tc.in); got != tc.want {
			t.Errorf("FormatRatio(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCompare(t *testing.T) {
	rep := syntheticReport()
	byKey := map[string]Comparison{}
	for _, c := range rep.Ratios {
		byKey[c.Scenario+"/"+c.Baseline] = c
	}
	tests := []struct {
		key      string
		speedup  float64
		stored   float64
		wantText string
	}{
		{"capture/restic", 19.33 / 7.158, 1200.0 / 1500, "2.7x faster than restic, 0.8x the stored bytes"},
		{"capture/tar|zstd", 1, 1.2, "1.0x faster than tar|zstd, 1.2x the stored bytes"},
		{"restore/restic", 4, 0, "4.0x faster than restic"},
		{"restore/tar|zstd", 1.9, 0, "1.9x faster than tar|zstd"},
	}
	for _, tc := range tests {
		c, ok := byKey[tc.key]
		if !ok {
			t.Errorf("no comparison %s in %+v", tc.key, rep.Ratios)
			continue
		}
		if diff := c.Speedup - tc.speedup; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s: speedup %v, want %v", tc.key, c.Speedup, tc.speedup)
		}
		if diff := c.StoredRatio - tc.stored; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s: stored ratio %v, want %v", tc.key, c.StoredRatio, tc.stored)
		}
		if c.Text != tc.wantText {
			t.Errorf("%s: text %q, want %q", tc.key, c.Text, tc.wantText)
		}
	}
	// Failed, skipped and unavailable rows are not compared.
	for _, key := range []string{"capture/cp -a", "incremental/restic", "hardlink/cp -al"} {
		if _, ok := byKey[key]; ok {
			t.Errorf("unexpected comparison %s", key)
		}
	}
	if len(rep.Ratios) != 4 {
		t.Errorf("%d comparisons, want 4", len(rep.Ratios))
	}
	slower := Comparison{Scenario: ScenarioIncremental, Baseline: "restic", Speedup: 0.5, StoredRatio: 0.25}
	if got, want := slower.describe(), "2.0x slower than restic, 0.25x the new stored bytes"; got != want {
		t.Errorf("describe: %q, want %q", got, want)
	}
}

func TestSummary(t *testing.T) {
	got := syntheticReport().Summary()
	want := []string{
		"capture: 2.7x faster than restic, 0.8x the stored bytes; 1.0x faster than tar|zstd, 1.2x the stored bytes",
		"restore: 4.0x faster than restic; 1.9x faster than tar|zstd",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("summary:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestReportJSON(t *testing.T) {
	rep := syntheticReport()
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"date", "machine", "corpus", "rows", "ratios", "restore_verified", "notes"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	var again Report
	if err := json.Unmarshal(b, &again); err != nil {
		t.Fatal(err)
	}
	row, ok := again.Row(ToolSMP, ScenarioRestore)
	if !ok || row.Verified == nil || !*row.Verified || row.MBps != 268 {
		t.Errorf("smp restore row after a JSON round trip: %+v", row)
	}
	if again.Machine.Cores != 2 || again.Corpus.Info.Bytes != 2<<30 || len(again.Ratios) != len(rep.Ratios) {
		t.Errorf("round trip lost data: %+v", again)
	}
}

func TestCompareServeSplit(t *testing.T) {
	const gib = 1 << 30
	one := Row{Tool: ToolSMP, Scenario: ScenarioCapture1CPU, Status: StatusOK, Runs: 8, WallSeconds: 10, MBps: 200, LogicalBytes: 2 * gib}
	split := Row{Tool: ToolSMP, Scenario: ScenarioServeSplit, Status: StatusOK, Runs: 8, WallSeconds: 12.5, MBps: 160, LogicalBytes: 2 * gib}
	for _, tc := range []struct {
		name string
		rows []Row
		want string // "" for no serve-split comparison
	}{
		{"both", []Row{one, split}, "client and server on separate CPUs: 80% of a local capture on the client's CPU"},
		{"no baseline", []Row{split}, ""},
		{"baseline failed", []Row{{Tool: ToolSMP, Scenario: ScenarioCapture1CPU, Status: StatusFailed}, split}, ""},
		{"skipped", []Row{{Tool: ToolSMP, Scenario: ScenarioCapture1CPU, Status: StatusSkipped}, {Tool: ToolSMP, Scenario: ScenarioServeSplit, Status: StatusSkipped}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &Report{Rows: tc.rows}
			var got string
			for _, c := range rep.compareServe() {
				if c.Scenario == ScenarioServeSplit {
					got = c.Text
					if d := c.Speedup - split.MBps/one.MBps; d > 1e-9 || d < -1e-9 {
						t.Errorf("speedup %v, want %v", c.Speedup, split.MBps/one.MBps)
					}
				}
			}
			if got != tc.want {
				t.Errorf("comparison %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCompareHardlinkMachine(t *testing.T) {
	rep := &Report{Rows: []Row{
		{Tool: ToolSMP, Scenario: ScenarioHardlinkAll, Status: StatusOK, WallSeconds: 0.15, StoredBytes: 1 << 20},
		{Tool: ToolCpLink, Scenario: ScenarioHardlinkAll, Status: StatusOK, WallSeconds: 0.10, StoredBytes: 4 << 20},
		{Tool: ToolSMP, Scenario: ScenarioHardlinkRestore, Status: StatusOK, WallSeconds: 0.20},
	}}
	got := map[string]string{}
	for _, c := range rep.Compare() {
		got[c.Scenario] = c.Text
	}
	want := map[string]string{
		ScenarioHardlinkAll:     "1.5x slower than cp -al, 0.25x the stored bytes",
		ScenarioHardlinkRestore: "2.0x slower than cp -al",
	}
	for sc, w := range want {
		if got[sc] != w {
			t.Errorf("%s: %q, want %q", sc, got[sc], w)
		}
	}
}

// TestCompareCold: the cold scenarios compare the default store's smp row
// (encrypted here) with every baseline's cold row, and the summary says
// which store.
func TestCompareCold(t *testing.T) {
	rep := criteriaReport()
	rep.Rows = append(rep.Rows,
		Row{Tool: ToolRestic, Scenario: ScenarioCaptureCold, Status: StatusOK, WallSeconds: 36},
		Row{Tool: ToolTar, Scenario: ScenarioCaptureCold, Status: StatusSkipped, Note: "not root"},
		Row{Tool: ToolCp, Scenario: ScenarioRestoreCold, Status: StatusOK, WallSeconds: 1})
	rep.Ratios = rep.Compare()
	var got []string
	for _, c := range rep.Ratios {
		if c.Scenario == ScenarioCaptureCold || c.Scenario == ScenarioRestoreCold {
			if c.SMP != ToolSMPEncrypted {
				t.Errorf("%+v: want smp's row %q", c, ToolSMPEncrypted)
			}
			got = append(got, c.Scenario+" "+c.Baseline+" "+FormatRatio(c.Speedup))
		}
	}
	want := []string{"capture-cold restic 3.0", "restore-cold restic 2.0", "restore-cold borg 1.5", "restore-cold tar|zstd 1.2", "restore-cold cp -a 0.5"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("cold comparisons %q; want %q", got, want)
	}
	summary := strings.Join(rep.Summary(), "\n")
	for _, line := range []string{
		"capture-cold (smp encrypted): 3.0x faster than restic",
		"restore-cold (smp encrypted): 2.0x faster than restic; 1.5x faster than borg; 1.2x faster than tar|zstd; 2.0x slower than cp -a",
	} {
		if !strings.Contains(summary, line+"\n") && !strings.HasSuffix(summary, line) {
			t.Errorf("summary lacks %q:\n%s", line, summary)
		}
	}
}
