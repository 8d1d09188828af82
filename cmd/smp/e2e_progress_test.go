package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestE2EProgressLog: capture and restore append USMT-style lines in the
// documented format (docs/PROGRESS.md), skipped paths included.
func TestE2EProgressLog(t *testing.T) {
	t.Parallel()
	dir := tmpDir(t)
	root := filepath.Join(dir, "root")
	writeFile(t, filepath.Join(root, "home/alice/a.bin"), rnd(3, 3<<20), 0o644)
	if err := syscall.Mkfifo(filepath.Join(root, "home/alice/pipe"), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// A profile is its user's: root's files in one would be given to
		// its owner, one more warning line.
		chownTree(t, filepath.Join(root, "home/alice"), 1000, 1000)
	}
	store := newStore(t)
	log := filepath.Join(dir, "progress.log")
	doCapture(t, 0, store, "pc1", "--root", root, "--progress-log", log)
	restoreJSON(t, 0, store, "--computer", "pc1", "--root", filepath.Join(dir, "out"), "--progress-log", log)
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	lineRE := regexp.MustCompile(`^\d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d, \d\d:\d\d:\d\d, \[0x[0-9a-f]{6}\] [A-Za-z]+, .+$`)
	keys := map[string]int{}
	var phases []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !lineRE.MatchString(l) {
			t.Fatalf("line does not match the format: %q", l)
		}
		kv := strings.SplitN(l[strings.Index(l, "] ")+2:], ", ", 2)
		keys[kv[0]]++
		if kv[0] == "PHASE" {
			phases = append(phases, kv[1])
		}
		if kv[0] == "totalPercentageCompleted" && kv[1] != "100" && !regexp.MustCompile(`^\d{1,2}$`).MatchString(kv[1]) {
			t.Errorf("bad percentage %q", kv[1])
		}
	}
	if strings.Join(phases, ",") != "Capture,Done,Restore,Done" {
		t.Errorf("phases %v", phases)
	}
	if keys["warning"] != 1 || keys["action"] != 1 || keys["totalSizeInMBToTransfer"] < 2 || keys["totalMinutesRemaining"] < 2 {
		t.Errorf("keys %v", keys)
	}
}
