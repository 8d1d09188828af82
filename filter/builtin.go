package filter

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// BuiltinPrefix names a built-in rule set where a rules file is expected:
// --rules builtin:documents.
const BuiltinPrefix = "builtin:"

//go:embed builtin/*.rules
var builtinFS embed.FS

// BuiltinNames lists the built-in rule sets, sorted.
func BuiltinNames() []string {
	ents, _ := fs.ReadDir(builtinFS, "builtin")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".rules"))
	}
	slices.Sort(names)
	return names
}

// Builtin returns the text of the built-in rule set name ("documents" or
// "builtin:documents"), as a rules file holds it.
func Builtin(name string) ([]byte, error) {
	name = strings.TrimPrefix(name, BuiltinPrefix)
	if !slices.Contains(BuiltinNames(), name) {
		return nil, fmt.Errorf("no built-in rule set %q: the built-in sets are %s", name, strings.Join(BuiltinNames(), ", "))
	}
	return builtinFS.ReadFile("builtin/" + name + ".rules")
}

// BuiltinRules parses the built-in rule set name.
func BuiltinRules(name string) ([]Rule, error) {
	b, err := Builtin(name)
	if err != nil {
		return nil, err
	}
	return ParseRules(bytes.NewReader(b))
}
