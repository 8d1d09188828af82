// Package keytest makes the keys of throwaway encrypted stores for tests.
package keytest

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"smp/keys"
)

// New returns the keys of a new encrypted store (keys.Create under a
// random store ID), with one key file slot so that its key slot file can
// be saved.
func New(tb testing.TB) *keys.Unlocked {
	tb.Helper()
	var sid [16]byte
	rand.Read(sid[:])
	u, err := keys.Create(hex.EncodeToString(sid[:]))
	if err == nil {
		_, _, err = u.AddKeyFile()
	}
	if err != nil {
		tb.Fatal(err)
	}
	return u
}
