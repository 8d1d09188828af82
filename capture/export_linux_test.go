package capture

import "golang.org/x/sys/unix"

// SetTestHookOpen runs f before each listed file or directory is opened
// (nil: no hook), for the tests of package capture_test.
func SetTestHookOpen(f func(abs string)) { testHookOpen = f }

// RefuseOpenat2 makes openat2 fail with ENOSYS, as on a kernel before 5.6,
// until the returned function is called.
func RefuseOpenat2() (restore func()) {
	old := openat2
	openat2 = func(int, string, *unix.OpenHow) (int, error) { return -1, unix.ENOSYS }
	return func() { openat2 = old; noOpenat2.Store(false) }
}

// UsesOpenat reports whether capture fell back from openat2 to openat.
func UsesOpenat() bool { return noOpenat2.Load() }
