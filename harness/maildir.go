package harness

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// countMaildir adds, for every message file in the new/ and cur/
// directories under root, one to d.Copies[Message-ID], and records
// delivery status notifications in d.Bounced.
func countMaildir(root string, out Deliveries) error {
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		if dir := filepath.Base(filepath.Dir(path)); dir != "new" && dir != "cur" {
			return nil
		}
		h, err := readHeader(path)
		if err != nil {
			return err
		}
		if h.messageID != "" {
			out.Copies[h.messageID]++
			if info, err := d.Info(); err == nil && out.At != nil {
				if t, ok := out.At[h.messageID]; !ok || info.ModTime().Before(t) {
					out.At[h.messageID] = info.ModTime()
				}
			}
		}
		if h.dsnFor != "" {
			out.Bounced[h.dsnFor] = h.diagnostic
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("harness: scan maildir %s: %w", root, err)
	}
	return nil
}

type header struct {
	messageID  string
	dsnFor     string // In-Reply-To of a delivery status notification
	diagnostic string
}

// readHeader reads the Message-ID of a message file (without angle
// brackets) and, for a delivery status notification (RFC 3464), the
// message it reports on and its first Diagnostic-Code.
func readHeader(path string) (header, error) {
	var h header
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) { // moved new/ -> cur/ meanwhile
			return h, nil
		}
		return h, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	inHeader, report := true, false
	var inReplyTo string
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if inHeader && line == "" {
			inHeader = false
			if !report {
				break
			}
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name, value = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value)
		switch {
		case inHeader && name == "message-id" && h.messageID == "":
			h.messageID = strings.Trim(value, "<>")
		case inHeader && name == "in-reply-to":
			inReplyTo = strings.Trim(value, "<>")
		case inHeader && name == "content-type":
			report = strings.Contains(strings.ToLower(value), "multipart/report")
		case !inHeader && name == "diagnostic-code":
			h.dsnFor, h.diagnostic = inReplyTo, value
			for sc.Scan() { // folded continuation lines
				next := strings.TrimRight(sc.Text(), "\r")
				if next == "" || (next[0] != ' ' && next[0] != '\t') {
					break
				}
				h.diagnostic += " " + strings.TrimSpace(next)
			}
			return h, sc.Err()
		}
	}
	return h, sc.Err()
}
