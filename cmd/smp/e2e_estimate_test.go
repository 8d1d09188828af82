package main

import (
	"encoding/xml"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// estimateOut is capture --estimate --json.
type estimateOut struct {
	Estimate       bool   `json:"estimate"`
	Files          uint64 `json:"files"`
	Bytes          uint64 `json:"bytes"`
	NewBytes       uint64 `json:"new_bytes"`
	StoredBytes    uint64 `json:"stored_bytes"`
	UnchangedFiles uint64 `json:"unchanged_files"`
}

// storeFiles maps every file under the store directory to its size, but
// the index (opening a new store creates it) and the lock.
func storeFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if rel := strings.TrimPrefix(p, dir); strings.HasPrefix(rel, "/index/") || rel == "/lock" {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[strings.TrimPrefix(p, dir)] = fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// within reports whether est is within 2% of real.
func within(est, real uint64) bool {
	d := float64(est) - float64(real)
	return d <= 0.02*float64(real) && -d <= 0.02*float64(real)
}

// TestE2EEstimateMatchesCapture: on the bench corpus, capture --estimate
// leaves the store as it was (no pack, no record), and agrees with the
// capture that follows within 2% on new and stored bytes; again after the
// corpus' week of changes, where the estimate reuses the last record and
// the store's chunks as the capture does.
func TestE2EEstimateMatchesCapture(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(tmpDir(t), "corpus")
	mustSMP(t, "bench", "corpus", "--out", dir, "--users", "3", "--size", "24MiB", "--seed", "11")
	st := newStore(t)
	for round, mutate := range []bool{false, true} {
		if mutate {
			mustSMP(t, "bench", "corpus", "--mutate", "--out", dir, "--seed", "11")
		}
		before, beforeStats := storeFiles(t, st), stats(t, st)
		var est estimateOut
		estFile := filepath.Join(tmpDir(t), "size.xml")
		smpJSON(t, exitOK, &est, "capture", "--store", st, "--computer", "fleet", "--root", dir, "--estimate", "--estimate-file", estFile, "--json")
		if after := storeFiles(t, st); !maps.Equal(before, after) {
			t.Fatalf("round %d: the estimate changed the store:\nbefore %v\nafter  %v", round, before, after)
		}
		if after := stats(t, st); after != beforeStats {
			t.Fatalf("round %d: the estimate changed the store's figures: %+v, then %+v", round, beforeStats, after)
		}
		real := doCapture(t, exitOK, st, "fleet", "--root", dir)
		t.Logf("round %d: estimate %d files, %d bytes, %d new, %d stored; capture %d files, %d bytes, %d new, %d stored",
			round, est.Files, est.Bytes, est.NewBytes, est.StoredBytes, real.Files, real.Bytes, real.NewBytes, real.StoredBytes)
		if !est.Estimate || est.Files != real.Files || est.Bytes != real.Bytes || !within(est.NewBytes, real.NewBytes) ||
			!within(est.StoredBytes, real.StoredBytes) || est.UnchangedFiles != real.UnchangedFiles {
			t.Errorf("round %d: estimate %+v, capture %+v", round, est, real)
		}
		if mutate && (real.NewBytes == 0 || real.NewBytes > real.Bytes/5) {
			t.Errorf("the incremental capture stored %d of %d bytes", real.NewBytes, real.Bytes)
		}
		b, err := os.ReadFile(estFile)
		if err != nil {
			t.Fatal(err)
		}
		var x estimateXML
		if err := xml.Unmarshal(b, &x); err != nil {
			t.Fatalf("size file: %v\n%s", err, b)
		}
		if len(x.StoreSize) == 0 || x.StoreSize[0].Cluster != 4096 || x.StoreSize[0].Size < est.StoredBytes ||
			x.StoreSize[0].Size >= est.StoredBytes+4096 || x.SMP.NewBytes != est.NewBytes || !strings.HasPrefix(string(b), "<?xml") {
			t.Errorf("size file %+v:\n%s", x, b)
		}
	}
	// Only the real captures made records.
	var recs recordsOut
	smpJSON(t, exitOK, &recs, "records", "--store", st, "--json")
	if len(recs.Records) != 2 {
		t.Errorf("%d records, want the 2 captures'", len(recs.Records))
	}
	if r := smp(t, "capture", "--store", st, "--computer", "fleet", "--root", dir, "--estimate", "--hardlink", "auto"); r.code != exitUsage {
		t.Errorf("--estimate --hardlink auto: %s", r)
	}
}

// TestE2EEstimateRemote: through smp serve, --estimate runs on an
// estimate session: it agrees with the capture that follows within 2% on
// the bench corpus, before and after the mutation, with no pack written
// (nothing uploaded) and no record committed; and it reserves nothing, so
// an SMP whose quota refuses the capture still answers the estimate.
func TestE2EEstimateRemote(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(tmpDir(t), "corpus")
	mustSMP(t, "bench", "corpus", "--out", dir, "--users", "3", "--size", "24MiB", "--seed", "13")
	st := newStore(t)
	srv := startServer(t, st, "--insecure")
	token := newToken(t, st, "--computer", "fleet")
	for round, mutate := range []bool{false, true} {
		if mutate {
			mustSMP(t, "bench", "corpus", "--mutate", "--out", dir, "--seed", "13")
		}
		before := storeFiles(t, st)
		var est estimateOut
		smpJSON(t, exitOK, &est, "capture", "--store", srv.url, "--token", token, "--computer", "fleet", "--root", dir, "--estimate", "--json")
		if after := storeFiles(t, st); !maps.Equal(before, after) {
			t.Fatalf("round %d: the estimate changed the store:\nbefore %v\nafter  %v", round, before, after)
		}
		real := remoteCapture(t, exitOK, srv.url, token, "fleet", "--root", dir)
		t.Logf("round %d: estimate %d files, %d bytes, %d new, %d stored; capture %d new, %d stored, %d uploaded",
			round, est.Files, est.Bytes, est.NewBytes, est.StoredBytes, real.NewBytes, real.StoredBytes, real.Uploaded)
		if !est.Estimate || est.Files != real.Files || est.Bytes != real.Bytes || !within(est.NewBytes, real.NewBytes) ||
			!within(est.StoredBytes, real.StoredBytes) || est.UnchangedFiles != real.UnchangedFiles {
			t.Errorf("round %d: estimate %+v, capture %+v", round, est, real.captureOut)
		}
	}
	var recs recordsOut
	smpJSON(t, exitOK, &recs, "records", "--store", srv.url, "--token", token, "--json")
	if len(recs.Records) != 2 {
		t.Errorf("%d records, want the 2 captures'", len(recs.Records))
	}

	// Under a quota the capture cannot meet, the estimate still answers:
	// it reserved nothing.
	q := newStore(t)
	qsrv := startServer(t, q, "--insecure", "--quota", "1MiB")
	qtok := newToken(t, q, "--computer", "fleet")
	var est estimateOut
	smpJSON(t, exitOK, &est, "capture", "--store", qsrv.url, "--token", qtok, "--computer", "fleet", "--root", dir, "--estimate", "--json")
	if est.NewBytes < 2<<20 {
		t.Errorf("estimate under quota: %+v", est)
	}
	if r := smp(t, "capture", "--store", qsrv.url, "--token", qtok, "--computer", "fleet", "--root", dir); r.code != exitError || !strings.Contains(r.stderr, "quota") {
		t.Errorf("capture over the quota: %s", r)
	}
}
