package repo

// SetRebuildHook sets the hook RebuildIndex calls at named points (an
// error there stops it, as a crash would) and returns a function that
// clears it.
func SetRebuildHook(f func(point string) error) func() {
	rebuildHook = f
	return func() { rebuildHook = nil }
}
