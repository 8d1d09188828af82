package corpus

import (
	"fmt"
	"os"
	"testing"
)

// fixtureDir holds the corpora that several tests share (see
// corpusFixture); TestMain removes it when the tests end.
var fixtureDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "smp-corpus-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtureDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
