//go:build !linux

package capture

import (
	"context"
	"fmt"
	"runtime"

	"smp/cas/manifest"
)

// runCapture is not implemented here: the walker opens every name relative
// to its parent's descriptor with Linux calls (openat2, getdents,
// listxattrat).
func runCapture(context.Context, Store, Options, *selection, []string) (*Result, error) {
	return nil, fmt.Errorf("capture is not supported on %s yet", runtime.GOOS)
}

// Ingest is not implemented here: it checks store objects with Linux calls.
func Ingest(context.Context, Store, *manifest.Record, string) (*IngestResult, error) {
	return nil, fmt.Errorf("ingest is not supported on %s yet", runtime.GOOS)
}

// SelectProfiles is not implemented here: it opens the root's files with
// Linux calls.
func SelectProfiles(ProfileOptions) ([]ProfileChoice, error) {
	return nil, fmt.Errorf("profile selection is not supported on %s yet", runtime.GOOS)
}

// runCount is not implemented here, as runCapture.
func runCount(context.Context, Store, Options, *selection) (Totals, error) {
	return Totals{}, fmt.Errorf("capture is not supported on %s yet", runtime.GOOS)
}
