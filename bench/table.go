package bench

import (
	"fmt"
	"io"
	"strings"

	"github.com/dustin/go-humanize"
)

// WriteMarkdown writes the report as a markdown table with the ratios and
// notes below it.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	title := "smp bench"
	if info := r.Corpus.Info; info != nil {
		title += fmt.Sprintf(": %d users, %s", len(info.Users), humanize.IBytes(uint64(info.Bytes)))
		if r.Corpus.Generated {
			title += fmt.Sprintf(" generated (seed %d)", r.Corpus.Seed)
		}
		if info.Files > 0 {
			title += fmt.Sprintf(", %d files", info.Files)
		}
		if info.ZstdRatio > 0 {
			title += fmt.Sprintf(", zstd ratio %.2f", info.ZstdRatio)
		}
	}
	m := r.Machine
	fmt.Fprintf(&b, "## %s\n\n%s; %d cores, %s/%s, %s", title, r.Date, m.Cores, m.GOOS, m.GOARCH, m.GoVersion)
	if m.SMPVersion != "" {
		fmt.Fprintf(&b, ", %s", m.SMPVersion)
	}
	if r.Quick {
		b.WriteString(" (--quick)")
	}
	b.WriteString("\n\n")
	b.WriteString("| tool | scenario | wall s | MB/s | files/s | CPU s | peak RSS MiB | stored | dedupe | notes |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, row := range r.Rows {
		if !row.OK() {
			fmt.Fprintf(&b, "| %s | %s | - | - | - | - | - | - | - | %s: %s |\n", mdCell(row.Tool), row.Scenario, row.Status, mdCell(row.Note))
			continue
		}
		stored, dedupe := "-", "-"
		if row.StoredBytes > 0 || row.Scenario == ScenarioIncremental {
			stored = humanize.IBytes(uint64(row.StoredBytes))
		}
		if row.DedupeRatio > 0 {
			dedupe = FormatRatio(row.DedupeRatio) + "x"
		}
		note := row.Note
		if row.DiskBytes > 0 && row.DiskBytes != row.StoredBytes && row.Scenario != ScenarioIncremental {
			note = strings.TrimPrefix(note+"; "+humanize.IBytes(uint64(row.DiskBytes))+" on disk", "; ")
		}
		filesPerSec := "-"
		if row.FilesPerSec > 0 {
			filesPerSec = fmt.Sprintf("%.0f", row.FilesPerSec)
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f | %.0f | %s | %.2f | %.0f | %s | %s | %s |\n", mdCell(row.Tool), row.Scenario,
			row.WallSeconds, row.MBps, filesPerSec, row.CPUSeconds, row.PeakRSSMiB, stored, dedupe, mdCell(note))
	}
	if lines := r.Summary(); len(lines) > 0 {
		b.WriteString("\nsmp compared with the baselines:\n\n")
		for _, l := range lines {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	writeCriteria(&b, r.Criteria)
	b.WriteString("\nNotes:\n\n")
	b.WriteString("- MB/s is logical bytes (the corpus' file data) per wall second, 10^6 bytes; files/s is regular files per wall second; wall and CPU seconds are summed over the scenario's child processes; stored is what the tool keeps (smp: pack bytes from smp stats; restic and borg: du of the repository; tar|zstd: archive sizes; incremental: bytes added)\n")
	if c := r.Cold; c != nil {
		fmt.Fprintf(&b, "- cold cache: %s\n", c.Summary())
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	if n := phasesNote(r.Phases); n != "" {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeCriteria writes the issues' criteria as a table: criterion,
// target, this run's figure and the verdict, with the figures behind it.
func writeCriteria(b *strings.Builder, cs []Criterion) {
	if len(cs) == 0 {
		return
	}
	b.WriteString("\nIssue criteria on this run (smp on the default store):\n\n")
	b.WriteString("| criterion | issue | target | this run | verdict | from |\n")
	b.WriteString("|---|--:|---|--:|---|---|\n")
	for _, c := range cs {
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s |\n", mdCell(c.Name), c.Issue, c.Target, c.Text, c.Verdict, mdCell(c.Detail))
	}
}

// mdCell makes s safe inside a markdown table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}
