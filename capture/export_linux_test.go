package capture

// SetTestHookOpen runs f before each listed file or directory is opened
// (nil: no hook), for the tests of package capture_test.
func SetTestHookOpen(f func(abs string)) { testHookOpen = f }
