package main

import (
	"testing"

	"smp/cas/manifest"
)

func TestLsMode(t *testing.T) {
	for _, c := range []struct {
		typ  manifest.Type
		mode uint32
		want string
	}{
		{manifest.TypeFile, 0o644, "-rw-r--r--"},
		{manifest.TypeFile, 0o4755, "-rwsr-xr-x"},
		{manifest.TypeFile, 0o4644, "-rwSr--r--"},
		{manifest.TypeDir, 0o2775, "drwxrwsr-x"},
		{manifest.TypeDir, 0o1777, "drwxrwxrwt"},
		{manifest.TypeDir, 0o1700, "drwx-----T"},
		{manifest.TypeSymlink, 0o777, "lrwxrwxrwx"},
		{manifest.TypeFile, 0, "----------"},
	} {
		if got := lsMode(&manifest.Entry{Type: c.typ, Mode: c.mode}); got != c.want {
			t.Errorf("%s %04o: %s, want %s", c.typ, c.mode, got, c.want)
		}
	}
}
