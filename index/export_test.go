package index

// CheckTables exposes the pre-open table check to benchmarks.
var CheckTables = func(dir string) error { return checkTables(dir, nil) }

// SetFreeBytes replaces the free-space probe until the test ends, to
// simulate a full filesystem.
func SetFreeBytes(t interface{ Cleanup(func()) }, f func(dir string) (uint64, bool)) {
	old := freeBytes
	freeBytes = f
	t.Cleanup(func() { freeBytes = old })
}
