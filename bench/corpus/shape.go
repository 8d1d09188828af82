package corpus

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// Shape is how GenerateOrg distributes an organisation's bytes over files.
type Shape int

const (
	// ShapeRealistic (the default) gives each profile tens of thousands of
	// files at a few GiB: most files are a few KiB (sizes drawn from
	// a log-normal distribution, see bodySize), in directory trees several
	// levels deep, with many small dot-files under .cache, .config,
	// .local, .mozilla and .vscode, and a long tail of large files
	// (installers, datasets, mailboxes, videos) holding about a third of
	// the bytes.
	ShapeRealistic Shape = iota
	// ShapeLargeFiles is the organisation of earlier runs: about 300
	// files per profile at 256 MiB, most of them 64 KiB to a few MiB.
	ShapeLargeFiles
)

var shapeNames = []string{"realistic", "large-files"}

func (s Shape) String() string {
	if s >= 0 && int(s) < len(shapeNames) {
		return shapeNames[s]
	}
	return fmt.Sprintf("Shape(%d)", int(s))
}

// ParseShape parses a shape's name ("realistic" or "large-files").
func ParseShape(s string) (Shape, error) {
	if i := slices.Index(shapeNames, s); i >= 0 {
		return Shape(i), nil
	}
	return 0, fmt.Errorf("corpus shape %q: want %s", s, strings.Join(shapeNames, " or "))
}

// The realistic shape's file-size body: log-normal, median 4 KiB, sigma
// 1.4 (natural log of bytes), so its mean is 4 KiB * e^(1.4²/2), about
// 10.9 KiB, capped at 64 KiB to 8 MiB (1/40 of a profile's bytes). The median is the one Agrawal et al. report for desktop file
// systems ("A Five-Year Study of File-System Metadata", FAST 2007:
// 4 KB in every year of the study); sigma is chosen so that with the
// tail of large files a few GiB hold about 20,000 files per profile
// (the organisation corpus of issue 17: 154,654 files, 4.78 GB, 8
// profiles). docs/BENCHMARKS.md compares the generated distribution with
// the study's.
const (
	bodyMedian = 4 << 10
	bodySigma  = 1.4
)

// bodySize draws a file size from the body distribution, capped at maxSize.
func bodySize(r *rand.Rand, maxSize int64) int64 {
	s := int64(math.Exp(math.Log(bodyMedian) + bodySigma*r.NormFloat64()))
	return min(max(s, 0), maxSize)
}

// deepens reports whether the realistic shape nests new directories of
// template t deeper: the user's own trees, not the dot-directories,
// whose templates are as deep as the applications make them.
func deepens(t string) bool { return !strings.HasPrefix(t, ".") && !strings.Contains(t, "/.") }

// dirFanout is how many files a realistic profile's generated directory
// holds on average: a new directory is made for one file in dirFanout.
const dirFanout = 12

// dotItems are the realistic shape's small dot-files: caches, browser and
// editor profiles, language packages and git objects, in deep trees.
var dotItems = []item{
	{dir: ".cache/{app}/Cache_Data/{hex2}", name: "{hex16}_0", ct: ctMixed, mix: mixCache, size: szSmall, w: 4},
	{dir: ".cache/thumbnails/normal", name: "{hex32}.png", ct: ctMedia, size: szSmall, w: 2},
	{dir: ".cache/pip/http-v2/{hex1}/{hex1}/{hex1}", name: "{hex32}", ct: ctZip, size: szSmall, w: 2},
	{dir: ".mozilla/firefox/{word}.default-release/storage/default/https+++{word}.example.com/idb", name: "{n}{word}.sqlite", ct: ctMixed, mix: mixDB, size: szSmall, w: 1},
	{dir: ".mozilla/firefox/{word}.default-release/cache2/entries", name: "{hex32}", ct: ctMixed, mix: mixCache, size: szSmall, w: 3},
	{dir: ".vscode/extensions/{word}.{word}-{ver}/node_modules/{word}/lib", name: "{word}.js", ct: ctText, size: szSmall, w: 4},
	{dir: ".vscode/extensions/{word}.{word}-{ver}", name: "package.json", ct: ctConfig, size: szConfig, w: 1},
	{dir: ".local/lib/python3.11/site-packages/{word}/{word}", name: "{word}.py", ct: ctText, size: szSmall, w: 3},
	{dir: ".local/share/{app}/{word}", name: "{word}.json", ct: ctConfig, size: szConfig, w: 2},
	{dir: ".config/{app}/{word}", name: "{word}.conf", ct: ctConfig, size: szConfig, w: 2},
	{dir: "Documents/Projects/{Project}/.git/objects/{hex2}", name: "{hex38}", ct: ctZip, size: szSmall, w: 3},
	{dir: "Documents/Projects/{Project}/src/{word}/{word}", name: "{word}.go", ct: ctText, size: szSmall, w: 3},
}

// realisticDotShare is the share of a profile's config bytes that goes to
// dotItems.
const realisticDotShare = 70

// SmallFileSize draws a file size from the realistic shape's body
// distribution (log-normal, median 4 KiB, sigma 1.4), capped at maxSize:
// for benchmarks of the per-file path on files shaped like real ones.
func SmallFileSize(r *rand.Rand, maxSize int64) int64 { return bodySize(r, maxSize) }
