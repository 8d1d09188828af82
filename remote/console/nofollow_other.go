//go:build !linux

package console

const syscallNoFollow = 0
