//go:build !linux

package local

import (
	"errors"
	"os"
)

// errDirectRefused: no write is direct here.
var errDirectRefused = errors.New("direct write refused")

// writeDirect is never called where setDirect never succeeds.
var writeDirect = (*os.File).Write

// setDirect: large objects are written through the buffer alone.
func setDirect(*os.File) (int, bool) { return 0, false }

func clearDirect(*os.File) error { return nil }
