package capture_test

import (
	"context"
	"os"
	"testing"

	"smp/capture"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	return len(ents)
}

// TestCaptureClosesDescriptors: every directory a capture opens is closed
// when it returns, in every mode, also for names changed during capture.
func TestCaptureClosesDescriptors(t *testing.T) {
	for _, mode := range []string{"chunk", "hardlink", "hardlink-dedupe"} {
		s := newSwapTree(t)
		for i := range 50 {
			write(t, s.root, "home/mallory/d"+string(rune('a'+i%26))+"/f"+string(rune('a'+i/26)), []byte("x"))
		}
		r := newRepo(t)
		captureWithHook(t, r, s, mode, nil) // the store's own descriptors open
		before := openFDs(t)
		captureWithHook(t, r, s, mode, func(abs string) {
			if abs == s.victim {
				replace(t, s.victim, swaps(s)["fifo"])
			}
		})
		if _, err := capture.Run(context.Background(), r, capture.Options{Computer: "pc", Root: s.root}); err != nil {
			t.Fatal(err)
		}
		if after := openFDs(t); after > before {
			t.Errorf("%s: %d descriptors open after the captures, %d before", mode, after, before)
		}
	}
}
