// Package atomicfile writes a file so that a crash leaves either the old
// content or the new, never a part: a synced temporary file in the same
// directory, renamed over the old one, then the directory synced.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data. The temporary file has mode perm before
// any byte is written (a key is never readable by others, even for a
// moment), and it is removed when anything fails.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
