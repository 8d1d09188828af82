package filter

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzPaths are matched against every rule set FuzzParseRules parses.
var fuzzPaths = []string{
	"",
	"a",
	"a.tmp",
	"home",
	"home/alice",
	"home/alice/Documents/a.doc",
	"home/alice/AppData/Local/Temp/x/y.tmp",
	"Users/bob/AppData/Roaming/app/Cache/z",
	"x/y/z/w/v",
	"dir with space/file\nwith newline",
	"\xff/\xfe.txt",
	"日本/語.txt",
	"[x]/*?\\",
	strings.Repeat("deep/", 64) + "leaf",
}

func addRuleSeeds(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.rules"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no testdata/*.rules: %v", err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("+ *.doc\n- *\n"))
	f.Add([]byte("- home/**/Cache\n+ a/***\n- [a-z]?\n"))
	f.Add([]byte("\uFEFF# x\r\n; y\r\n\r\n+ \\*\\[\r\n"))
	f.Add([]byte("- [\n"))
}

// FuzzParseRules checks that ParseRules and every Set decision on what it
// returns neither panic nor contradict each other.
func FuzzParseRules(f *testing.F) {
	addRuleSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := ParseRules(bytes.NewReader(data))
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "rules line ") || strings.Contains(msg, "\n") {
				t.Fatalf("ParseRules error %q: want one line starting \"rules line \"", msg)
			}
			return
		}
		paths := append([]string(nil), fuzzPaths...)
		hasInclude := false
		for i, r := range rules {
			back, err := ParseRule(r.String())
			if err != nil || back.Include != r.Include || back.Pattern != r.Pattern {
				t.Fatalf("rule %q does not round-trip: %v, %v", r.String(), back, err)
			}
			hasInclude = hasInclude || r.Include
			// The pattern as a path is likely to match something. Only a
			// few, so the work stays linear in the input's size.
			if i < 16 {
				paths = append(paths, strings.Trim(r.Pattern, "/"), "x/"+strings.Trim(r.Pattern, "/")+"/y")
			}
		}
		s := NewSet(rules...)
		if s.Len() != len(rules) {
			t.Fatalf("Len = %d; want %d", s.Len(), len(rules))
		}
		for _, rel := range paths {
			for _, isDir := range []bool{false, true} {
				inc, ok := s.Match(rel, isDir)
				excluded := s.Excluded(rel, isDir)
				selected := s.Selected(rel, isDir)
				clean := strings.Trim(rel, "/")
				if clean == "" && (ok || excluded) {
					t.Fatalf("root: Match = %v, %v, Excluded = %v; want unmatched", inc, ok, excluded)
				}
				if ok && !inc && !excluded {
					t.Fatalf("Match(%q, %v) excludes but Excluded is false", rel, isDir)
				}
				if !hasInclude && selected == excluded {
					t.Fatalf("no include rules: Selected(%q, %v) = %v, Excluded = %v", rel, isDir, selected, excluded)
				}
				if hasInclude && isDir && !selected {
					t.Fatalf("Selected(%q, dir) = false; want every directory selected", rel)
				}
				if hasInclude && !isDir && ok && selected != inc {
					t.Fatalf("Selected(%q) = %v; want its own first match %v", rel, selected, inc)
				}
			}
		}
	})
}

// FuzzGlob cross-checks the pattern matcher: against path.Match for
// basename patterns, and against a regular expression built straight from
// the documented semantics for patterns without classes.
func FuzzGlob(f *testing.F) {
	for _, s := range []struct{ pattern, rel string }{
		{"*.tmp", "a/b.tmp"},
		{"[a-c]?x", "bzx"},
		{"[^a]*", "b"},
		{`\[*`, "[x"},
		{"home/**/Cache/", "home/a/b/Cache"},
		{"/a/***", "a/b/c"},
		{"a**b", "x/a/y/b"},
		{"**/x/**", "x/y"},
		{"a*b*c", "aXbYbZc"},
	} {
		f.Add(s.pattern, s.rel, true)
	}
	f.Fuzz(func(t *testing.T, pattern, rel string, isDir bool) {
		r, err := Include(pattern)
		if err != nil {
			if _, err := ParseRule("+ " + pattern); err == nil {
				t.Fatalf("Include(%q) fails but ParseRule accepts it", pattern)
			}
		} else {
			_, got := NewSet(r).Match(rel, isDir)
			// The general automaton must agree with the one-word one.
			general := *r.m
			general.eps = nil
			if clean := cleanRel(rel); clean != "" && general.match(clean, isDir) != got {
				t.Fatalf("pattern %q, %q: general automaton %v, one-word %v", pattern, rel, !got, got)
			}
		}
		if !utf8.ValidString(pattern) || !utf8.ValidString(rel) ||
			pattern == "" || strings.IndexByte(pattern, 0) >= 0 {
			return
		}

		// path.Match: a pattern without '/' or "**" against one name.
		if !strings.Contains(pattern, "/") && !strings.Contains(pattern, "**") &&
			rel != "" && !strings.Contains(rel, "/") {
			want, perr := path.Match(pattern, rel)
			// We reject a backwards range like "[z-a]", which path.Match
			// accepts and never matches.
			backwards := err != nil && strings.Contains(err.Error(), "is backwards")
			if (perr == nil) != (err == nil) && !(backwards && perr == nil) {
				t.Fatalf("pattern %q: our error %v, path.Match error %v", pattern, err, perr)
			}
			if err == nil {
				if _, got := NewSet(r).Match(rel, false); got != want {
					t.Fatalf("pattern %q, name %q: Match = %v, path.Match = %v", pattern, rel, got, want)
				}
			}
		}

		// The reference regular expression.
		if err != nil || strings.Contains(pattern, "[") {
			return
		}
		re := refRegexp(t, pattern)
		if re == nil {
			return
		}
		clean := strings.Trim(rel, "/")
		want := clean != "" && (isDir || !strings.HasSuffix(pattern, "/"))
		if want {
			subject := clean
			if refBasename(pattern) {
				subject = clean[strings.LastIndexByte(clean, '/')+1:]
			}
			want = re.MatchString(subject)
		}
		if _, got := NewSet(r).Match(rel, isDir); got != want {
			t.Fatalf("pattern %q (regexp %s), Match(%q, %v) = %v; want %v", pattern, re, rel, isDir, got, want)
		}
	})
}

// refBasename reports whether pattern is matched against the last path
// component only.
func refBasename(pattern string) bool {
	body := strings.TrimSuffix(pattern, "/")
	return !strings.Contains(body, "/") && !strings.Contains(body, "**")
}

// refRegexp translates a valid pattern with no character class into a
// regular expression, straight from the rules in the package doc.
func refRegexp(t *testing.T, pattern string) *regexp.Regexp {
	body := pattern
	anchored := strings.HasPrefix(body, "/")
	body = strings.TrimPrefix(body, "/")
	body = strings.TrimSuffix(body, "/")
	below := strings.HasSuffix(body, "/***")
	body = strings.TrimSuffix(body, "/***")
	if strings.Contains(body, "/") {
		anchored = true
	}
	var b strings.Builder
	for i := 0; i < len(body); {
		switch c := body[i]; c {
		case '\\':
			_, n := utf8.DecodeRuneInString(body[i+1:])
			b.WriteString(regexp.QuoteMeta(body[i+1 : i+1+n]))
			i += 1 + n
		case '?':
			b.WriteString(`[^/]`)
			i++
		case '*':
			j := i
			for j < len(body) && body[j] == '*' {
				j++
			}
			switch {
			case j-i == 1:
				b.WriteString(`[^/]*`)
			case (i == 0 || body[i-1] == '/') && j < len(body) && body[j] == '/':
				b.WriteString(`(?:.*/)?`)
				j++
			default:
				b.WriteString(`.*`)
			}
			i = j
		default:
			_, n := utf8.DecodeRuneInString(body[i:])
			b.WriteString(regexp.QuoteMeta(body[i : i+n]))
			i += n
		}
	}
	expr := b.String()
	if below {
		expr += `(?:/.*)?`
	}
	switch {
	case anchored || refBasename(pattern):
		expr = `^` + expr + `$`
	default: // floating "**" pattern
		expr = `(?:^|.*/)` + expr + `$`
	}
	re, err := regexp.Compile(`(?s)` + expr)
	if err != nil {
		t.Logf("pattern %q: reference regexp %q: %v", pattern, expr, err)
		return nil
	}
	return re
}
