package main

import (
	"fmt"
	"os"
	"os/exec"
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
	"builtin:documents": {
		probes: map[string]rulesProbe{
			"/home/":                                         {"home/", "root/home/"},
			"/home/*/":                                       {"home/alice/", "root/alice/"},
			"/home/*/Documents/***":                          {"home/alice/Documents/", "home/alice/Old/Documents/"},
			"/home/*/Desktop/***":                            {"home/alice/Desktop/", "home/alice/Desktop.bak/"},
			"/home/*/Pictures/***":                           {"home/alice/Pictures/", "home/alice/Documents/Pictures/"},
			"/home/*/Music/***":                              {"home/alice/Music/", "root/Music/"},
			"/home/*/Videos/***":                             {"home/alice/Videos/", "home/alice/Videos.txt"},
			"/home/*/.mozilla/":                              {"home/alice/.mozilla/", "root/.mozilla/"},
			"/home/*/.mozilla/firefox/":                      {"home/alice/.mozilla/firefox/", "home/alice/.mozilla/seamonkey/"},
			"/home/*/.mozilla/firefox/profiles.ini":          {"home/alice/.mozilla/firefox/profiles.ini", "home/alice/.mozilla/firefox/abc.default/profiles.ini"},
			"/home/*/.mozilla/firefox/*/":                    {"home/alice/.mozilla/firefox/abc.default/", "home/alice/.mozilla/firefox/installs.ini"},
			"/home/*/.mozilla/firefox/*/places.sqlite":       {"home/alice/.mozilla/firefox/abc.default/places.sqlite", "home/alice/.mozilla/firefox/abc.default/places.sqlite-wal"},
			"/home/*/.mozilla/firefox/*/bookmarkbackups/***": {"home/alice/.mozilla/firefox/abc.default/bookmarkbackups/", "home/alice/.mozilla/firefox/abc.default/sessionstore-backups/"},
			"/home/*/.config/":                               {"home/alice/.config/", "root/.config/"},
			"/home/*/.config/google-chrome/":                 {"home/alice/.config/google-chrome/", "home/alice/.config/google-chrome-beta/"},
			"/home/*/.config/chromium/":                      {"home/alice/.config/chromium/", "home/alice/.config/chromium-old/"},
			"/home/*/.config/google-chrome/*/":               {"home/alice/.config/google-chrome/Default/", "home/alice/.config/google-chrome/Local State"},
			"/home/*/.config/chromium/*/":                    {"home/alice/.config/chromium/Default/", "home/alice/.config/chromium/Local State"},
			"/home/*/.config/google-chrome/*/Bookmarks":      {"home/alice/.config/google-chrome/Default/Bookmarks", "home/alice/.config/google-chrome/Default/Bookmarks.bak"},
			"/home/*/.config/chromium/*/Bookmarks":           {"home/alice/.config/chromium/Profile 1/Bookmarks", "home/alice/.config/chromium/Profile 1/History"},
			"/home/*/.thunderbird/***":                       {"home/alice/.thunderbird/", "home/alice/.thunderbird-old/"},
			"/home/*/.local/":                                {"home/alice/.local/", "root/.local/"},
			"/home/*/.local/share/":                          {"home/alice/.local/share/", "home/alice/.local/state/"},
			"/home/*/.local/share/evolution/***":             {"home/alice/.local/share/evolution/", "home/alice/.local/share/evolution2/"},
			"/home/*/Maildir/***":                            {"home/alice/Maildir/", "home/alice/Maildir.bak/"},
			"/home/*/.ssh/***":                               {"home/alice/.ssh/", "root/.ssh/"},
			"/home/*/.gnupg/***":                             {"home/alice/.gnupg/", "home/alice/.gnupg.old/"},
			"/home/*/.bashrc":                                {"home/alice/.bashrc", "home/alice/.bashrc.d/"},
			"/home/*/.bash_profile":                          {"home/alice/.bash_profile", "root/.bash_profile"},
			"/home/*/.bash_aliases":                          {"home/alice/.bash_aliases", "home/alice/old/.bash_aliases"},
			"/home/*/.bash_history":                          {"home/alice/.bash_history", "root/.bash_history"},
			"/home/*/.profile":                               {"home/alice/.profile", "home/alice/.profile.bak"},
			"/home/*/.zshrc":                                 {"home/alice/.zshrc", "root/.zshrc"},
			"/home/*/.zsh_history":                           {"home/alice/.zsh_history", "root/.zsh_history"},
			"/home/*/.inputrc":                               {"home/alice/.inputrc", "root/.inputrc"},
			"/home/*/.gitconfig":                             {"home/alice/.gitconfig", "home/alice/src/.gitconfig"},
			"/home/*/.config/fish/***":                       {"home/alice/.config/fish/", "home/alice/.config/fisher/"},
			"/home/*/.vimrc":                                 {"home/alice/.vimrc", "root/.vimrc"},
			"/home/*/.vim/***":                               {"home/alice/.vim/", "home/alice/.vimrc.bak"},
			"/home/*/.config/nvim/***":                       {"home/alice/.config/nvim/", "home/alice/.config/nvim-data/"},
			"/home/*/.emacs":                                 {"home/alice/.emacs", "home/alice/.emacs~"},
			"/home/*/.emacs.d/***":                           {"home/alice/.emacs.d/", "root/.emacs.d/"},
			"/home/*/.config/Code/":                          {"home/alice/.config/Code/", "home/alice/.config/Code - OSS/"},
			"/home/*/.config/Code/User/***":                  {"home/alice/.config/Code/User/", "home/alice/.config/Code/Cache/"},
			"*":                                              {"home/alice/notes", ""},
		},
		kept: []string{"home/alice/Documents/x", "home/alice/.ssh/x", "home/alice/.config/google-chrome/Default/Bookmarks",
			"home/alice/.mozilla/firefox/abc.default/places.sqlite", "home/alice/.mozilla/firefox/profiles.ini", "home/alice/.bashrc",
			"home/alice/.config/Code/User/x", "home/alice/.local/share/evolution/x", "home/alice/Documents/Pictures/x"},
		excluded: []string{"home/alice/.config/google-chrome/Local State", "home/alice/.config/Code/Cache", "home/alice/notes", "root",
			"home/alice/.mozilla/firefox/abc.default/places.sqlite-wal", "home/alice/.local/state", "home/alice/Old/Documents",
			"home/alice/.config/google-chrome/Default/Bookmarks.bak", "home/alice/.vimrc.bak"},
	},
	"builtin:everything": {
		probes: map[string]rulesProbe{
			"/home/*/.cache/":                    {"home/alice/.cache/", "home/alice/work/.cache/"},
			"/root/.cache/":                      {"root/.cache/", "root/work/.cache/"},
			"/home/*/.local/share/Trash/":        {"home/alice/.local/share/Trash/", "home/alice/.local/share/Trash-old/"},
			"/root/.local/share/Trash/":          {"root/.local/share/Trash/", "root/.local/Trash/"},
			"/home/*/.thumbnails/":               {"home/alice/.thumbnails/", "home/alice/Pictures/.thumbnails/"},
			"Thumbs.db":                          {"home/alice/Pictures/Thumbs.db", "home/alice/Pictures/Thumbs.db.txt"},
			"/home/*/.mozilla/firefox/*/cache2/": {"home/alice/.mozilla/firefox/abc.default/cache2/", "home/alice/.mozilla/firefox/abc.default/storage/"},
			"/home/*/.config/*/**/GPUCache/":     {"home/alice/.config/google-chrome/Default/GPUCache/", "home/alice/GPUCache/"},
			`/home/*/.config/*/**/Service\ Worker/CacheStorage/`: {"home/alice/.config/google-chrome/Default/Service Worker/CacheStorage/",
				"home/alice/.config/google-chrome/Default/Service Worker/Database/"},
			"node_modules/":            {"home/alice/src/app/node_modules/", "home/alice/src/node_modules"},
			"__pycache__/":             {"home/alice/src/__pycache__/", "home/alice/src/__pycache__.txt"},
			"*.py[co]":                 {"home/alice/src/m.pyc", "home/alice/src/m.py"},
			"*.o":                      {"home/alice/src/main.o", "home/alice/src/main.odt"},
			".tox/":                    {"home/alice/src/.tox/", "home/alice/src/tox.ini"},
			"CMakeFiles/":              {"home/alice/src/build/CMakeFiles/", "home/alice/src/CMakeLists.txt"},
			"/home/*/.gradle/caches/":  {"home/alice/.gradle/caches/", "home/alice/.gradle/gradle.properties"},
			"/home/*/.m2/repository/":  {"home/alice/.m2/repository/", "home/alice/.m2/settings.xml"},
			"/home/*/.cargo/registry/": {"home/alice/.cargo/registry/", "home/alice/.cargo/config.toml"},
			"/home/*/go/pkg/mod/":      {"home/alice/go/pkg/mod/", "home/alice/go/src/mod/"},
			".[^.]*.sw[a-p]":           {"home/alice/src/.main.go.swp", "home/alice/src/.main.go.swx"},
		},
		kept: []string{"home/alice/work/.cache/x", "home/alice/src/m.py", "home/alice/.m2/settings.xml",
			"home/alice/Pictures/Thumbs.db.txt", "home/alice/GPUCache/x", "root/work/.cache/x"},
		excluded: []string{"home/alice/.cache", "root/.cache", "home/alice/src/app/node_modules", "home/alice/go/pkg/mod",
			"home/alice/.config/google-chrome/Default/GPUCache", "home/alice/src/main.o"},
	},
	"docs/RULES.md": {
		probes: map[string]rulesProbe{
			"/home/*/.cache/": {"home/alice/.cache/", "home/alice/work/.cache/"},
			"*.iso":           {"home/alice/Downloads/disk.iso", "home/alice/Downloads/disk.iso.txt"},
		},
		kept:     []string{"home/alice/Downloads/disk.iso.txt", "home/alice/work/.cache/x"},
		excluded: []string{"home/alice/.cache", "home/alice/Downloads/disk.iso"},
	},
}

// ruleSource is a set of rules smp ships: a sample file, a built-in set or
// a documentation example; arg is what --rules takes for it ("" for an
// example, written to a file first).
type ruleSource struct{ name, text, arg string }

// docRulesExample is the pasteable example of docs/RULES.md: the shell
// block, and the rules its here-document writes.
func docRulesExample() (script, rules string, err error) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "RULES.md"))
	if err != nil {
		return "", "", err
	}
	_, rest, ok := strings.Cut(string(b), "```sh\n")
	script, _, ok2 := strings.Cut(rest, "```")
	_, doc, ok3 := strings.Cut(script, "<<'EOF'\n")
	rules, _, ok4 := strings.Cut(doc, "\nEOF\n")
	if !ok || !ok2 || !ok3 || !ok4 {
		return "", "", fmt.Errorf("docs/RULES.md: no sh block with a rules here-document")
	}
	return script, rules + "\n", nil
}

// shippedRuleSources lists every rule set smp ships or documents.
func shippedRuleSources() ([]ruleSource, error) {
	files, err := filepath.Glob(filepath.Join("..", "..", "filter", "testdata", "*.rules"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no shipped rules files: %v", err)
	}
	var out []ruleSource
	for _, file := range files {
		name := filepath.Base(file)
		if strings.HasPrefix(name, "bad-") {
			continue // malformed on purpose (TestTestdataRules)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		out = append(out, ruleSource{name, string(b), file})
	}
	for _, n := range filter.BuiltinNames() {
		b, err := filter.Builtin(n)
		if err != nil {
			return nil, err
		}
		out = append(out, ruleSource{filter.BuiltinPrefix + n, string(b), filter.BuiltinPrefix + n})
	}
	_, rules, err := docRulesExample()
	if err != nil {
		return nil, err
	}
	return append(out, ruleSource{"docs/RULES.md", rules, ""}), nil
}

// TestE2ERulesShippedSamples captures a fixture tree with --root TEMP (so
// rules see the paths of a capture from /: home/alice/..., Users/alice/...)
// for every shipped rules file, built-in set (--rules builtin:NAME) and
// the example of docs/RULES.md. Each pattern is captured alone as an
// exclude rule: its probe must leave the record and its near miss stay,
// which shows the pattern matches what it was written for relative to the
// capture root (an include rule does nothing visible without a later
// exclude). Then the file as shipped must keep and drop what it says.
func TestE2ERulesShippedSamples(t *testing.T) {
	t.Parallel()
	sources, err := shippedRuleSources()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, src := range sources {
		name := src.name
		seen[name] = true
		spec, ok := shippedRules[name]
		if !ok {
			t.Errorf("%s: shipped but not described in shippedRules", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rules, err := filter.ParseRules(strings.NewReader(src.text))
			if err != nil {
				t.Fatal(err)
			}
			file := src.arg
			if file == "" {
				file = filepath.Join(tmpDir(t), "doc.rules")
				writeFile(t, file, []byte(src.text), 0o644)
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

// TestE2ERulesDocExample runs the example of docs/RULES.md as written,
// with /tmp moved into the test's directory and this smp on PATH: the
// capture keeps the report and drops the cache and the ISO image.
func TestE2ERulesDocExample(t *testing.T) {
	t.Parallel()
	script, _, err := docRulesExample()
	if err != nil {
		t.Fatal(err)
	}
	dir := tmpDir(t)
	script = strings.ReplaceAll(script, "/tmp/", dir+"/")
	cmd := exec.Command("bash", "-e", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the example fails: %v\n%s", err, out)
	}
	if s := string(out); !strings.Contains(s, "home/alice/Documents/report.txt") || strings.Contains(s, "junk") || strings.Contains(s, "disk.iso") {
		t.Fatalf("the example's capture:\n%s", s)
	}
}

// TestE2ERulesShow: smp rules show prints a built-in set that, saved and
// given to --rules, selects as builtin:NAME does; list names them all.
func TestE2ERulesShow(t *testing.T) {
	t.Parallel()
	r := mustSMP(t, "rules", "list")
	if r.stdout != "builtin:documents\nbuiltin:everything\n" {
		t.Fatalf("rules list: %q", r.stdout)
	}
	for _, n := range []string{"documents", "builtin:everything"} {
		r := mustSMP(t, "rules", "show", n)
		b, _ := filter.Builtin(n)
		if r.stdout != string(b) || !strings.Contains(r.stdout, "relative to the capture's --root") {
			t.Errorf("rules show %s printed %q", n, r.stdout)
		}
	}
	if r := smp(t, "rules", "show", "docs"); r.code != exitUsage || !strings.Contains(r.stderr, "documents, everything") {
		t.Errorf("unknown set: %s", r)
	}
	if r := smp(t, "capture", "--store", newStore(t), "--computer", "PC", "--rules", "builtin:nope"); r.code != exitUsage {
		t.Errorf("--rules builtin:nope: %s", r)
	}
}
