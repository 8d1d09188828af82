package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smp/cas"
	"smp/store"
)

// TestCommandsInProcess: the commands run in the test process from their
// options structs, writing to the given writer: capture, records, files
// and restore of a store directory, without building the binary.
func TestCommandsInProcess(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	dir, src, dst := filepath.Join(tmp, "store"), filepath.Join(tmp, "src"), filepath.Join(tmp, "dst")
	params, err := cas.ChunkerParamsForAvg(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Init(dir, params); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(src, "home", "alice")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	content := []byte(strings.Repeat("in process\n", 1000))
	if err := os.WriteFile(filepath.Join(home, "notes.txt"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	sf := storeFlags{Location: dir}

	var out bytes.Buffer
	if err := runCapture(ctx, &captureOptions{storeFlags: sf, Computer: "PC01", Root: src, Hardlink: "never", JSON: true}, &out); err != nil {
		t.Fatalf("capture: %v", err)
	}
	var cap struct {
		Record string `json:"record"`
		Files  int    `json:"files"`
	}
	if err := json.Unmarshal(out.Bytes(), &cap); err != nil || cap.Files != 1 {
		t.Fatalf("capture printed %q (%v); want one file", out.String(), err)
	}

	out.Reset()
	if err := runRecords(ctx, &recordsOptions{storeFlags: sf, Stale: "30d"}, &out); err != nil {
		t.Fatalf("records: %v", err)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], cap.Record[:12]) || strings.Contains(lines[0], "SMP") {
		t.Errorf("records of a store directory: want a header without SMP and the record %s\n%s", cap.Record[:12], out.String())
	}

	out.Reset()
	if err := runFiles(ctx, &recordRefOptions{storeFlags: sf, Record: cap.Record}, &out); err != nil {
		t.Fatalf("files: %v", err)
	}
	if !strings.Contains(out.String(), "home/alice/notes.txt") {
		t.Errorf("files does not list home/alice/notes.txt:\n%s", out.String())
	}

	out.Reset()
	if err := runRestore(ctx, &restoreOptions{storeFlags: sf, Computer: "PC01", Root: dst, Overwrite: "never", Keep: true}, &out); err != nil {
		t.Fatalf("restore: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dst, "home", "alice", "notes.txt"))
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("restored notes.txt: %d bytes, %v; want the %d captured", len(got), err, len(content))
	}
	if !strings.Contains(out.String(), "restored record "+cap.Record[:12]) {
		t.Errorf("restore printed %q", out.String())
	}
}
