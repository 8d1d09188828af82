package corpus

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// lchtimes sets the times of name itself, not of what a symlink names.
func lchtimes(name string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("corpus: set times of %s: %w", name, err)
	}
	return nil
}
