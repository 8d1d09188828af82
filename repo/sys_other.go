//go:build !linux

package repo

// oNoAtime is zero where the system has no O_NOATIME.
const oNoAtime = 0
