package corpus

import (
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// treeDigest maps every regular file under dir to the SHA-256 of its bytes.
func treeDigest(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = sha256.Sum256(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGenerateDeterministic(t *testing.T) {
	size := int64(6 << 20)
	if raceEnabled {
		size = 1 << 20
	}
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	sa, err := GenerateTree(a, size, 7)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := GenerateTree(b, size, 7)
	if err != nil {
		t.Fatal(err)
	}
	na, nb := sa.Files, sb.Files
	if _, err := GenerateTree(c, size, 8); err != nil {
		t.Fatal(err)
	}
	da, db, dc := treeDigest(t, a), treeDigest(t, b), treeDigest(t, c)
	if na != nb || len(da) != na || len(db) != nb {
		t.Fatalf("file counts differ: %d/%d returned, %d/%d on disk", na, nb, len(da), len(db))
	}
	var total int64
	for p, sum := range da {
		if db[p] != sum {
			t.Fatalf("%s differs between two runs with the same seed", p)
		}
		st, err := os.Stat(filepath.Join(a, p))
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
	}
	if total != size {
		t.Fatalf("tree holds %d bytes, want exactly %d", total, size)
	}
	same := 0
	for p, sum := range dc {
		if da[p] == sum {
			same++
		}
	}
	if same > len(dc)/20 { // a few real .gz/.png files may coincide
		t.Fatalf("seed 8 reproduced %d of %d files of seed 7", same, len(dc))
	}
}

func TestGenerateMix(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("generates 32 MiB")
	}
	dir := t.TempDir()
	st, err := GenerateTree(dir, 32<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	r, err := MeasureRatio(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s; %s", st, r)
	for c := range NumClasses {
		share := float64(st.Bytes[c]) / float64(st.Total)
		if share < classShare[c]-0.08 || share > classShare[c]+0.08 {
			t.Errorf("%s is %.0f%% of the bytes, want about %.0f%%", c, 100*share, 100*classShare[c])
		}
	}
	if tr := r.Total(); tr < 1.5 || tr > 4 {
		t.Errorf("zstd ratio %.2f outside [1.5, 4]", tr)
	}
	if st.SmallFiles < st.Files/2 {
		t.Errorf("only %d of %d files are small", st.SmallFiles, st.Files)
	}
}
