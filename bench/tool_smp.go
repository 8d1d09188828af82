package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

type smpCaptureOut struct {
	Record         string   `json:"record"`
	Bytes          int64    `json:"bytes"`
	Files          int64    `json:"files"`
	StoredBytes    int64    `json:"stored_bytes"`
	UnchangedFiles int64    `json:"unchanged_files"`
	Errors         int64    `json:"errors"`
	Problems       []string `json:"problems"`
	UploadedBytes  int64    `json:"uploaded_bytes"`        // through smp serve: bytes sent
	HeldChunks     int64    `json:"chunks_already_on_smp"` // through smp serve: offered blobs the server held
}

// initArgs are the arguments of smp init for a bench store at dir: with
// encrypted, the store smp init makes by default (encrypted, its key file
// in the children's private config directory, see smpEnv); without, a
// store made with --no-encrypt. Every bench store is made here, so the
// smp rows measure the default store, and rows that compare the two
// formats differ in this one argument.
func initArgs(dir string, encrypted bool) []string {
	args := []string{"init", "--store", dir}
	if !encrypted {
		args = append(args, "--no-encrypt")
	}
	return args
}

type smpStatsOut struct {
	LogicalBytes int64   `json:"logical_bytes"`
	UniqueBytes  int64   `json:"unique_bytes"` // plaintext of the distinct data chunks
	StoredBytes  int64   `json:"stored_bytes"`
	Chunks       int64   `json:"chunks"` // distinct data chunks
	DedupeRatio  float64 `json:"dedupe_ratio"`
}

// smpStats runs `smp stats --json` on store with extra flags (the key's).
func (r *runner) smpStats(ctx context.Context, store string, extra ...string) (smpStatsOut, error) {
	var s smpStatsOut
	out, err := r.output(ctx, r.opts.Bin, append([]string{"stats", "--store", store, "--json"}, extra...)...)
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal([]byte(out), &s)
}

// smpCaptureAll captures every user in turn into store (created when
// fresh) with extra capture flags, one child per user.
// It returns the children's usage, the bytes, files and unchanged files the
// captures report, and each user's record ID.
func (r *runner) smpCaptureAll(ctx context.Context, store string, fresh bool, extra ...string) (a agg, bytes, files, unchanged int64, records map[string]string, err error) {
	if fresh {
		if _, err := r.output(ctx, r.opts.Bin, initArgs(store, true)...); err != nil {
			return a, 0, 0, 0, nil, err
		}
	}
	a, outs, err := r.smpCaptureEach(ctx, store, func(int) []string { return extra })
	if err != nil {
		return a, 0, 0, 0, nil, err
	}
	records = map[string]string{}
	for i, out := range outs {
		records[r.users[i]] = out.Record
		bytes += out.Bytes
		files += out.Files
		unchanged += out.UnchangedFiles
	}
	return a, bytes, files, unchanged, records, nil
}

// smpCaptureEach captures every user in turn into store (a directory or
// an SMP's URL), one child per user, user i as computer i with the flags
// extra(i). It returns the children's usage and their --json outputs, in
// user order.
func (r *runner) smpCaptureEach(ctx context.Context, store string, extra func(i int) []string) (a agg, outs []smpCaptureOut, err error) {
	return r.smpCaptureEachOn(ctx, "", store, extra)
}

// smpCaptureEachOn is smpCaptureEach with every capture pinned to the CPUs
// in cpus (a taskset list; "" for no pinning).
func (r *runner) smpCaptureEachOn(ctx context.Context, cpus, store string, extra func(i int) []string) (a agg, outs []smpCaptureOut, err error) {
	a, err = r.eachUser(func(i int, u string) (child, error) {
		c, out, err := r.smpCaptureOneOn(ctx, cpus, store, r.computers[i], u, extra(i)...)
		outs = append(outs, out)
		return c, err
	}, r.root)
	if err != nil {
		return a, nil, err
	}
	return a, outs, nil
}

// smpCaptureOne runs one `smp capture --json` of user as computer.
func (r *runner) smpCaptureOne(ctx context.Context, store, computer, user string, extra ...string) (child, smpCaptureOut, error) {
	return r.smpCaptureOneOn(ctx, "", store, computer, user, extra...)
}

// smpCaptureOneOn is smpCaptureOne pinned to cpus ("" for no pinning).
func (r *runner) smpCaptureOneOn(ctx context.Context, cpus, store, computer, user string, extra ...string) (child, smpCaptureOut, error) {
	var out smpCaptureOut
	args := append([]string{"capture", "--store", store, "--computer", computer, "--root", r.root, "--user", user, "--json"}, extra...)
	c, err := r.exec(ctx, r.pinned(cpus, r.opts.Bin, args...))
	if err != nil {
		return c, out, err
	}
	if err := json.Unmarshal(c.stdout, &out); err != nil {
		return c, out, fmt.Errorf("smp capture output: %w: %q", err, c.stdout)
	}
	if out.Errors > 0 {
		return c, out, fmt.Errorf("smp capture of %s as %s: %d errors: %s", user, computer, out.Errors, strings.Join(out.Problems, "; "))
	}
	return c, out, nil
}

// smpCapture measures the capture scenario on a fresh unencrypted store
// and, when this build has encrypted stores, on a fresh encrypted one,
// alternating the two for r.rounds() rounds (each round into fresh
// stores); each row is its median round. The last round's stores stay
// for the restore scenario, the unencrypted one for the later ones.
func (r *runner) smpCapture(ctx context.Context) error {
	vs := r.variants()
	byTool := map[string][]agg{}
	logical := map[string]int64{}
	for k := range r.rounds() {
		for _, i := range roundOrder(k, len(vs)) {
			v := vs[i]
			a, n, records, err := r.smpCaptureFresh(ctx, v)
			if err != nil {
				r.add(Row{Tool: v.tool, Scenario: ScenarioCapture, Status: StatusFailed, Note: err.Error()})
				return fmt.Errorf("%s capture: %w", v.tool, err)
			}
			byTool[v.tool] = append(byTool[v.tool], a)
			logical[v.tool] = n
			if v.keyFile == "" {
				r.smpStore, r.smpRecords = v.store, records
			} else {
				r.smpEncRecords = records
			}
		}
	}
	for _, v := range vs {
		if err := r.smpCaptureRow(ctx, v, byTool[v.tool], logical[v.tool], otherTool(vs, v)); err != nil {
			return err
		}
	}
	r.noEncryption(ScenarioCapture)
	r.recordCost(ScenarioCapture, byTool)
	return nil
}

// smpCaptureFresh makes v's store afresh and captures every user into it.
func (r *runner) smpCaptureFresh(ctx context.Context, v variant) (a agg, logical int64, records map[string]string, err error) {
	if err := removeAll(v.store); err != nil {
		return a, 0, nil, err
	}
	if err := r.smpInit(ctx, v.store, v.keyFile); err != nil {
		return a, 0, nil, err
	}
	a, logical, _, _, records, err = r.smpCaptureAll(ctx, v.store, false, append(r.chunked(), keyArgs(v.keyFile)...)...)
	return a, logical, records, err
}

// smpCaptureRow adds v's capture row: its median round, and the store's
// figures.
func (r *runner) smpCaptureRow(ctx context.Context, v variant, rounds []agg, logical int64, other string) error {
	st, err := r.smpStats(ctx, v.store, keyArgs(v.keyFile)...)
	if err != nil {
		return fmt.Errorf("smp stats: %w", err)
	}
	a, walls := medianAgg(rounds)
	row := a.row(v.tool, ScenarioCapture, logical)
	row.StoredBytes = st.StoredBytes
	row.DiskBytes = du(v.store)
	row.DedupeRatio = ratio(logical, st.StoredBytes)
	var notes []string
	if v.keyFile != "" {
		notes = append(notes, "smp init --key-file (encrypted, the default; key in the scratch directory)")
	} else {
		notes = append(notes, "smp init --no-encrypt (a store in clear, to measure what encryption costs)")
	}
	if r.smpHasHardlink {
		notes = append(notes, "--hardlink never: chunked, deduplicated, compressed store")
	}
	if n := roundsNote(walls, other); n != "" {
		notes = append(notes, n)
	}
	if logical != r.logical {
		notes = append(notes, fmt.Sprintf("captured %d bytes, corpus holds %d", logical, r.logical))
	}
	row.Note = strings.Join(notes, "; ")
	r.add(row)
	return nil
}

// chunked is the capture flag that makes smp chunk every file even when
// the store is on the corpus' filesystem, in builds with hard-link capture.
func (r *runner) chunked() []string {
	if r.smpHasHardlink {
		return []string{"--hardlink", "never"}
	}
	return nil
}

func (r *runner) smpIncremental(ctx context.Context) error {
	before, err := r.smpStats(ctx, r.smpStore)
	if err != nil {
		return fmt.Errorf("smp stats: %w", err)
	}
	a, logical, files, unchanged, _, err := r.smpCaptureAll(ctx, r.smpStore, false, r.chunked()...)
	if err != nil {
		r.add(Row{Tool: ToolSMP, Scenario: ScenarioIncremental, Status: StatusFailed, Note: err.Error()})
		return fmt.Errorf("smp incremental capture: %w", err)
	}
	after, err := r.smpStats(ctx, r.smpStore)
	if err != nil {
		return fmt.Errorf("smp stats: %w", err)
	}
	row := a.row(ToolSMP, ScenarioIncremental, logical)
	row.StoredBytes = max(after.StoredBytes-before.StoredBytes, 0)
	row.DiskBytes = du(r.smpStore)
	row.Note = fmt.Sprintf("%d of %d files unchanged, not read", unchanged, files)
	r.add(row)
	return nil
}

// smpHardlink runs the hard-link capture when this smp build has it.
func (r *runner) smpHardlink(ctx context.Context) {
	if !r.smpHasHardlink {
		r.add(Row{Tool: ToolSMP, Scenario: ScenarioHardlink, Status: StatusUnavailable, Note: "not available in this build (smp capture has no --hardlink)"})
		return
	}
	store := filepath.Join(r.work, "smp-hardlink-store")
	defer removeAll(store)
	a, logical, _, _, _, err := r.smpCaptureAll(ctx, store, true, "--hardlink", "always")
	if err != nil {
		r.add(Row{Tool: ToolSMP, Scenario: ScenarioHardlink, Status: StatusFailed, Note: err.Error()})
		return
	}
	row := a.row(ToolSMP, ScenarioHardlink, logical)
	usage := diskUsage(r.root, store)
	row.StoredBytes, row.DiskBytes = usage[1], usage[1]
	row.DedupeRatio = ratio(logical, row.StoredBytes)
	row.Note = "--hardlink always; stored = what the store adds on disk"
	r.add(row)
}
