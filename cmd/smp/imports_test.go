package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsGoThroughStore: the commands reach every store through
// package store, so none of them can branch on local versus remote: the
// command package imports neither the local store (repo, index) nor the
// SMP client directly.
func TestImportsGoThroughStore(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	out, err := exec.Command(goBin, "list", "-f", `{{join .Imports " "}}`, "smp/cmd/smp").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := strings.Fields(string(out))
	if len(imports) == 0 {
		t.Fatal("go list found no imports of smp/cmd/smp")
	}
	seen := map[string]bool{}
	for _, p := range imports {
		seen[p] = true
	}
	if !seen["smp/store"] {
		t.Errorf("smp/cmd/smp does not import smp/store; imports: %v", imports)
	}
	for _, banned := range []string{"smp/repo", "smp/remote/client", "smp/index"} {
		if seen[banned] {
			t.Errorf("smp/cmd/smp imports %s directly: reach it through smp/store", banned)
		}
	}
}
