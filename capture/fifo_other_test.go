//go:build !linux

package capture_test

import "errors"

func mkfifo(string) error { return errors.ErrUnsupported }
