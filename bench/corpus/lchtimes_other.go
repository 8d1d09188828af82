//go:build !linux

package corpus

import (
	"fmt"
	"runtime"
	"time"
)

// lchtimes is not implemented here: the corpus stamps symlink times with a
// Linux call.
func lchtimes(name string, _ time.Time) error {
	return fmt.Errorf("corpus: set times of symlink %s: not supported on %s", name, runtime.GOOS)
}
