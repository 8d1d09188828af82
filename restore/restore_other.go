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

// NewAccount is a local account CreateAccounts makes on the target.
type NewAccount struct {
	Name string `json:"name"`
	Home string `json:"home"`
}

// CreateOptions are how CreateAccounts makes accounts.
type CreateOptions struct {
	Target   string
	Disabled bool
	Useradd  string
}

// AccountsToCreate is not implemented here.
func AccountsToCreate(*manifest.Record, Options) ([]NewAccount, error) {
	return nil, fmt.Errorf("creating accounts is not supported on %s", runtime.GOOS)
}

// CreateAccounts is not implemented here.
func CreateAccounts(context.Context, []NewAccount, CreateOptions) error {
	return fmt.Errorf("creating accounts is not supported on %s", runtime.GOOS)
}
