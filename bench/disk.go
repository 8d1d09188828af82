package bench

import (
	"io/fs"
	"os"
	"path/filepath"
)

func copySmallFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

// treeSize counts the regular files under dir and their bytes.
func treeSize(dir string) (files int, bytes int64, err error) {
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files++
		bytes += info.Size()
		return nil
	})
	return files, bytes, err
}

func du(dir string) int64 { return diskUsage(dir)[0] }

// diskUsage returns the bytes allocated (st_blocks) to everything under
// each root, like du: an inode is counted once, under the first root
// holding it, so diskUsage(corpus, links)[1] is what hard links add.
func diskUsage(roots ...string) []int64 {
	seen := map[[2]uint64]bool{}
	out := make([]int64, len(roots))
	for i, root := range roots {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			used, key, shared := fileUsage(info)
			if shared {
				if seen[key] {
					return nil
				}
				seen[key] = true
			}
			out[i] += used
			return nil
		})
	}
	return out
}

// removeAll removes dir, first making read-only directories writable.
func removeAll(dir string) error {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
