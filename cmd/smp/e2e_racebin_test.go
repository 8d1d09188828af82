package main

import (
	"debug/buildinfo"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"runtime/debug"
	"slices"
	"testing"
)

// TestE2ERaceBinTestsExist: every name in raceBinTests is a test of this
// package (a renamed test would otherwise quietly lose the race-built
// smp), and under -race smpRaceBin is race-instrumented while smpBin is
// not.
func TestE2ERaceBinTestsExist(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil {
				tests[fd.Name.Name] = true
			}
		}
	}
	for name := range raceBinTests {
		if !tests[name] {
			t.Errorf("raceBinTests names %s, which is no test of cmd/smp", name)
		}
	}
	race := func(bin string) bool {
		t.Helper()
		bi, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(bi.Settings, func(s debug.BuildSetting) bool {
			return s.Key == "-race" && s.Value == "true"
		})
	}
	if got, want := race(smpRaceBin), raceEnabled(); got != want {
		t.Errorf("smpRaceBin built with -race: %v, want %v (as this test binary)", got, want)
	}
	if race(smpBin) {
		t.Errorf("smpBin is race-instrumented; want a plain build")
	}
}
