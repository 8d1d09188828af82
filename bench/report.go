package bench

import (
	"smp/bench/corpus"
)

// Row statuses.
const (
	StatusOK           = "ok"
	StatusSkipped      = "skipped"
	StatusUnavailable  = "not available"
	StatusNotInstalled = "not installed"
	StatusFailed       = "failed"
)

// Report is the outcome of Run.
type Report struct {
	Date            string            `json:"date"`
	Quick           bool              `json:"quick"`
	Machine         Machine           `json:"machine"`
	Corpus          CorpusReport      `json:"corpus"`
	Rows            []Row             `json:"rows"`
	Ratios          []Comparison      `json:"ratios"`
	Criteria        []Criterion       `json:"criteria"`             // the issues' criteria on this run
	RestoreVerified bool              `json:"restore_verified"`     // smp's restore matched the corpus byte for byte
	RSSFloorMiB     float64           `json:"rss_floor_mib"`        // peak RSS a trivial child reports (see Notes)
	Encryption      *EncryptionCost   `json:"encryption,omitempty"` // encrypted vs unencrypted capture and restore
	Cold            *ColdReport       `json:"cold,omitempty"`       // cold-cache rows against the disk's floors
	Phases          []Phase           `json:"phases"`               // how long each part of the run took in all
	ToolVersions    map[string]string `json:"tool_versions"`
	Notes           []string          `json:"notes"`
}

// Machine describes where the run happened.
type Machine struct {
	Cores      int    `json:"cores"`
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	GoVersion  string `json:"go_version"`
	CPU        string `json:"cpu,omitempty"`
	MemBytes   int64  `json:"mem_bytes,omitempty"`
	Kernel     string `json:"kernel,omitempty"`
	SMPVersion string `json:"smp_version,omitempty"`
}

// CorpusReport describes the corpus the scenarios ran on.
type CorpusReport struct {
	Generated   bool            `json:"generated"`
	Seed        uint64          `json:"seed"`
	Size        int64           `json:"requested_size,omitempty"`
	Info        *corpus.OrgInfo `json:"info"`
	Mutated     *corpus.OrgInfo `json:"mutated,omitempty"`
	MutateError string          `json:"mutate_error,omitempty"`
}

// Row is one tool's figures for one scenario.
type Row struct {
	Tool         string  `json:"tool"`
	Scenario     string  `json:"scenario"`
	Status       string  `json:"status"`
	Note         string  `json:"note,omitempty"`
	Runs         int     `json:"runs,omitempty"` // child processes timed
	WallSeconds  float64 `json:"wall_seconds"`
	MBps         float64 `json:"mb_per_s"`              // logical bytes / wall, 10^6 bytes per second
	Files        int64   `json:"files,omitempty"`       // regular files the scenario covers
	FilesPerSec  float64 `json:"files_per_s,omitempty"` // Files / wall
	CPUSeconds   float64 `json:"cpu_seconds"`
	PeakRSSMiB   float64 `json:"peak_rss_mib"`
	LogicalBytes int64   `json:"logical_bytes"`
	StoredBytes  int64   `json:"stored_bytes"` // incremental: bytes added by it
	DiskBytes    int64   `json:"disk_bytes"`   // du of everything the tool wrote (indexes included)
	DedupeRatio  float64 `json:"dedupe_ratio,omitempty"`
	Verified     *bool   `json:"verified,omitempty"` // restore: matched the corpus
}

// OK reports whether the row holds measurements.
func (r Row) OK() bool { return r.Status == StatusOK }

// Comparison is one smp figure against one baseline in one scenario.
// Speedup is the baseline's wall time over smp's (above 1: smp is
// faster); the other ratios are smp's figure over the baseline's (below 1:
// smp uses less). Zero means not comparable.
type Comparison struct {
	Scenario    string  `json:"scenario"`
	Baseline    string  `json:"baseline"`
	SMP         string  `json:"smp,omitempty"` // smp's row when not the unencrypted store's (the cold scenarios: the default store)
	Speedup     float64 `json:"speedup"`
	StoredRatio float64 `json:"stored_ratio,omitempty"`
	CPURatio    float64 `json:"cpu_ratio,omitempty"`
	RSSRatio    float64 `json:"rss_ratio,omitempty"`
	Text        string  `json:"text"`
}

// Row returns the row for tool and scenario.
func (r *Report) Row(tool, scenario string) (Row, bool) {
	for _, row := range r.Rows {
		if row.Tool == tool && row.Scenario == scenario {
			return row, true
		}
	}
	return Row{}, false
}

// DefaultSMP returns smp's row for scenario on the store `smp init` makes
// by default: the encrypted store's row when it holds measurements, else
// the unencrypted store's, else the encrypted store's that says why it
// holds none.
func (r *Report) DefaultSMP(scenario string) (Row, bool) {
	enc, encFound := r.Row(ToolSMPEncrypted, scenario)
	if encFound && enc.OK() {
		return enc, true
	}
	if plain, ok := r.Row(ToolSMP, scenario); ok {
		return plain, true
	}
	return enc, encFound
}
