package capture

import (
	"errors"
	"fmt"
)

// HardlinkMode says whether a capture hard-links (or clones) the user's
// files into the store instead of chunking them. A hard-link record is not a
// copy: an in-place edit after capture changes the stored file too (restore
// then refuses it), so linking happens only when the user asks for it.
type HardlinkMode string

const (
	// HardlinkNever chunks every file: the record is a deduplicated copy.
	// The zero value means the same.
	HardlinkNever HardlinkMode = "never"
	// HardlinkAuto links files when the store is on the same filesystem
	// and chunks the rest.
	HardlinkAuto HardlinkMode = "auto"
	// HardlinkAlways links every file or fails the capture.
	HardlinkAlways HardlinkMode = "always"
)

// ParseHardlink validates a --hardlink value.
func ParseHardlink(s string) (HardlinkMode, error) {
	switch m := HardlinkMode(s); m {
	case HardlinkNever, HardlinkAuto, HardlinkAlways:
		return m, nil
	}
	return "", fmt.Errorf("--hardlink %q: want never, auto or always", s)
}

// links reports whether the mode places files into the store by link.
func (m HardlinkMode) links() bool { return m == HardlinkAuto || m == HardlinkAlways }

// ErrLinkImpossible is returned in --hardlink always mode when a file can be
// neither cloned nor hard-linked into the store.
var ErrLinkImpossible = errors.New("cannot hard-link or clone into the store")

// ErrChanged is matched by the error reported for a name whose file was
// replaced (another inode, or another type) between the walk that listed it
// and the open that reads it. Nothing of either file is captured under that
// name: metadata and contents always come from one inode.
var ErrChanged = errors.New("changed during capture")
