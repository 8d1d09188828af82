package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// syntheticReport is a report as Run would make it, with round numbers.
func syntheticReport() *Report {
	yes := true
	const gib = 1 << 30
	rep := &Report{
		Date:    "2026-11-25T12:00:00Z",
		Machine: Machine{Cores: 2, GOOS: "linux", GOARCH: "amd64", GoVersion: "go1.26.8", SMPVersion: "smp 0.1.0-dev"},
		Corpus: CorpusReport{Generated: true, Seed: 1, Size: 2 * gib,
			Info: &CorpusInfo{Root: "/tmp/c", Users: []string{"user01", "user02"}, Files: 1000, Bytes: 2 * gib, ZstdRatio: 1.7}},
		RestoreVerified: true,
		Rows: []Row{
			{Tool: ToolSMP, Scenario: ScenarioCapture, Status: StatusOK, WallSeconds: 7.158, MBps: 300, CPUSeconds: 13, PeakRSSMiB: 180,
				LogicalBytes: 2 * gib, StoredBytes: 1200 << 20, DedupeRatio: 1.71},
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

func TestWriteMarkdown(t *testing.T) {
	rep := syntheticReport()
	var buf bytes.Buffer
	if err := rep.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	var table []string
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| tool ") {
			table = append(table, line)
		}
	}
	if len(table) != len(rep.Rows) {
		t.Fatalf("%d table rows, want %d:\n%s", len(table), len(rep.Rows), md)
	}
	// Every row has the header's 9 cells ("|" inside cells escaped).
	for _, line := range table {
		if n := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|"); n != 10 {
			t.Errorf("row has %d separators, want 10: %s", n, line)
		}
	}
	for _, want := range []string{
		"## smp bench: 2 users, 2.0 GiB generated (seed 1), 1000 files, zstd ratio 1.70",
		"| tool | scenario | wall s | MB/s | CPU s | peak RSS MiB | stored | dedupe | notes |",
		"| smp | capture | 7.16 | 300 | 13.00 | 180 | 1.2 GiB | 1.7x |",
		`| tar\|zstd | capture | 7.16 | 300 | 14.00 | 40 | 1000 MiB | 2.1x | one archive \| user |`,
		"| cp -a | capture | - | - | - | - | - | - | failed: cp: No space left on device |",
		"| smp | hardlink | - | - | - | - | - | - | not available: not available in this build |",
		"| smp | incremental | - | - | - | - | - | - | skipped: corpus mutation failed: not implemented yet |",
		"| cp -al | hardlink | 0.80 | 2700 | 0.70 | 12 | 3.0 MiB | 680x |",
		"- capture: 2.7x faster than restic, 0.8x the stored bytes; 1.0x faster than tar|zstd, 1.2x the stored bytes",
		"- restore: 4.0x faster than restic; 1.9x faster than tar|zstd",
		"2 cores, linux/amd64, go1.26.8",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
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

// TestCompareTrees checks the restore verification on real trees.
func TestCompareTrees(t *testing.T) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	build := func(root string) {
		must(os.MkdirAll(filepath.Join(root, "Documents/sub"), 0o755))
		must(os.WriteFile(filepath.Join(root, "Documents/a.txt"), []byte("hello"), 0o644))
		must(os.WriteFile(filepath.Join(root, "Documents/sub/b.bin"), bytes.Repeat([]byte{7}, 3<<20), 0o600))
		must(os.Symlink("Documents/a.txt", filepath.Join(root, "link")))
	}
	tests := []struct {
		name   string
		mutate func(dst string)
		want   string
	}{
		{"identical", func(string) {}, ""},
		{"contents", func(d string) {
			b := bytes.Repeat([]byte{7}, 3<<20)
			b[2<<20+5] = 8
			must(os.WriteFile(filepath.Join(d, "Documents/sub/b.bin"), b, 0o600))
		}, "Documents/sub/b.bin: contents differ"},
		{"size", func(d string) { must(os.WriteFile(filepath.Join(d, "Documents/a.txt"), []byte("hello!"), 0o644)) }, "Documents/a.txt: size"},
		{"mode", func(d string) { must(os.Chmod(filepath.Join(d, "Documents/a.txt"), 0o600)) }, "Documents/a.txt: mode"},
		{"symlink", func(d string) {
			must(os.Remove(filepath.Join(d, "link")))
			must(os.Symlink("Documents", filepath.Join(d, "link")))
		}, "link: symlink target"},
		{"missing", func(d string) { must(os.Remove(filepath.Join(d, "Documents/a.txt"))) }, "Documents/a.txt: missing"},
		{"extra", func(d string) { must(os.WriteFile(filepath.Join(d, "new"), nil, 0o644)) }, "new: only in the restored tree"},
		{"type", func(d string) {
			must(os.Remove(filepath.Join(d, "link")))
			must(os.Mkdir(filepath.Join(d, "link"), 0o755))
		}, "link: type"},
	}
	src := filepath.Join(t.TempDir(), "src")
	build(src)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "dst")
			build(dst)
			tc.mutate(dst)
			err := compareTrees(src, dst)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected difference: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestDiskUsageCountsHardLinksOnce(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.MkdirAll(a, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a, "f"), bytes.Repeat([]byte{1}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(a, "f"), filepath.Join(b, "f")); err != nil {
		t.Skipf("no hard links here: %v", err)
	}
	u := diskUsage(a, b)
	if u[0] < 1<<20 {
		t.Errorf("a: %d bytes, want at least 1 MiB", u[0])
	}
	if u[1] >= 1<<20 {
		t.Errorf("b: %d bytes: the hard-linked file was counted twice", u[1])
	}
	if alone := du(b); alone < 1<<20 {
		t.Errorf("b alone: %d bytes, want at least 1 MiB", alone)
	}
}
