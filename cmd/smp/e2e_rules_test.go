package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"smp/filter"
)

// rulesProbe is a path a shipped pattern must match and a near miss it must
// not, both relative to the capture root. A trailing '/' makes the fixture
// a directory (holding a file "x").
type rulesProbe struct{ match, miss string }

// shippedRules describes each sample rules file under filter/testdata: the
// PATHs its capture takes (none: the default profiles), a probe for every
// pattern in it, and what a capture with the whole file keeps and drops.
var shippedRules = map[string]struct {
	paths          []string
	probes         map[string]rulesProbe
	kept, excluded []string
}{
	"linux-home.rules": {
		probes: map[string]rulesProbe{
			"/home/*/.cache/":                {"home/alice/.cache/", "home/alice/work/.cache/"},
			"/root/.cache/":                  {"root/.cache/", "root/work/.cache/"},
			"/home/*/.local/share/Trash/":    {"home/alice/.local/share/Trash/", "home/bob/.local/share/Trash"},
			"node_modules/":                  {"home/alice/src/app/node_modules/", "home/alice/src/node_modules"},
			"__pycache__/":                   {"home/alice/src/__pycache__/", "home/alice/src/__pycache__.txt"},
			"*.py[co]":                       {"home/alice/src/m.pyc", "home/alice/src/m.py"},
			".[^.]*.sw[a-p]":                 {"home/alice/src/.main.go.swp", "home/alice/src/.main.go.swx"},
			"/home/*/snap/**/common/.cache/": {"home/alice/snap/firefox/common/.cache/", "home/alice/snap/firefox/current/.cache/"},
			"/home/*/.config/***":            {"home/alice/.config/", "home/alice/old/.config/"},
			"/home/*/.ssh/":                  {"home/alice/.ssh/", "home/alice/backup/.ssh/"},
			"/home/*/.ssh/id_*":              {"home/alice/.ssh/id_ed25519", "home/alice/.ssh/known_hosts"},
			"/home/*/Documents/**":           {"home/alice/Documents/report.odt", "home/alice/Archive/Documents/old.odt"},
			`/home/*/My\ Documents/`:         {"home/alice/My Documents/", "home/alice/My_Documents/"},
		},
		kept: []string{"home/alice/work/.cache/x", "home/alice/.ssh/known_hosts", "home/alice/Documents/report.odt",
			"home/alice/.config/x", "home/alice/My Documents/x", "home/alice/src/m.py"},
		excluded: []string{"home/alice/.cache", "root/.cache", "home/alice/.local/share/Trash", "home/alice/src/app/node_modules",
			"home/alice/src/m.pyc", "home/alice/.ssh/id_ed25519", "home/alice/snap/firefox/common/.cache"},
	},
	"windows-profile.rules": {
		paths: []string{"Users"},
		probes: map[string]rulesProbe{
			"/Users/*/AppData/Local/Temp/":                        {"Users/alice/AppData/Local/Temp/", "Users/alice/AppData/LocalLow/Temp/"},
			"/Users/*/AppData/Local/Microsoft/Windows/INetCache/": {"Users/alice/AppData/Local/Microsoft/Windows/INetCache/", "Users/alice/AppData/Roaming/Microsoft/Windows/INetCache/"},
			"/Users/*/AppData/Local/**/Cache/":                    {"Users/alice/AppData/Local/Google/Chrome/User Data/Default/Cache/", "Users/alice/AppData/Roaming/Google/Cache/"},
			"*.tmp":                                               {"Users/alice/Desktop/a.tmp", "Users/alice/Desktop/a.tmpl"},
			"~$*":                                                 {"Users/alice/Documents/~$report.docx", "Users/alice/Documents/report~$.docx"},
			"Thumbs.db":                                           {"Users/alice/Pictures/Thumbs.db", "Users/alice/Pictures/Thumbs.db.bak"},
			"desktop.ini":                                         {"Users/alice/Desktop/desktop.ini", "Users/alice/Desktop/desktop.ini.txt"},
			"/Users/*/AppData/Roaming/***":                        {"Users/alice/AppData/Roaming/", "Users/alice/old/AppData/Roaming/"},
			"/Users/*/Documents/***":                              {"Users/alice/Documents/", "Users/alice/OneDrive/Documents/"},
			"/Users/*/Desktop/":                                   {"Users/alice/Desktop/", "Users/bob/Desktop"},
			"/Users/*/Pictures/":                                  {"Users/alice/Pictures/", "Users/alice/Documents/Pictures/"},
			"/Users/*/AppData/Local/Packages/*/LocalCache/": {"Users/alice/AppData/Local/Packages/Microsoft.Photos/LocalCache/", "Users/alice/AppData/Local/Packages/Microsoft.Photos/LocalState/"},
		},
		kept: []string{"Users/alice/Documents/report~$.docx", "Users/alice/AppData/Roaming/x", "Users/alice/Pictures/Thumbs.db.bak",
			"Users/alice/AppData/Roaming/Google/Cache/x", "Users/alice/AppData/Local/Packages/Microsoft.Photos/LocalState/x"},
		excluded: []string{"Users/alice/AppData/Local/Temp", "Users/alice/AppData/Local/Microsoft/Windows/INetCache",
			"Users/alice/AppData/Local/Google/Chrome/User Data/Default/Cache", "Users/alice/Desktop/a.tmp",
			"Users/alice/Documents/~$report.docx", "Users/alice/Pictures/Thumbs.db", "Users/alice/Desktop/desktop.ini",
			"Users/alice/AppData/Local/Packages/Microsoft.Photos/LocalCache"},
	},
	"documents-only.rules": {
		probes: map[string]rulesProbe{
			"*.docx": {"home/alice/Documents/report.docx", "home/alice/Documents/report.docx.txt"},
			"*.xlsx": {"home/alice/budget.xlsx", "home/alice/budget.xls"},
			// "*/" matches every directory, "home" included, and "*" every
			// name: a capture holds no near miss for them.
			"*/": {"home/alice/Documents/", ""},
			"*":  {"home/alice/notes", ""},
		},
		kept:     []string{"home/alice/Documents/report.docx", "home/alice/budget.xlsx"},
		excluded: []string{"home/alice/Documents/report.docx.txt", "home/alice/budget.xls", "home/alice/notes"},
	},
}

// TestE2ERulesShippedSamples captures a fixture tree with --root TEMP (so
// rules see the paths of a capture from /: home/alice/..., Users/alice/...)
// for every shipped rules file. Each pattern is captured alone as an
// exclude rule: its probe must leave the record and its near miss stay,
// which shows the pattern matches what it was written for relative to the
// capture root (an include rule does nothing visible without a later
// exclude). Then the file as shipped must keep and drop what it says.
func TestE2ERulesShippedSamples(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "..", "filter", "testdata", "*.rules"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no shipped rules files: %v", err)
	}
	seen := map[string]bool{}
	for _, file := range files {
		name := filepath.Base(file)
		if strings.HasPrefix(name, "bad-") {
			continue // malformed on purpose (TestTestdataRules)
		}
		seen[name] = true
		spec, ok := shippedRules[name]
		if !ok {
			t.Errorf("%s: shipped but not described in shippedRules", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			rules, err := filter.ParseRules(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			root := tmpDir(t)
			for _, p := range spec.probes {
				for _, rel := range []string{p.match, p.miss} {
					if strings.HasSuffix(rel, "/") {
						writeFile(t, filepath.Join(root, rel, "x"), []byte("x\n"), 0o644)
					} else if rel != "" {
						writeFile(t, filepath.Join(root, rel), []byte(rel+"\n"), 0o644)
					}
				}
			}
			mkdirs(t, filepath.Join(root, "root"))
			store := newStore(t)
			captured := func(t *testing.T, rulesFile string) []string {
				t.Helper()
				args := []string{"--root", root}
				if rulesFile != "" {
					args = append(args, "--rules", rulesFile)
				}
				out := doCapture(t, exitOK, store, "PC01", append(args, spec.paths...)...)
				paths := filePaths(t, store, out.Record, "")
				for i, p := range paths {
					paths[i] = strings.TrimSuffix(p, "/")
				}
				return paths
			}
			has := func(paths []string, rel string) bool {
				rel = strings.TrimSuffix(rel, "/")
				return slices.ContainsFunc(paths, func(p string) bool { return p == rel || strings.HasPrefix(p, rel+"/") })
			}
			all := captured(t, "")
			for _, p := range spec.probes {
				for _, rel := range []string{p.match, p.miss} {
					if rel != "" && !has(all, rel) {
						t.Fatalf("fixture %s is not captured without rules", rel)
					}
				}
			}
			probed := map[string]bool{}
			for _, r := range rules {
				p, ok := spec.probes[r.Pattern]
				if !ok {
					t.Errorf("pattern %q has no probe", r.Pattern)
					continue
				}
				probed[r.Pattern] = true
				alone := filepath.Join(tmpDir(t), "alone.rules")
				writeFile(t, alone, []byte("- "+r.Pattern+"\n"), 0o644)
				got := captured(t, alone)
				if has(got, p.match) {
					t.Errorf("pattern %q does not match %s in a capture of %v from the root", r.Pattern, p.match, spec.paths)
				}
				if p.miss != "" && !has(got, p.miss) {
					t.Errorf("pattern %q matches its near miss %s", r.Pattern, p.miss)
				}
			}
			for pat := range spec.probes {
				if !probed[pat] {
					t.Errorf("probe for %q, which %s no longer has", pat, name)
				}
			}
			got := captured(t, file)
			for _, rel := range spec.kept {
				if !has(got, rel) {
					t.Errorf("with %s, %s was not captured", name, rel)
				}
			}
			for _, rel := range spec.excluded {
				if has(got, rel) {
					t.Errorf("with %s, %s was captured", name, rel)
				}
			}
		})
	}
	for name := range shippedRules {
		if !seen[name] {
			t.Errorf("shippedRules describes %s, which is not shipped", name)
		}
	}
}
