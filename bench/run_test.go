package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	// CPU per logical byte: 19.5 s against the local capture's 13 s.
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

func TestWriteMarkdownServe(t *testing.T) {
	rep := syntheticServeReport()
	var buf bytes.Buffer
	if err := rep.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, want := range []string{
		"| smp | serve | 8.50 | 252 | 19.50 | 120 | 1.2 GiB | 1.7x | through smp serve on loopback: 84% of local capture throughput;",
		"| smp | serve-16 | 41.90 | 410 | 120.00 | 130 | 1.2 GiB | 14x | 16 concurrent clients, 16 records verified byte-identical, chunks stored once (9000 = 9000) |",
		"- serve: 84% of local capture throughput; 16 clients: 410 MB/s aggregate (1.6x one client at a time)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// The chart draws serve and leaves serve-16 (another kind of figure)
	// out, without breaking.
	var svg bytes.Buffer
	if err := rep.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	doc := parseSVG(t, svg.String())
	if !doc.hasText("smp serve") || !doc.hasText("252") {
		t.Errorf("chart lacks the serve bar")
	}
}

// TestRunServe runs both serve scenarios with the real binary on a small
// generated corpus, after the local capture they are compared with.
func TestRunServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds smp and runs 16 clients")
	}
	bin := buildSMP(t)
	work := t.TempDir()
	corpus := filepath.Join(work, "corpus")
	if out, err := exec.Command(bin, "bench", "corpus", "--out", corpus, "--users", "3", "--size", "12MiB", "--seed", "3").CombinedOutput(); err != nil {
		t.Fatalf("smp bench corpus: %v\n%s", err, out)
	}
	var log bytes.Buffer
	r := &runner{opts: RunOptions{Bin: bin, Corpus: corpus}, log: &log, work: work, tools: map[string]string{}, env: os.Environ()}
	r.rep = &Report{Corpus: CorpusReport{}}
	ctx := context.Background()
	help, _ := r.combined(ctx, bin, "capture", "--help")
	r.smpHasHardlink = strings.Contains(help, "--hardlink") // the local capture chunks, as in Run
	if err := r.prepareCorpus(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.smpCapture(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.smpServeScenarios(ctx); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Logf("\n%s", log.String())
	local, _ := r.rep.Row(ToolSMP, ScenarioCapture)
	serve, ok := r.rep.Row(ToolSMP, ScenarioServe)
	if !ok || !serve.OK() || serve.Runs != 3 || serve.LogicalBytes != r.logical || serve.MBps <= 0 || serve.StoredBytes <= 0 {
		t.Fatalf("serve row: %+v", serve)
	}
	// The server's CPU is added: more CPU per byte than the local capture.
	if serve.CPUSeconds <= local.CPUSeconds*0.8 || !strings.Contains(serve.Note, "of local capture throughput") || !strings.Contains(serve.Note, "server CPU") {
		t.Errorf("serve row: %+v (local capture %+v)", serve, local)
	}
	load, ok := r.rep.Row(ToolSMP, ScenarioServeLoad)
	if !ok || !load.OK() || load.Runs != 16 || load.Verified == nil || !*load.Verified || load.MBps <= 0 {
		t.Fatalf("serve-16 row: %+v", load)
	}
	// 16 clients over 3 users: users 0 captured 6 times, 1 and 2 five times.
	if _, user0, _ := treeSize(filepath.Join(corpus, "home", r.users[0])); load.LogicalBytes != 5*r.logical+user0 {
		t.Errorf("serve-16 captured %d bytes, want %d", load.LogicalBytes, 5*r.logical+user0)
	}
	if !strings.Contains(load.Note, "16 records verified byte-identical, chunks stored once (") {
		t.Errorf("serve-16 note: %q", load.Note)
	}
	// One serve-16 wall second holds several clients' work.
	if load.WallSeconds <= 0 || load.CPUSeconds <= 0 {
		t.Errorf("serve-16 row: %+v", load)
	}
	// A store whose chunk set differs from the sequential one fails the
	// scenario, saying why.
	err := r.smpServeLoad(ctx, smpStatsOut{Chunks: 1, UniqueBytes: 1})
	last := r.rep.Rows[len(r.rep.Rows)-1]
	if err == nil || last.Scenario != ScenarioServeLoad || last.Status != StatusFailed ||
		!strings.Contains(last.Note, "16 records verified byte-identical, but the chunks are not stored once") {
		t.Errorf("serve-16 against a wrong chunk count: %v; row %+v", err, last)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 2 { // corpus, smp-store
		t.Errorf("scratch left behind: %v", ents)
	}
}

// TestRunServeUnavailable: a build without smp serve gives rows that say
// so, and no error.
func TestRunServeUnavailable(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "smp")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'smp: unknown command' >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &runner{opts: RunOptions{Bin: bin}, log: &bytes.Buffer{}, rep: &Report{}, env: os.Environ()}
	if err := r.smpServeScenarios(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, sc := range []string{ScenarioServe, ScenarioServeLoad} {
		if row, ok := r.rep.Row(ToolSMP, sc); !ok || row.Status != StatusUnavailable {
			t.Errorf("%s: %+v", sc, row)
		}
	}
}

// TestListenWatcher finds the URL however the output is cut.
func TestListenWatcher(t *testing.T) {
	out := "tls fingerprint ab\nsmp serve: store /s listening on http://127.0.0.1:4321\nmore\n"
	for cut := range len(out) {
		w := &listenWatcher{found: make(chan string, 1)}
		w.Write([]byte(out[:cut]))
		w.Write([]byte(out[cut:]))
		select {
		case u := <-w.found:
			if u != "http://127.0.0.1:4321" {
				t.Fatalf("cut %d: %q", cut, u)
			}
		default:
			t.Fatalf("cut %d: no URL", cut)
		}
	}
}

// TestWarnLines keeps the last three warnings of a log.
func TestWarnLines(t *testing.T) {
	var w warnLines
	log := "time=1 level=INFO msg=request status=200\ntime=1 level=WARN msg=request method=GET path=/v1/record status=404\n"
	for i := range 5 {
		log += fmt.Sprintf("time=2 level=WARN msg=request status=409 n=%d\ntime=3 level=INFO msg=request\n", i)
	}
	log += "time=4 level=WARN msg=request method=GET path=/v1/record status=404\ntime=4 level=ERROR msg=\"fetch read\"\nhttp: panic serving 127.0.0.1:1: boom"
	for _, part := range strings.SplitAfter(log, "=") {
		w.Write([]byte(part))
	}
	w.Write([]byte("\n"))
	if got, want := w.String(), "time=2 level=WARN msg=request status=409 n=4 / time=4 level=ERROR msg=\"fetch read\" / http: panic serving 127.0.0.1:1: boom"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
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

func TestCompareLinkedTrees(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for _, d := range []string{"a/b", "c"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dst, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"a/b/x", "c/y"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte("data of "+f), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(src, f), filepath.Join(dst, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("b/x", filepath.Join(src, "a/l")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("b/x", filepath.Join(dst, "a/l")); err != nil {
		t.Fatal(err)
	}
	if n, err := compareLinkedTrees(src, dst, false); err != nil || n != 2 {
		t.Fatalf("linked trees: %d files, %v", n, err)
	}
	// A copy is not the corpus file; with clones allowed, its bytes count.
	os.Remove(filepath.Join(dst, "c/y"))
	if err := os.WriteFile(filepath.Join(dst, "c/y"), []byte("data of c/y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := compareLinkedTrees(src, dst, false); err == nil || !strings.Contains(err.Error(), "different inode") {
		t.Fatalf("copy accepted as a link: %v", err)
	}
	if _, err := compareLinkedTrees(src, dst, true); err != nil {
		t.Fatalf("equal clone refused: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dst, "c/y"), []byte("data of c/Y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := compareLinkedTrees(src, dst, true); err == nil || !strings.Contains(err.Error(), "contents differ") {
		t.Fatalf("different clone accepted: %v", err)
	}
	os.Remove(filepath.Join(dst, "a/l"))
	if err := os.Symlink("elsewhere", filepath.Join(dst, "a/l")); err != nil {
		t.Fatal(err)
	}
	if _, err := compareLinkedTrees(src, dst, true); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("wrong symlink accepted: %v", err)
	}
}

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
