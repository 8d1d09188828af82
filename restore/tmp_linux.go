package restore

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"strings"

	"golang.org/x/sys/unix"
)

// Every file, symlink and hard link is written under a temporary name in
// its directory and renamed into place. A restore that is killed leaves
// the temporary names behind; the next restore into the directory removes
// them (partialName recognises exactly the names tempName makes).

const (
	tempPrefix = ".smp-"
	tempSuffix = ".tmp"
	tempRand   = 6 // random bytes, hex-encoded
)

// tempName returns a fresh name in the same directory; O_EXCL guards
// against the (negligible) chance that it exists.
func tempName() string {
	var b [tempRand]byte
	_, _ = rand.Read(b[:])
	return tempPrefix + hex.EncodeToString(b[:]) + tempSuffix
}

// partialName reports whether name is one tempName could have made.
func partialName(name string) bool {
	mid, ok := strings.CutPrefix(name, tempPrefix)
	if !ok {
		return false
	}
	if mid, ok = strings.CutSuffix(mid, tempSuffix); !ok || len(mid) != 2*tempRand {
		return false
	}
	for _, c := range mid {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// removePartials removes the temporary names an earlier, interrupted
// restore left in h's directory. It runs before this restore writes into
// the directory (register says no other handle on it is open), so none of
// them is this restore's own. Removal is relative to the directory's
// descriptor and unlinkat(2) never follows a symlink; a directory of that
// name is not touched. Best effort: a name that cannot be removed only
// stays where it was.
func (r *restorer) removePartials(h *dirHandle) {
	for {
		names, err := h.f.Readdirnames(1024)
		for _, name := range names {
			if partialName(name) {
				err := unix.Unlinkat(h.fd, name, 0)
				if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EISDIR) {
					r.skip(joinRel(h.rel, name), "partial file of an interrupted restore: "+err.Error())
				}
			}
		}
		if err != nil || len(names) == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				r.skip(h.rel, "look for partial files of an interrupted restore: "+err.Error())
			}
			return
		}
	}
}

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
