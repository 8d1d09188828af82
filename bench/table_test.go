package bench

import (
	"bytes"
	"strings"
	"testing"
)

func TestWriteMarkdownServe(t *testing.T) {
	rep := syntheticServeReport()
	var buf bytes.Buffer
	if err := rep.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, want := range []string{
		"| smp | serve | 8.50 | 252 | - | 19.50 | 120 | 1.2 GiB | 1.7x | through smp serve on loopback: 84% of local capture throughput;",
		"| smp | serve-16 | 41.90 | 410 | - | 120.00 | 130 | 1.2 GiB | 14x | 16 concurrent clients, 16 records verified byte-identical, chunks stored once (9000 = 9000) |",
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
	// Every row has the header's 10 cells ("|" inside cells escaped).
	for _, line := range table {
		if n := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|"); n != 11 {
			t.Errorf("row has %d separators, want 11: %s", n, line)
		}
	}
	for _, want := range []string{
		"## smp bench: 2 users, 2.0 GiB generated (seed 1), 1000 files, zstd ratio 1.70",
		"| tool | scenario | wall s | MB/s | files/s | CPU s | peak RSS MiB | stored | dedupe | notes |",
		"| smp | capture | 7.16 | 300 | 140 | 13.00 | 180 | 1.2 GiB | 1.7x |",
		`| tar\|zstd | capture | 7.16 | 300 | - | 14.00 | 40 | 1000 MiB | 2.1x | one archive \| user |`,
		"| cp -a | capture | - | - | - | - | - | - | - | failed: cp: No space left on device |",
		"| smp | hardlink | - | - | - | - | - | - | - | not available: not available in this build |",
		"| smp | incremental | - | - | - | - | - | - | - | skipped: corpus mutation failed: not implemented yet |",
		"| cp -al | hardlink | 0.80 | 2700 | - | 0.70 | 12 | 3.0 MiB | 680x |",
		"- capture: 2.7x faster than restic, 0.8x the stored bytes; 1.0x faster than tar|zstd, 1.2x the stored bytes",
		"- restore: 4.0x faster than restic; 1.9x faster than tar|zstd",
		"2 cores, linux/amd64, go1.26.8",
		"- cold cache: capture 1.50x the cold-read floor (4.00 s, 2.5 CPU-s); incremental 1.20x the cold-walk floor (2.00 s, 0.8 CPU-s)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
