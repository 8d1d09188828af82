package corpus

import (
	"os"
	"sync"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if workDir != "" {
		os.RemoveAll(workDir)
	}
	os.Exit(code)
}

var (
	workOnce sync.Once
	workDir  string
	workErr  error
)

// work returns the per-process scratch directory, which holds the corpora
// that several tests share and is removed when the tests end.
func work(t testing.TB) string {
	workOnce.Do(func() { workDir, workErr = os.MkdirTemp("", "smp-corpus-") })
	if workErr != nil {
		t.Fatal(workErr)
	}
	return workDir
}
