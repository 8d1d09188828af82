package corpus

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseShape(t *testing.T) {
	for _, s := range []Shape{ShapeRealistic, ShapeLargeFiles} {
		got, err := ParseShape(s.String())
		if err != nil || got != s {
			t.Errorf("ParseShape(%q) = %v, %v", s.String(), got, err)
		}
	}
	if _, err := ParseShape("huge"); err == nil || !strings.Contains(err.Error(), "realistic or large-files") {
		t.Errorf("ParseShape(huge): %v", err)
	}
	if _, err := GenerateOrg(OrgOptions{Out: t.TempDir(), Users: 1, Size: 8 << 20, Shape: Shape(7)}); err == nil {
		t.Errorf("GenerateOrg with an unknown shape: no error")
	}
}

// shapeStats measures a generated corpus on disk: the sizes of its files
// by count, its deepest file (directories below the profile), the share
// of files under a dot-directory or named with a dot, and files per
// directory.
type shapeStats struct {
	files, dirs, dot, maxDepth int
	median, p99                int64
}

func measureShape(t *testing.T, snap map[string]corpusEntry) shapeStats {
	t.Helper()
	var s shapeStats
	var sizes []int64
	for rel, e := range snap {
		switch e.Type {
		case "d":
			s.dirs++
		case "f":
			s.files++
			sizes = append(sizes, e.Size)
			parts := strings.Split(rel, "/")[2:] // below home/userNN
			s.maxDepth = max(s.maxDepth, len(parts)-1)
			if slices.ContainsFunc(parts, func(p string) bool { return strings.HasPrefix(p, ".") }) {
				s.dot++
			}
		}
	}
	slices.Sort(sizes)
	s.median, s.p99 = sizes[len(sizes)/2], sizes[len(sizes)*99/100]
	return s
}

// TestCorpusShape checks the realistic shape (the default) on disk: a
// median file of a few KiB, a long tail, deep trees, many dot-files,
// directories of a few files each; and that large-files keeps the
// earlier shape, a few large files per profile.
func TestCorpusShape(t *testing.T) {
	f := corpusFixture(t)
	if f.info.Shape != "realistic" {
		t.Fatalf("default shape %q", f.info.Shape)
	}
	real := measureShape(t, f.snap)
	if real.median < 2<<10 || real.median >= 10<<10 || real.median != f.info.MedianFileSize {
		t.Errorf("realistic: median file %d bytes on disk, %d in the summary; want 2-10 KiB", real.median, f.info.MedianFileSize)
	}
	if real.p99 < 16*real.median {
		t.Errorf("realistic: 99th percentile %d bytes, median %d: no long tail", real.p99, real.median)
	}
	// Each profile's fixed skeleton of directories weighs more in the
	// smaller corpus of a -race run: at least 1.5 files per directory
	// there, 2 at the full fixture size.
	minPerDir := 4
	if raceEnabled {
		minPerDir = 3
	}
	if real.maxDepth < 6 || real.dot*4 < real.files || 2*real.files < minPerDir*real.dirs || real.files > 30*real.dirs {
		t.Errorf("realistic: deepest file %d directories down, %d of %d files under dot-directories, %d directories",
			real.maxDepth, real.dot, real.files, real.dirs)
	}

	o := f.opts
	o.Out, o.Shape = filepath.Join(t.TempDir(), "large"), ShapeLargeFiles
	info, err := GenerateOrg(o)
	if err != nil {
		t.Fatal(err)
	}
	large := measureShape(t, corpusSnapshot(t, o.Out))
	if info.Shape != "large-files" || large.median <= real.median || 2*real.files < 3*large.files {
		t.Errorf("large-files: shape %q, median %d bytes, %d files (realistic: %d)", info.Shape, large.median, large.files, real.files)
	}
	t.Logf("realistic: %+v; large-files: %+v", real, large)
}
