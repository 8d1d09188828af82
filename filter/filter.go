package filter

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strings"
	"unicode/utf8"
)

// Rule is one filter line.
type Rule struct {
	Include bool   // "+" line (true) or "-" line (false)
	Pattern string // as written

	m *matcher // compiled Pattern; nil or stale for a Rule built by hand
}

// String returns the rule as a filter line ("+ PATTERN" or "- PATTERN") that
// ParseRule reads back as the same rule.
func (r Rule) String() string {
	if r.Include {
		return "+ " + r.Pattern
	}
	return "- " + r.Pattern
}

// matches reports whether the rule matches rel. A rule whose pattern does
// not compile matches nothing.
func (r *Rule) matches(rel string, isDir bool) bool {
	return r.m != nil && r.m.match(rel, isDir)
}

// compiled returns r with its compiled state set and current.
func (r Rule) compiled() Rule {
	if r.m == nil || r.m.src != r.Pattern {
		r.m, _ = compile(r.Pattern) // nil, matching nothing, when invalid
	}
	return r
}

// ParseRule parses "+ PATTERN" or "- PATTERN" (exactly one space after the
// sign) or the long forms "include PATTERN" and "exclude PATTERN".
func ParseRule(line string) (Rule, error) {
	var include bool
	var pat string
	switch {
	case strings.HasPrefix(line, "+ "):
		include, pat = true, line[2:]
	case strings.HasPrefix(line, "- "):
		pat = line[2:]
	case strings.HasPrefix(line, "include "):
		include, pat = true, line[len("include "):]
	case strings.HasPrefix(line, "exclude "):
		pat = line[len("exclude "):]
	default:
		return Rule{}, fmt.Errorf("rule %q: want \"+ PATTERN\" or \"- PATTERN\"", line)
	}
	r, err := newRule(include, pat)
	if err != nil {
		return Rule{}, fmt.Errorf("rule %q: %w", line, err)
	}
	return r, nil
}

// maxLine is the longest rules-file line ParseRules accepts.
const maxLine = 64 << 10

// ParseRules reads rules from r, one per line. Blank lines and lines that
// start with '#' or ';' are ignored. Errors name the line number.
func ParseRules(r io.Reader) ([]Rule, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	var rules []Rule
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSuffix(sc.Text(), "\r")
		if n == 1 {
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		if strings.TrimSpace(line) == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		rule, err := ParseRule(line)
		if err != nil {
			return nil, fmt.Errorf("rules line %d: %w", n, err)
		}
		rules = append(rules, rule)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("rules line %d: longer than %d bytes; want one rule per line", n+1, maxLine)
		}
		return nil, fmt.Errorf("rules line %d: %w", n+1, err)
	}
	return rules, nil
}

// Include returns an include rule for pattern.
func Include(pattern string) (Rule, error) { return newRule(true, pattern) }

// Exclude returns an exclude rule for pattern.
func Exclude(pattern string) (Rule, error) { return newRule(false, pattern) }

func newRule(include bool, pattern string) (Rule, error) {
	m, err := compile(pattern)
	if err != nil {
		return Rule{}, err
	}
	return Rule{Include: include, Pattern: pattern, m: m}, nil
}

// Set is an ordered rule list: the first matching rule wins. The zero Set
// and a nil *Set hold no rules.
type Set struct {
	rules      []Rule
	hasInclude bool
}

// NewSet returns a Set holding rules, in order.
func NewSet(rules ...Rule) *Set {
	s := &Set{}
	s.Append(rules...)
	return s
}

// Append adds rules after those already in s. A Rule built by hand rather
// than by ParseRule, Include or Exclude is compiled here; if its Pattern is
// invalid it matches nothing.
func (s *Set) Append(rules ...Rule) {
	for _, r := range rules {
		r = r.compiled()
		s.rules = append(s.rules, r)
		if r.Include {
			s.hasInclude = true
		}
	}
}

// Len returns the number of rules in s.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Rules returns a copy of the rules in s, in order.
func (s *Set) Rules() []Rule {
	if s == nil || len(s.rules) == 0 {
		return nil
	}
	return append([]Rule(nil), s.rules...)
}

// Match reports whether the first matching rule includes or excludes rel;
// matched is false when no rule matches. Only rel itself is tested, not its
// ancestors.
func (s *Set) Match(rel string, isDir bool) (include, matched bool) {
	if s == nil {
		return false, false
	}
	return s.match(cleanRel(rel), isDir)
}

func (s *Set) match(rel string, isDir bool) (include, matched bool) {
	if rel == "" {
		return false, false
	}
	for i := range s.rules {
		if s.rules[i].matches(rel, isDir) {
			return s.rules[i].Include, true
		}
	}
	return false, false
}

// Excluded is the capture/restore decision: true when rel or one of its
// ancestor directories is first matched by an exclude rule. A path no rule
// matches is not excluded, and an ancestor first matched by an include rule
// does not stop the deeper components being checked.
func (s *Set) Excluded(rel string, isDir bool) bool {
	if s == nil || len(s.rules) == 0 {
		return false
	}
	rel = cleanRel(rel)
	if rel == "" {
		return false
	}
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' {
			if inc, ok := s.match(rel[:i], true); ok && !inc {
				return true
			}
		}
	}
	inc, ok := s.match(rel, isDir)
	return ok && !inc
}

// Selected is restore's decision under --include. If s holds no include
// rule it is !Excluded(rel, isDir). Otherwise every directory, and the
// root, is selected (restore creates directories lazily), and a file is
// selected when, walking from rel up through its ancestor directories, the
// first (deepest) path that any rule matches is matched by an include rule;
// a file that no rule matches at any level is not selected.
func (s *Set) Selected(rel string, isDir bool) bool {
	if s == nil || !s.hasInclude {
		return !s.Excluded(rel, isDir)
	}
	rel = cleanRel(rel)
	if isDir || rel == "" {
		return true
	}
	if inc, ok := s.match(rel, false); ok {
		return inc
	}
	for i := len(rel) - 1; i > 0; i-- {
		if rel[i] == '/' {
			if inc, ok := s.match(rel[:i], true); ok {
				return inc
			}
		}
	}
	return false
}

// cleanRel drops leading and trailing slashes from rel.
func cleanRel(rel string) string {
	return strings.Trim(rel, "/")
}

// ---- patterns ----

// patternError reports an invalid pattern.
type patternError struct {
	pattern string
	what    string
}

func (e *patternError) Error() string {
	return fmt.Sprintf("pattern %q: %s", e.pattern, e.what)
}

type tokKind uint8

const (
	tLit      tokKind = iota // one character, c
	tAny                     // '?': one character other than '/'
	tClass                   // "[...]": one character other than '/' in (or not in) ranges
	tStar                    // '*': any run of characters other than '/'
	tDStar                   // "**": any run of characters
	tDirsGate                // start of "**/" as a whole component: epsilon to tDirsBody and past it
	tDirsBody                // inside "**/": any run of characters ending in '/'
)

type runeRange struct{ lo, hi int32 }

type token struct {
	kind   tokKind
	negate bool   // tClass
	c      int32  // tLit; see decode
	text   string // tLit: the bytes c was decoded from
	ranges []runeRange
}

func (t *token) classMatches(c int32) bool {
	if c == '/' {
		return false
	}
	in := false
	for _, r := range t.ranges {
		if r.lo <= c && c <= r.hi {
			in = true
			break
		}
	}
	return in != t.negate
}

// matcher is a compiled pattern. The subject (the whole path, or its last
// component for a basename pattern) must start with prefix and end with
// suffix, and what lies between must be matched by toks, which neither
// begins (unless float) nor ends (unless andBelow) with a literal.
type matcher struct {
	src      string
	dirOnly  bool // trailing '/'
	anchored bool // match the whole relative path
	float    bool // unanchored with "**": match any tail at a component boundary
	andBelow bool // trailing "/***": also match everything beneath
	literal  bool // the pattern has no wildcard: prefix is all of it
	prefix   string
	suffix   string
	toks     []token
	// eps[j] is the set of states reachable from state j without consuming
	// a character, j included; set when len(toks) < 64.
	eps []uint64
}

// compile parses pattern into a matcher.
func compile(pattern string) (*matcher, error) {
	bad := func(what string) (*matcher, error) {
		return nil, &patternError{pattern, what}
	}
	if pattern == "" {
		return bad(`empty; want a glob such as "*.tmp" or "/home/*/Cache/"`)
	}
	if strings.IndexByte(pattern, 0) >= 0 {
		return bad("contains a NUL byte; want a path glob")
	}
	m := &matcher{src: pattern}
	body := pattern
	if strings.HasPrefix(body, "/") {
		m.anchored = true
		body = body[1:]
	}
	if strings.HasSuffix(body, "/") {
		m.dirOnly = true
		body = body[:len(body)-1]
	}
	if strings.HasSuffix(body, "/***") {
		m.andBelow = true
		body = body[:len(body)-len("/***")]
	}
	if body == "" {
		return bad(`names only the root; want a name such as "/tmp" or "Cache/"`)
	}
	if strings.HasPrefix(body, "/") || strings.HasSuffix(body, "/") || strings.Contains(body, "//") {
		return bad(`has an empty path component ("//"); want names between the slashes`)
	}
	if strings.IndexByte(body, '/') >= 0 {
		m.anchored = true
	}

	hasDStar := false
	for i := 0; i < len(body); {
		switch c := body[i]; c {
		case '*':
			j := i
			for j < len(body) && body[j] == '*' {
				j++
			}
			if j-i == 1 {
				m.toks = append(m.toks, token{kind: tStar})
			} else if (i == 0 || body[i-1] == '/') && j < len(body) && body[j] == '/' {
				// "**/" as a whole component: zero or more directories.
				m.toks = append(m.toks, token{kind: tDirsGate}, token{kind: tDirsBody})
				j++ // the '/' is part of tDirsBody
				hasDStar = true
			} else {
				m.toks = append(m.toks, token{kind: tDStar})
				hasDStar = true
			}
			i = j
		case '?':
			m.toks = append(m.toks, token{kind: tAny})
			i++
		case '[':
			t, n, what := parseClass(body[i:])
			if what != "" {
				return bad(what)
			}
			m.toks = append(m.toks, t)
			i += n
		case '\\':
			if i+1 == len(body) {
				return bad(`ends in '\'; want a character after '\' (write "\\" for a literal backslash)`)
			}
			r, n := decode(body, i+1)
			m.toks = append(m.toks, token{kind: tLit, c: r, text: body[i+1 : i+1+n]})
			i += 1 + n
		default:
			r, n := decode(body, i)
			m.toks = append(m.toks, token{kind: tLit, c: r, text: body[i : i+n]})
			i += n
		}
	}
	m.float = !m.anchored && hasDStar
	m.peel()
	return m, nil
}

// peel moves the literal runs at both ends of m.toks into prefix and
// suffix, to be checked with plain string comparisons before (and instead
// of) running the automaton, and precomputes the automaton's epsilon
// closures.
func (m *matcher) peel() {
	toks := m.toks
	np := 0
	if !m.float {
		for np < len(toks) && toks[np].kind == tLit {
			np++
		}
	}
	ns := 0
	if !m.andBelow {
		for ns < len(toks)-np && toks[len(toks)-1-ns].kind == tLit {
			ns++
		}
	}
	m.prefix = litText(toks[:np])
	m.suffix = litText(toks[len(toks)-ns:])
	m.toks = toks[np : len(toks)-ns]
	m.literal = len(m.toks) == 0 && !m.float
	if n := len(m.toks); n < 64 {
		m.eps = make([]uint64, n+1)
		for j := n; j >= 0; j-- {
			m.eps[j] = 1 << j
			if j == n {
				continue
			}
			switch m.toks[j].kind {
			case tStar, tDStar:
				m.eps[j] |= m.eps[j+1]
			case tDirsGate:
				m.eps[j] |= m.eps[j+1] | m.eps[j+2]
			}
		}
	}
}

func litText(toks []token) string {
	var b strings.Builder
	for _, t := range toks {
		b.WriteString(t.text)
	}
	return b.String()
}

// parseClass parses the "[...]" at the start of s with path.Match's syntax.
// It returns the token, the bytes consumed, or what is wrong.
func parseClass(s string) (t token, n int, what string) {
	const want = `; want "[...]" such as "[a-z]" or "[^0-9]", with '\' before a literal '-', ']' or '\'`
	t.kind = tClass
	i := 1
	if i < len(s) && s[i] == '^' {
		t.negate = true
		i++
	}
	getc := func() (int32, string) {
		if i >= len(s) {
			return 0, "unterminated character class" + want
		}
		switch s[i] {
		case '-', ']':
			return 0, fmt.Sprintf("unescaped %q in character class", s[i]) + want
		case '\\':
			i++
			if i >= len(s) {
				return 0, "unterminated character class" + want
			}
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return 0, "invalid UTF-8 in character class" + want
		}
		i += size
		return r, ""
	}
	if i < len(s) && s[i] == ']' {
		return t, 0, "empty character class" + want
	}
	for {
		if i < len(s) && s[i] == ']' && len(t.ranges) > 0 {
			return t, i + 1, ""
		}
		lo, what := getc()
		if what != "" {
			return t, 0, what
		}
		hi := lo
		if i < len(s) && s[i] == '-' {
			i++
			if i < len(s) && s[i] == ']' {
				return t, 0, fmt.Sprintf("character class range %q- has no end", lo) + want
			}
			if hi, what = getc(); what != "" {
				return t, 0, what
			}
			if lo > hi {
				return t, 0, fmt.Sprintf("character class range %q-%q is backwards", lo, hi) + want
			}
		}
		t.ranges = append(t.ranges, runeRange{lo, hi})
	}
}

// decode returns the character at s[i] and its size. A byte that is not
// valid UTF-8 decodes to the negative of its value, so it matches only
// itself and never equals '/' or a class range.
func decode(s string, i int) (int32, int) {
	b := s[i]
	if b < utf8.RuneSelf {
		return int32(b), 1
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size == 1 {
		return -int32(b), 1
	}
	return r, size
}

// match reports whether m matches rel.
func (m *matcher) match(rel string, isDir bool) bool {
	if m.dirOnly && !isDir {
		return false
	}
	if !m.anchored && !m.float {
		rel = rel[strings.LastIndexByte(rel, '/')+1:]
	}
	if m.literal {
		if rel == m.prefix {
			return true
		}
		return m.andBelow && len(rel) > len(m.prefix) && rel[len(m.prefix)] == '/' && rel[:len(m.prefix)] == m.prefix
	}
	if len(rel) < len(m.prefix)+len(m.suffix) ||
		!strings.HasPrefix(rel, m.prefix) || !strings.HasSuffix(rel, m.suffix) {
		return false
	}
	mid := rel[len(m.prefix) : len(rel)-len(m.suffix)]
	if len(m.toks) == 1 && !m.andBelow && !m.float {
		switch m.toks[0].kind {
		case tStar:
			return strings.IndexByte(mid, '/') < 0
		case tDStar:
			return true
		}
	}
	if m.eps != nil {
		return m.run64(mid)
	}
	return m.run(mid)
}

// step reports what t does with the next character c: consume it and move
// on to the next token (advance), or consume it and stay (stay).
func (t *token) step(c int32) (advance, stay bool) {
	switch t.kind {
	case tLit:
		return t.c == c, false
	case tAny:
		return c != '/', false
	case tClass:
		return t.classMatches(c), false
	case tStar:
		return false, c != '/'
	case tDStar:
		return false, true
	case tDirsBody:
		return c == '/', true
	}
	return false, false
}

// run64 simulates the automaton of toks over s when its states fit one
// word: state j is "toks[:j] have matched", state len(toks) accepts. Time is
// O(len(s) * len(toks)).
func (m *matcher) run64(s string) bool {
	accept := uint64(1) << len(m.toks)
	cur := m.eps[0]
	for i := 0; i < len(s); {
		c, size := decode(s, i)
		if m.andBelow && c == '/' && cur&accept != 0 {
			return true
		}
		var next uint64
		for w := cur &^ accept; w != 0; w &= w - 1 {
			j := bits.TrailingZeros64(w)
			advance, stay := m.toks[j].step(c)
			if advance {
				next |= m.eps[j+1]
			}
			if stay {
				next |= m.eps[j]
			}
		}
		i += size
		if m.float && c == '/' {
			next |= m.eps[0]
		}
		if next == 0 {
			if !m.float {
				return false
			}
			// Nothing is live: resume at the next component boundary.
			k := strings.IndexByte(s[i:], '/')
			if k < 0 {
				return false
			}
			i += k + 1
			next = m.eps[0]
		}
		cur = next
	}
	return cur&accept != 0
}

// run is run64 for automata of any size, with the state set in a slice.
func (m *matcher) run(s string) bool {
	n := len(m.toks)
	w := (n + 1 + 63) / 64
	cur, next := make([]uint64, w), make([]uint64, w)
	setBit(cur, 0)
	m.closure(cur)
	for i := 0; i < len(s); {
		c, size := decode(s, i)
		if m.andBelow && c == '/' && hasBit(cur, n) {
			return true
		}
		clear(next)
		for wi, word := range cur {
			for word != 0 {
				j := wi*64 + bits.TrailingZeros64(word)
				word &= word - 1
				if j == n {
					continue
				}
				advance, stay := m.toks[j].step(c)
				if advance {
					setBit(next, j+1)
				}
				if stay {
					setBit(next, j)
				}
			}
		}
		i += size
		if m.float && c == '/' {
			setBit(next, 0)
		}
		m.closure(next)
		if isEmpty(next) {
			if !m.float {
				return false
			}
			k := strings.IndexByte(s[i:], '/')
			if k < 0 {
				return false
			}
			i += k + 1
			setBit(next, 0)
			m.closure(next)
		}
		cur, next = next, cur
	}
	return hasBit(cur, n)
}

// closure adds the states reachable from those in set without consuming a
// character.
func (m *matcher) closure(set []uint64) {
	for j := range m.toks {
		if !hasBit(set, j) {
			continue
		}
		switch m.toks[j].kind {
		case tStar, tDStar:
			setBit(set, j+1)
		case tDirsGate:
			setBit(set, j+1)
			setBit(set, j+2)
		}
	}
}

func setBit(set []uint64, i int)      { set[i>>6] |= 1 << (i & 63) }
func hasBit(set []uint64, i int) bool { return set[i>>6]&(1<<(i&63)) != 0 }

func isEmpty(set []uint64) bool {
	for _, w := range set {
		if w != 0 {
			return false
		}
	}
	return true
}
