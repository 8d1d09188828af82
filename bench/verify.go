package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// compareLinkedTrees checks that every regular file under src is the same
// file (inode) at the same place under dst (or, for clones, has the same
// size and bytes), that symlinks have the same targets and directories
// exist; it returns the number of regular files.
func compareLinkedTrees(src, dst string, clones bool) (int64, error) {
	var files int64
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		q := filepath.Join(dst, rel)
		si, err := os.Lstat(p)
		if err != nil {
			return err
		}
		di, err := os.Lstat(q)
		if err != nil {
			return err
		}
		if si.Mode().Type() != di.Mode().Type() {
			return fmt.Errorf("%s: type %v, corpus %v", rel, di.Mode().Type(), si.Mode().Type())
		}
		switch {
		case si.Mode().IsRegular():
			files++
			if os.SameFile(si, di) {
				return nil
			}
			if !clones || si.Size() != di.Size() {
				return fmt.Errorf("%s: not the corpus file (a different inode)", rel)
			}
			same, err := sameFile(p, q)
			if err == nil && !same {
				err = fmt.Errorf("%s: contents differ", rel)
			}
			return err
		case si.Mode()&fs.ModeSymlink != 0:
			a, err1 := os.Readlink(p)
			b, err2 := os.Readlink(q)
			if err := errors.Join(err1, err2); err != nil {
				return err
			}
			if a != b {
				return fmt.Errorf("%s: symlink to %q, corpus %q", rel, b, a)
			}
		}
		return nil
	})
	return files, err
}

// verifyRestore compares the restored profile with the corpus' and makes
// the restore row.
func (r *runner) verifyRestore(a agg, tool, scenario, user, restored string) (Row, error) {
	src := filepath.Join(r.root, "home", user)
	_, logical, _ := treeSize(src)
	row := a.row(tool, scenario, logical)
	err := compareTrees(src, restored)
	ok := err == nil
	row.Verified = &ok
	if err != nil {
		row.Status = StatusFailed
		row.Note = "restored tree differs from the corpus: " + err.Error()
	} else {
		row.Note = "restore of " + user + ", verified byte for byte"
		if scenario == ScenarioRestoreCold {
			row.Note = "restore of " + user + ", page cache dropped first, verified byte for byte"
		}
	}
	return row, err
}

// compareTrees checks that dst holds exactly what src holds: the same
// entries, types, permission bits, file contents and symlink targets.
func compareTrees(src, dst string) error {
	list := func(root string) (map[string]fs.FileInfo, error) {
		m := map[string]fs.FileInfo{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			m[rel] = info
			return nil
		})
		return m, err
	}
	a, err := list(src)
	if err != nil {
		return err
	}
	b, err := list(dst)
	if err != nil {
		return err
	}
	var diffs []string
	diff := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	paths := make([]string, 0, len(a))
	for p := range a {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for p := range b {
		if _, ok := a[p]; !ok {
			diff("%s: only in the restored tree", p)
		}
	}
	const bits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
	for _, p := range paths {
		ia, ib := a[p], b[p]
		switch {
		case ib == nil:
			diff("%s: missing", p)
			continue
		case ia.Mode().Type() != ib.Mode().Type():
			diff("%s: type %v, restored %v", p, ia.Mode().Type(), ib.Mode().Type())
			continue
		case ia.Mode()&fs.ModeSymlink == 0 && ia.Mode()&bits != ib.Mode()&bits:
			diff("%s: mode %v, restored %v", p, ia.Mode(), ib.Mode())
		}
		switch {
		case ia.Mode()&fs.ModeSymlink != 0:
			ta, err1 := os.Readlink(filepath.Join(src, p))
			tb, err2 := os.Readlink(filepath.Join(dst, p))
			if err1 != nil || err2 != nil || ta != tb {
				diff("%s: symlink target %q, restored %q", p, ta, tb)
			}
		case ia.Mode().IsRegular():
			if ia.Size() != ib.Size() {
				diff("%s: size %d, restored %d", p, ia.Size(), ib.Size())
			} else if same, err := sameFile(filepath.Join(src, p), filepath.Join(dst, p)); err != nil || !same {
				diff("%s: contents differ (%v)", p, err)
			}
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	n := len(diffs)
	if n > 10 {
		diffs = append(diffs[:10], "...")
	}
	return fmt.Errorf("%d differences: %s", n, strings.Join(diffs, "; "))
}

// fileBufs holds the pairs of buffers sameFile reads into: two fresh,
// zeroed MiB per file would cost more than reading the corpus' small files.
var fileBufs = sync.Pool{New: func() any { return new([2][1 << 20]byte) }}

// sameFile reports whether files a and b hold the same bytes.
func sameFile(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	bufs := fileBufs.Get().(*[2][1 << 20]byte)
	defer fileBufs.Put(bufs)
	ba, bb := bufs[0][:], bufs[1][:]
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea != nil || eb != nil {
			if (ea == io.EOF || ea == io.ErrUnexpectedEOF) && (eb == io.EOF || eb == io.ErrUnexpectedEOF) {
				return true, nil
			}
			return false, errors.Join(ea, eb)
		}
	}
}
