package filter

import (
	"slices"
	"strings"
	"testing"
)

// TestBuiltinSets: every built-in set parses, has rules, and is found by
// either spelling; an unknown name is refused with the list.
func TestBuiltinSets(t *testing.T) {
	names := BuiltinNames()
	if !slices.Equal(names, []string{"documents", "everything"}) {
		t.Fatalf("built-in sets %v", names)
	}
	for _, n := range names {
		r, err := BuiltinRules(n)
		if err != nil || len(r) < 5 {
			t.Errorf("%s: %d rules, %v", n, len(r), err)
		}
		a, _ := Builtin(n)
		b, _ := Builtin(BuiltinPrefix + n)
		if len(a) == 0 || string(a) != string(b) {
			t.Errorf("%s: the two spellings differ", n)
		}
	}
	if _, err := Builtin("docs"); err == nil || !strings.Contains(err.Error(), "documents, everything") {
		t.Errorf("unknown set: %v", err)
	}
	// builtin:documents keeps documents and drops the rest of a profile.
	set := NewSet(must(BuiltinRules("documents"))...)
	for p, want := range map[string]bool{
		"home/alice/Documents/a/b.odt":                              true,
		"home/alice/.ssh/id_ed25519":                                true,
		"home/alice/.config/google-chrome/Default/Bookmarks":        true,
		"home/alice/.config/google-chrome/Default/History":          false,
		"home/alice/Downloads/big.iso":                              false,
		"home/alice/.cache/x":                                       false,
		"home/alice/.mozilla/firefox/abc.default/places.sqlite":     true,
		"home/alice/.mozilla/firefox/abc.default/cookies.sqlite":    false,
		"home/alice/.local/share/evolution/mail/local/cur/1":        true,
		"home/alice/.local/share/Steam/steamapps/common/game/a.pak": false,
	} {
		if got := !set.Excluded(p, false); got != want {
			t.Errorf("documents: %s kept=%v, want %v", p, got, want)
		}
	}
}

func must(r []Rule, err error) []Rule {
	if err != nil {
		panic(err)
	}
	return r
}
