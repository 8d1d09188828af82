package filter

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// mustRules parses lines as rules, failing the test on any error.
func mustRules(t testing.TB, lines ...string) []Rule {
	t.Helper()
	rules := make([]Rule, 0, len(lines))
	for _, l := range lines {
		r, err := ParseRule(l)
		if err != nil {
			t.Fatalf("ParseRule(%q): %v", l, err)
		}
		rules = append(rules, r)
	}
	return rules
}

func mustSet(t testing.TB, lines ...string) *Set {
	t.Helper()
	return NewSet(mustRules(t, lines...)...)
}

const dir, file = true, false

var matchTests = []struct {
	pattern string
	rel     string
	isDir   bool
	want    bool
}{
	// '*' and basename patterns at any depth.
	{"*.tmp", "a.tmp", file, true},
	{"*.tmp", "home/alice/a.tmp", file, true},
	{"*.tmp", "x.tmp", dir, true},
	{"*.tmp", "home/a.tmpx", file, false},
	{"*.tmp", "a.tmp/b", file, false},
	{"*.tmp", ".tmp", file, true},
	{"*", "a", file, true},
	{"*", "home/alice/x", file, true},
	{"a*b", "a/b", file, false},
	{"Cache", "Cache", dir, true},
	{"Cache", "home/alice/Cache", dir, true},
	{"Cache", "home/alice/Cache", file, true},
	{"Cache", "home/alice/CacheX", dir, false},
	{"Cache", "home/Cache/x", file, false},
	{"My Documents", "home/My Documents", dir, true},
	// '?'
	{"?", "a", file, true},
	{"?", "ab", file, false},
	{"?", "é", file, true},
	{"a?c", "abc", file, true},
	{"a?c", "a/c", file, false},
	{"?.txt", "日.txt", file, true},
	// Character classes.
	{"[abc].txt", "b.txt", file, true},
	{"[abc].txt", "d.txt", file, false},
	{"[^abc].txt", "d.txt", file, true},
	{"[^abc].txt", "a.txt", file, false},
	{"[a-c]x", "bx", file, true},
	{"[a-c]x", "dx", file, false},
	{"[a-cx-z]", "y", file, true},
	{`[\]]`, "]", file, true},
	{`[a\-z]`, "-", file, true},
	{`[a\-z]`, "b", file, false},
	{"[é-ü]", "ö", file, true},
	{"a[^x]b", "a/b", file, false}, // classes never match '/'
	// "**"
	{"**", "a", file, true},
	{"**", "a/b/c", file, true},
	{"home/**", "home/a", file, true},
	{"home/**", "home/a/b", dir, true},
	{"home/**", "home", dir, false},
	{"home/**/Cache", "home/Cache", dir, true},
	{"home/**/Cache", "home/a/Cache", dir, true},
	{"home/**/Cache", "home/a/b/Cache", dir, true},
	{"home/**/Cache", "home/aCache", dir, false},
	{"home/**/Cache", "x/home/a/Cache", dir, false},
	{"home/**/Cache", "home/a/Cache/x", file, false},
	{"**/Cache", "Cache", dir, true},
	{"**/Cache", "a/b/Cache", dir, true},
	{"**/Cache", "a/bCache", dir, false},
	{"/**/x/**/y", "x/y", file, true},
	{"/**/x/**/y", "a/x/b/c/y", file, true},
	{"a/**b", "a/x/yb", file, true},
	{"a/**b", "a/b", file, true},
	{"a/b**", "a/b", file, true},
	{"a/b**", "a/bc/d", file, true},
	{"**.tmp", "a/b.tmp", file, true},
	{"**.tmp", "b.tmp", file, true},
	{"***", "a/b", file, true},
	// "**" without '/' floats: any tail at a component boundary.
	{"Cache**", "home/Cache/x", file, true},
	{"Cache**", "Cache", dir, true},
	{"Cache**", "home/xCache/y", file, false},
	{"a**b", "a/x/b", file, true},
	{"a**b", "x/a/y/b", file, true},
	{"a**b", "xa/b", file, false},
	{"a**b", "a/b/c", file, false},
	// Anchoring.
	{"/tmp", "tmp", dir, true},
	{"/tmp", "home/tmp", dir, false},
	{"tmp", "home/tmp", dir, true},
	{"home/alice", "home/alice", dir, true},
	{"home/alice", "x/home/alice", dir, false},
	{"home/alice", "home/alice/x", file, false},
	{"/home/alice", "home/alice", dir, true},
	{"home/*/Cache", "home/alice/Cache", dir, true},
	{"home/*/Cache", "home/a/b/Cache", dir, false},
	{"home/*/Cache", "x/home/alice/Cache", dir, false},
	{"/*.tmp", "a.tmp", file, true},
	{"/*.tmp", "x/a.tmp", file, false},
	// Directory-only rules.
	{"Cache/", "a/Cache", dir, true},
	{"Cache/", "a/Cache", file, false},
	{"/home/*/", "home/a", dir, true},
	{"/home/*/", "home/a", file, false},
	{"home/*/", "home/a/b", dir, false},
	{"*/", "anything", dir, true},
	{"*/", "anything", file, false},
	// "/***": the directory and everything beneath it.
	{"home/alice/***", "home/alice", dir, true},
	{"home/alice/***", "home/alice/x/y", file, true},
	{"home/alice/***", "home/alicex", dir, false},
	{"home/alice/***", "home", dir, false},
	{"home/*/***", "home/bob/Documents/a", file, true},
	{"home/*/***", "home/bob", dir, true},
	{"home/*/***", "homer/bob", dir, false},
	{"home/*/***/", "home/bob/x", file, false},
	{"home/*/***/", "home/bob/x", dir, true},
	// Escapes.
	{`\*.txt`, "*.txt", file, true},
	{`\*.txt`, "a.txt", file, false},
	{`a\?`, "a?", file, true},
	{`a\?`, "ab", file, false},
	{`\[x]`, "[x]", file, true},
	{`a\\b`, `a\b`, file, true},
	// Bytes that are not UTF-8 match only themselves, and are one
	// character to '?' and '*'.
	{"\xff.txt", "\xff.txt", file, true},
	{"\xff.txt", "\xfe.txt", file, false},
	{"\xff.txt", "\uFFFD.txt", file, false},
	{"*.txt", "d/\xff.txt", file, true},
	{"?.txt", "\xff.txt", file, true},
	{"[^a].txt", "\xff.txt", file, true},
	{"a/\xff*", "a/\xffb", file, true},
	// The root is never matched; surrounding slashes on rel are ignored.
	{"*", "", dir, false},
	{"**", "", dir, false},
	{"*.tmp", "/home/a.tmp", file, true},
	{"/home/a", "home/a/", dir, true},
	// Names with newlines.
	{"a*b", "a\nb", file, true},
	{"a/**", "a/x\n/y", file, true},
}

func TestPatternMatch(t *testing.T) {
	for _, tt := range matchTests {
		r, err := Include(tt.pattern)
		if err != nil {
			t.Fatalf("Include(%q): %v", tt.pattern, err)
		}
		include, got := NewSet(r).Match(tt.rel, tt.isDir)
		if got != tt.want || (got && !include) {
			t.Errorf("pattern %q, Match(%q, isDir=%v) = %v, %v; want %v, %v",
				tt.pattern, tt.rel, tt.isDir, include, got, tt.want, tt.want)
		}
	}
}

// TestAutomatonSizes checks that the general automaton (used for patterns
// of 64 or more tokens) agrees with the one-word one on every case above.
func TestAutomatonSizes(t *testing.T) {
	for _, tt := range matchTests {
		m, err := compile(tt.pattern)
		if err != nil {
			t.Fatalf("compile(%q): %v", tt.pattern, err)
		}
		general := *m
		general.eps = nil
		rel := cleanRel(tt.rel)
		if rel == "" {
			continue
		}
		if got, want := general.match(rel, tt.isDir), m.match(rel, tt.isDir); got != want || got != tt.want {
			t.Errorf("pattern %q, %q: general automaton %v, one-word %v; want %v", tt.pattern, tt.rel, got, want, tt.want)
		}
	}
}

func TestPatternErrors(t *testing.T) {
	tests := []struct {
		pattern string
		want    string // in the error
	}{
		{"", "empty"},
		{"/", "names only the root"},
		{"//", "names only the root"},
		{"/***", ""}, // valid: everything
		{"a//b", "empty path component"},
		{"//a", "empty path component"},
		{"a//", "empty path component"},
		{"[", "unterminated character class"},
		{"[a", "unterminated character class"},
		{"[^", "unterminated character class"},
		{`[\`, "unterminated character class"},
		{"[]", "empty character class"},
		{"[^]", "empty character class"},
		{"[a-]", `range 'a'- has no end`},
		{"[-a]", `unescaped '-'`},
		{"[z-a]", "backwards"},
		{"[\xff]", "invalid UTF-8"},
		{"home/[", "unterminated character class"},
		{`a\`, `ends in '\'`},
		{"a\x00b", "NUL"},
	}
	for _, tt := range tests {
		_, err := Exclude(tt.pattern)
		if tt.want == "" {
			if err != nil {
				t.Errorf("Exclude(%q) = %v; want no error", tt.pattern, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Exclude(%q) = nil error; want one saying %q", tt.pattern, tt.want)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tt.want) || !strings.HasPrefix(msg, "pattern ") || strings.Contains(msg, "\n") {
			t.Errorf("Exclude(%q) error = %q; want one line starting \"pattern \" and saying %q", tt.pattern, msg, tt.want)
		}
		if !strings.Contains(msg, "want") {
			t.Errorf("Exclude(%q) error = %q; want it to say what is expected", tt.pattern, msg)
		}
	}
}

func TestParseRule(t *testing.T) {
	tests := []struct {
		line    string
		include bool
		pattern string
	}{
		{"+ *.doc", true, "*.doc"},
		{"- *.tmp", false, "*.tmp"},
		{"include Documents/", true, "Documents/"},
		{"exclude /tmp", false, "/tmp"},
		{"-  lead", false, " lead"},  // one space only: the rest is the pattern
		{"+ trail ", true, "trail "}, // trailing spaces are kept
		{"- #not a comment", false, "#not a comment"},
		{"- a b/c d", false, "a b/c d"},
	}
	for _, tt := range tests {
		got, err := ParseRule(tt.line)
		if err != nil {
			t.Errorf("ParseRule(%q): %v", tt.line, err)
			continue
		}
		if got.Include != tt.include || got.Pattern != tt.pattern {
			t.Errorf("ParseRule(%q) = {%v, %q}; want {%v, %q}", tt.line, got.Include, got.Pattern, tt.include, tt.pattern)
		}
		if s := got.String(); tt.line[:1] == "+" || tt.line[:1] == "-" {
			if s != tt.line {
				t.Errorf("ParseRule(%q).String() = %q; want the line back", tt.line, s)
			}
		}
	}
}

func TestParseRuleErrors(t *testing.T) {
	const wantForm = `want "+ PATTERN" or "- PATTERN"`
	tests := []struct {
		line string
		want string
	}{
		{"x", `rule "x": ` + wantForm},
		{"*.doc", wantForm},
		{"+foo", wantForm},
		{"-\tfoo", wantForm},
		{"+", wantForm},
		{"", wantForm},
		{"include", wantForm},
		{"! foo", wantForm},
		{" - foo", wantForm},
		{"+ ", `rule "+ ": pattern "": empty`},
		{"- [a", `rule "- [a": pattern "[a": unterminated character class`},
		{"exclude a//b", "empty path component"},
		{"- a\nb\x00", `rule "- a\nb\x00": pattern`},
	}
	for _, tt := range tests {
		_, err := ParseRule(tt.line)
		if err == nil {
			t.Errorf("ParseRule(%q) = nil error; want %q", tt.line, tt.want)
			continue
		}
		if got := err.Error(); !strings.Contains(got, tt.want) || strings.Contains(got, "\n") {
			t.Errorf("ParseRule(%q) error = %q; want one line containing %q", tt.line, got, tt.want)
		}
	}
}

type ruleText struct {
	Include bool
	Pattern string
}

func texts(rules []Rule) []ruleText {
	var out []ruleText
	for _, r := range rules {
		out = append(out, ruleText{r.Include, r.Pattern})
	}
	return out
}

func TestParseRules(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []ruleText
	}{
		{"empty", "", nil},
		{"only comments", "# a\n; b\n\n   \n\t\n", nil},
		{
			"mixed",
			"# capture rules\n\n+ *.doc\n; more\n- *.tmp\ninclude Documents/\nexclude /tmp\n",
			[]ruleText{{true, "*.doc"}, {false, "*.tmp"}, {true, "Documents/"}, {false, "/tmp"}},
		},
		{"no final newline", "- a\n- b", []ruleText{{false, "a"}, {false, "b"}}},
		{"CRLF", "# x\r\n- a\r\n\r\n+ b\r\n", []ruleText{{false, "a"}, {true, "b"}}},
		{"BOM", "\uFEFF- a\n", []ruleText{{false, "a"}}},
		{"BOM comment", "\uFEFF# c\n- a\n", []ruleText{{false, "a"}}},
	}
	for _, tt := range tests {
		rules, err := ParseRules(strings.NewReader(tt.in))
		if err != nil {
			t.Errorf("%s: ParseRules: %v", tt.name, err)
			continue
		}
		if got := texts(rules); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ParseRules = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseRulesErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"bad form", "# c\n- a\nx\n- b\n", `rules line 3: rule "x": want "+ PATTERN" or "- PATTERN"`},
		{"bad pattern", "\n\n\n\n- [\n", `rules line 5: rule "- [": pattern "[": unterminated character class`},
		{"indented comment", "- a\n  # c\n", `rules line 2: rule "  # c": want`},
		{"BOM only first line", "- a\n\uFEFF- b\n", "rules line 2: "},
		{"too long", "- a\n- " + strings.Repeat("x", maxLine) + "\n", "rules line 2: longer than"},
	}
	for _, tt := range tests {
		_, err := ParseRules(strings.NewReader(tt.in))
		if err == nil {
			t.Errorf("%s: ParseRules = nil error; want %q", tt.name, tt.want)
			continue
		}
		if got := err.Error(); !strings.HasPrefix(got, tt.want) || strings.Contains(got, "\n") {
			t.Errorf("%s: ParseRules error = %q; want one line starting %q", tt.name, got, tt.want)
		}
	}

	boom := errors.New("boom")
	_, err := ParseRules(iotest.ErrReader(boom))
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "rules line 1: ") {
		t.Errorf("ParseRules(failing reader) = %v; want line 1 wrapping %v", err, boom)
	}
}

// TestTestdataRules parses the rule files under testdata, which also seed
// FuzzParseRules.
func TestTestdataRules(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.rules"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.rules: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rules, err := ParseRules(strings.NewReader(string(data)))
		if strings.HasPrefix(filepath.Base(f), "bad-") {
			if err == nil {
				t.Errorf("%s: ParseRules = nil error; want one", f)
			}
			continue
		}
		if err != nil || len(rules) == 0 {
			t.Errorf("%s: ParseRules = %d rules, %v; want some and no error", f, len(rules), err)
		}
	}
}

func TestFirstMatchWins(t *testing.T) {
	type check struct {
		rel          string
		isDir        bool
		include, ok  bool // Match
		wantExcluded bool
	}
	tests := []struct {
		rules  []string
		checks []check
	}{
		{
			[]string{"+ *.doc", "- *"},
			[]check{
				{"a.doc", false, true, true, false},
				{"a.txt", false, false, true, true},
				{"home", true, false, true, true},
				// "home" is excluded by "- *", which takes its contents along.
				{"home/a.doc", false, true, true, true},
			},
		},
		{
			[]string{"+ */", "+ *.doc", "- *"},
			[]check{
				{"home", true, true, true, false},
				{"home/alice/a.doc", false, true, true, false},
				{"home/alice/a.txt", false, false, true, true},
				{"home/alice/a.doc", true, true, true, false},
			},
		},
		{
			[]string{"- *", "+ *.doc"},
			[]check{
				{"a.doc", false, false, true, true},
			},
		},
		{
			[]string{"- secret.doc", "+ *.doc", "- *.doc"},
			[]check{
				{"d/secret.doc", false, false, true, true},
				{"d/public.doc", false, true, true, false},
				{"d/x.txt", false, false, false, false},
			},
		},
	}
	for _, tt := range tests {
		s := mustSet(t, tt.rules...)
		for _, c := range tt.checks {
			inc, ok := s.Match(c.rel, c.isDir)
			if inc != c.include || ok != c.ok {
				t.Errorf("%q: Match(%q, %v) = %v, %v; want %v, %v", tt.rules, c.rel, c.isDir, inc, ok, c.include, c.ok)
			}
			if got := s.Excluded(c.rel, c.isDir); got != c.wantExcluded {
				t.Errorf("%q: Excluded(%q, %v) = %v; want %v", tt.rules, c.rel, c.isDir, got, c.wantExcluded)
			}
		}
	}
}

func TestExcluded(t *testing.T) {
	type check struct {
		rel   string
		isDir bool
		want  bool
	}
	tests := []struct {
		rules  []string
		checks []check
	}{
		{
			[]string{"- /home/*/AppData/Local/Temp/", "- *.tmp", "- Cache/"},
			[]check{
				{"", true, false},
				{"home", true, false},
				{"home/a/AppData/Local/Temp", true, true},
				{"home/a/AppData/Local/Temp", false, false}, // a file, and the rule is dir-only
				{"home/a/AppData/Local/Temp/x/y.txt", false, true},
				{"home/a/AppData/Local/x", false, false},
				{"home/a/Cache/z", false, true},
				{"home/a/Cache/z/w", true, true},
				{"home/a/Cache", false, false},
				{"home/a/x.tmp", false, true},
				{"home/a/x.tmp/y", false, true}, // basename rules see directories too
				{"home/a/x.txt", false, false},
				{"/home/a/x.tmp", false, true},
			},
		},
		{
			// An included ancestor does not shield deeper components.
			[]string{"+ home/", "- *.tmp"},
			[]check{
				{"home", true, false},
				{"home/a.tmp", false, true},
				{"home/a.txt", false, false},
			},
		},
		{
			// Ancestors are checked as directories.
			[]string{"- d/", "- f"},
			[]check{
				{"d/x", false, true},
				{"d", false, false},
				{"f/x", false, true},
			},
		},
		{
			[]string{"- home/*/Downloads/**"},
			[]check{
				{"home/a/Downloads", true, false},
				{"home/a/Downloads/x", false, true},
				{"home/a/Downloads/x/y", false, true},
			},
		},
		{
			nil,
			[]check{{"a", false, false}, {"", true, false}},
		},
	}
	for _, tt := range tests {
		s := mustSet(t, tt.rules...)
		for _, c := range tt.checks {
			if got := s.Excluded(c.rel, c.isDir); got != c.want {
				t.Errorf("%q: Excluded(%q, %v) = %v; want %v", tt.rules, c.rel, c.isDir, got, c.want)
			}
		}
	}
	var nilSet *Set
	if nilSet.Excluded("a", false) || !nilSet.Selected("a", false) {
		t.Errorf("nil Set: Excluded = true or Selected = false; want nothing excluded")
	}
	if inc, ok := nilSet.Match("a", false); inc || ok {
		t.Errorf("nil Set: Match = %v, %v; want false, false", inc, ok)
	}
}

func TestSelected(t *testing.T) {
	type check struct {
		rel   string
		isDir bool
		want  bool
	}
	tests := []struct {
		rules  []string
		checks []check
	}{
		{
			// No include rules: Selected is !Excluded, for directories too.
			[]string{"- *.tmp", "- /skip/"},
			[]check{
				{"a.tmp", false, false},
				{"a.txt", false, true},
				{"x.tmp", true, false},
				{"skip/a.txt", false, false},
				{"keep/a.txt", false, true},
				{"", true, true},
			},
		},
		{
			[]string{"+ Documents/"},
			[]check{
				{"home/a/Documents/x/y.txt", false, true},
				{"home/a/Documents/y.txt", false, true},
				{"home/a/Music/x.mp3", false, false},
				{"home/a/Documents", false, false}, // a file named Documents
				{"home", true, true},               // every directory
				{"home/a/Music", true, true},
				{"", true, true},
				{"/", false, true}, // the root, however it is asked about
			},
		},
		{
			// The deepest matched path decides.
			[]string{"+ *.doc", "- secret/"},
			[]check{
				{"secret/a.doc", false, true},
				{"secret/a.txt", false, false},
				{"a.txt", false, false},
				{"x/y/a.doc", false, true},
			},
		},
		{
			// Within one path, an exclude listed first wins.
			[]string{"- *.tmp", "+ home/"},
			[]check{
				{"home/a.tmp", false, false},
				{"home/a.txt", false, true},
				{"home/x/a.txt", false, true},
				{"other/a.txt", false, false},
			},
		},
		{
			[]string{"- Documents/private.doc", "+ *.doc"},
			[]check{
				{"Documents/private.doc", false, false},
				{"Documents/public.doc", false, true},
			},
		},
		{
			[]string{"+ home/alice/***"},
			[]check{
				{"home/alice/x/y", false, true},
				{"home/alice", false, true},
				{"home/bob/y", false, false},
			},
		},
	}
	for _, tt := range tests {
		s := mustSet(t, tt.rules...)
		for _, c := range tt.checks {
			if got := s.Selected(c.rel, c.isDir); got != c.want {
				t.Errorf("%q: Selected(%q, %v) = %v; want %v", tt.rules, c.rel, c.isDir, got, c.want)
			}
		}
	}
}

func TestSetAPI(t *testing.T) {
	s := NewSet()
	if s.Len() != 0 || s.Rules() != nil {
		t.Fatalf("NewSet(): Len = %d, Rules = %v; want empty", s.Len(), s.Rules())
	}
	if s.Excluded("a.tmp", false) || !s.Selected("a.tmp", false) {
		t.Errorf("empty Set excludes or deselects a path")
	}
	s.Append(mustRules(t, "- *.tmp", "+ *.doc")...)
	if got := s.Len(); got != 2 {
		t.Errorf("Len = %d; want 2", got)
	}
	rs := s.Rules()
	want := []ruleText{{false, "*.tmp"}, {true, "*.doc"}}
	if got := texts(rs); !reflect.DeepEqual(got, want) {
		t.Errorf("Rules = %v; want %v", got, want)
	}
	rs[0] = mustRules(t, "+ *.tmp")[0] // the copy is the caller's
	if !s.Excluded("a.tmp", false) {
		t.Errorf("changing the slice from Rules changed the Set")
	}

	// A Rule built by hand is compiled by Append; an invalid one matches
	// nothing; one whose Pattern was changed is recompiled.
	hand := NewSet(Rule{Include: false, Pattern: "*.bak"}, Rule{Pattern: "[oops"}, Rule{Pattern: ""})
	if !hand.Excluded("d/x.bak", false) || hand.Excluded("[oops", false) || hand.Len() != 3 {
		t.Errorf("hand-built rules: Excluded(x.bak) = %v, Excluded([oops) = %v, Len = %d; want true, false, 3",
			hand.Excluded("d/x.bak", false), hand.Excluded("[oops", false), hand.Len())
	}
	r := mustRules(t, "- *.a")[0]
	r.Pattern = "*.b"
	changed := NewSet(r)
	if changed.Excluded("x.a", false) || !changed.Excluded("x.b", false) {
		t.Errorf("a Rule whose Pattern changed kept its old matcher")
	}

	// Include/Exclude and String round-trip through ParseRule.
	for _, mk := range []func(string) (Rule, error){Include, Exclude} {
		r, err := mk("/home/*/Cache/")
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseRule(r.String())
		if err != nil || back.Include != r.Include || back.Pattern != r.Pattern {
			t.Errorf("ParseRule(%q) = %v, %v; want %v", r.String(), back, err, r)
		}
	}

	// Selected with an include rule appended later.
	s2 := mustSet(t, "- *.tmp")
	if !s2.Selected("a.txt", false) {
		t.Errorf("Selected(a.txt) = false with no include rules")
	}
	s2.Append(mustRules(t, "+ *.doc")...)
	if s2.Selected("a.txt", false) || !s2.Selected("a.doc", false) {
		t.Errorf("after appending an include rule, Selected(a.txt), Selected(a.doc) = %v, %v; want false, true",
			s2.Selected("a.txt", false), s2.Selected("a.doc", false))
	}
}

// TestLongPattern exercises the matcher past its stack-allocated state.
func TestLongPattern(t *testing.T) {
	pat := strings.Repeat("a*/", 200) + "x"
	rel := strings.Repeat("ab/", 200) + "x"
	s := mustSet(t, "- "+pat)
	if !s.Excluded(rel, false) {
		t.Errorf("long pattern did not match")
	}
	if s.Excluded(rel+"y", false) {
		t.Errorf("long pattern matched a longer name")
	}
}

func TestNoAllocs(t *testing.T) {
	s := mustSet(t, "- /home/*/AppData/Local/Temp/", "- *.tmp", "- Cache/", "- home/**/node_modules/", "+ *.doc", "- Cache**")
	rel := "home/alice/Documents/work/reports/2024/q1/summary.doc"
	allocs := testing.AllocsPerRun(100, func() {
		s.Excluded(rel, false)
		s.Selected(rel, false)
		s.Match(rel, false)
	})
	if allocs != 0 {
		t.Errorf("Excluded/Selected/Match allocate %v times per call; want 0", allocs)
	}
}

// TestWorstCase checks that many "**" in a pattern do not blow up.
func TestWorstCase(t *testing.T) {
	s := mustSet(t, "- "+strings.Repeat("**a", 30)+"b")
	rel := strings.Repeat("a/", 2000) + "c"
	if s.Excluded(rel, false) {
		t.Errorf("matched a path without 'b'")
	}
	if !s.Excluded("x/"+strings.Repeat("a", 30)+"b", false) {
		t.Errorf("did not match a tail of 30 a's and a b")
	}
	if s.Excluded("x/"+strings.Repeat("a", 29)+"b", false) {
		t.Errorf("matched a tail of 29 a's and a b")
	}
}

func BenchmarkExcluded(b *testing.B) {
	s := mustSet(b, "- /home/*/AppData/Local/Temp/", "- *.tmp", "- Cache/", "- home/**/node_modules/", "+ *.doc", "- Cache**")
	rel := "home/alice/Documents/work/reports/2024/q1/summary.doc"
	for b.Loop() {
		s.Excluded(rel, false)
	}
}
