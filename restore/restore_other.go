//go:build !linux

package restore

import (
	"context"
	"fmt"
	"runtime"

	"smp/cas/manifest"
)

// runRestore is not implemented here: the walker creates every target name
// relative to its parent's descriptor with Linux calls (openat2, renameat,
// fsetxattr).
func runRestore(context.Context, Store, *manifest.Record, Options) (*Result, error) {
	return nil, fmt.Errorf("restore is not supported on %s yet", runtime.GOOS)
}
