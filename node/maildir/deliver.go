package maildir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Deliver writes body into the Maildir of rcpt under root and returns the path of the new file
// (in new/). It returns only after the file and its directory entry are on disk.
func Deliver(root, rcpt string, body []byte) (path string, err error) {
	return (&Writer{Root: root}).Deliver(rcpt, body)
}

// Writer delivers into the Maildirs under Root. Its fields are read-only after first use; it
// is safe for concurrent use. The zero Hostname and Now mean os.Hostname and time.Now.
type Writer struct {
	Root     string
	Hostname string
	Now      func() time.Time

	seq atomic.Uint64
}

// Deliver is the package-level Deliver with the Writer's settings.
func (w *Writer) Deliver(rcpt string, body []byte) (string, error) {
	domain, local, err := Mailbox(rcpt)
	if err != nil {
		return "", err
	}
	if w.Root == "" {
		return "", fmt.Errorf("maildir: deliver %s: empty root", rcpt)
	}
	mbox := filepath.Join(w.Root, domain, local)
	if err := makeMaildir(w.Root, mbox); err != nil {
		return "", fmt.Errorf("maildir: deliver %s: %w", rcpt, err)
	}
	path, err := w.write(mbox, body)
	if err != nil {
		return "", fmt.Errorf("maildir: deliver %s: %w", rcpt, err)
	}
	return path, nil
}

// makeMaildir creates root, <domain>, <mailbox> and its tmp, new and cur, refusing symbolic
// links on the way.
func makeMaildir(root, mbox string) error {
	// The root may be a symbolic link the operator made (e.g. onto a data disk); below it, none.
	if err := ensureDir(root, true); err != nil {
		return err
	}
	domainDir := filepath.Dir(mbox)
	for _, d := range []string{domainDir, mbox} {
		if err := ensureDir(d, false); err != nil {
			return err
		}
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := ensureDir(filepath.Join(mbox, sub), false); err != nil {
			return err
		}
	}
	return nil
}

// ensureDir makes dir (mode 0700) if needed, fsyncing its parent when it did, and checks that
// it is a directory (and, unless follow is set, not a symbolic link).
func ensureDir(dir string, follow bool) error {
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	fi, err := stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return err
		}
		fi, err = stat(dir)
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// write puts body into mbox/tmp, fsyncs it, links it into mbox/new and fsyncs new/.
func (w *Writer) write(mbox string, body []byte) (string, error) {
	const attempts = 5
	var lastErr error
	for range attempts {
		name, err := w.uniqueName(len(body))
		if err != nil {
			return "", err
		}
		tmp := filepath.Join(mbox, "tmp", name)
		if err := writeSynced(tmp, body); err != nil {
			if errors.Is(err, fs.ErrExist) {
				lastErr = err
				continue
			}
			return "", err
		}
		dst := filepath.Join(mbox, "new", name)
		err = moveNoReplace(tmp, dst)
		if err != nil {
			_ = os.Remove(tmp)
			if errors.Is(err, fs.ErrExist) {
				lastErr = err
				continue
			}
			return "", err
		}
		if err := syncDir(filepath.Join(mbox, "new")); err != nil {
			return "", err
		}
		return dst, nil
	}
	return "", fmt.Errorf("no unique file name after %d attempts: %w", attempts, lastErr)
}

// writeSynced creates path exclusively, writes data and fsyncs it.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}

// moveNoReplace links tmp to dst and removes tmp; where hard links are not supported it renames.
func moveNoReplace(tmp, dst string) error {
	err := os.Link(tmp, dst)
	if err == nil {
		return os.Remove(tmp)
	}
	if errors.Is(err, fs.ErrExist) || !linkUnsupported(err) {
		return err
	}
	if _, serr := os.Lstat(dst); serr == nil {
		return &fs.PathError{Op: "rename", Path: dst, Err: fs.ErrExist}
	}
	return os.Rename(tmp, dst)
}

func linkUnsupported(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP) ||
		errors.Is(err, syscall.EMLINK)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// uniqueName returns "<secs>.M<usecs>P<pid>Q<seq>R<random>.<host>,S=<size>".
func (w *Writer) uniqueName(size int) (string, error) {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	t := now()
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d.M%dP%dQ%dR%s.%s,S=%d", t.Unix(), t.Nanosecond()/1000, os.Getpid(), w.seq.Add(1),
		hex.EncodeToString(rnd[:]), w.host(), size), nil
}

// host is the hostname with "/" and ":" encoded as the Maildir convention asks (":" starts the
// info part of a name in cur/, "/" would make a path).
func (w *Writer) host() string {
	h := w.Hostname
	if h == "" {
		h, _ = os.Hostname()
	}
	if h == "" {
		h = "localhost"
	}
	return strings.NewReplacer("/", `\057`, ":", `\072`, ",", `\054`).Replace(h)
}
