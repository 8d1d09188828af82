package wire

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
)

func jsonKeys(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return strings.Join(slices.Sorted(maps.Keys(m)), " ")
}

// TestReportFieldNames pins the JSON names of the /v1/gc and /v1/stats
// replies, which older clients and scripts reading smp gc --json and smp
// stats --json decode: a field may be added, none renamed or removed.
func TestReportFieldNames(t *testing.T) {
	gc := GCReply{GCReport: &GCReport{}}
	want := "blobs_copied blobs_removed bytes_deleted bytes_freed bytes_written dry_run expired grace_seconds live_blobs " +
		"orphan_link_sets packs_deleted packs_rewritten packs_scanned packs_written problems records repack_below seconds " +
		"tombstones_written unindexed_packs"
	if got := jsonKeys(t, gc); got != want {
		t.Errorf("GCReply keys\n got %s\nwant %s", got, want)
	}
	stats := "captured chunks compression_ratio dedupe_ratio free_bytes link_record_bytes link_records linked_files " +
		"logical_bytes packs records released stored_bytes trees unique_bytes"
	if got := jsonKeys(t, StatsReply{Stats: &Stats{}}); got != stats {
		t.Errorf("StatsReply keys\n got %s\nwant %s", got, stats)
	}
	n := 0
	full := StatsReply{Stats: &Stats{}, Expired: &n, Computers: []ComputerUsage{{}}, PerRecord: []RecordUsage{{}}}
	if got, want := jsonKeys(t, full), stats+" computers expired per_record"; got != sortWords(want) {
		t.Errorf("StatsReply with usage keys\n got %s\nwant %s", got, sortWords(want))
	}
	if got := jsonKeys(t, RecordUsage{}); got != "computer files id logical_bytes only_bytes" {
		t.Errorf("RecordUsage keys %s", got)
	}
	if got := jsonKeys(t, ComputerUsage{}); got != "computer logical_bytes only_bytes records" {
		t.Errorf("ComputerUsage keys %s", got)
	}
}

func sortWords(s string) string {
	return strings.Join(slices.Sorted(slices.Values(strings.Fields(s))), " ")
}
