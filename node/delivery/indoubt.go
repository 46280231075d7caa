package delivery

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/meshd/meshd/meshid"
	"github.com/meshd/meshd/node/maildir"
)

// Exactly-once local delivery across a crash.
//
// A Maildir copy is written (and fsynced) before queue.Record marks the
// recipient delivered, so a crash between the two would deliver the copy
// again after restart. Every copy therefore carries the message's mesh ID
// in an X-Meshd-ID header, and a recipient that was attempted by an earlier
// process but is still pending is "in doubt": before writing it again the
// node looks for a copy with that ID in the mailbox. Maildir file names
// carry the size (",S=<bytes>"), and the copy's size is known, so only files
// of exactly that size are opened, and only their first bytes read.

// copyHeader is the header block prepended to each local copy.
func copyHeader(from, rcpt, id string) string {
	return "Return-Path: <" + from + ">\r\nDelivered-To: " + rcpt + "\r\n" + meshid.HeaderID + ": " + id + "\r\n"
}

// findCopy returns the path of an existing copy of message id in rcpt's
// Maildir (new/ or cur/) whose size is size.
func findCopy(root, rcpt, id string, size int) (string, bool) {
	domain, local, err := maildir.Mailbox(rcpt)
	if err != nil {
		return "", false
	}
	mark := []byte("\r\n" + meshid.HeaderID + ": " + id + "\r\n")
	want := strconv.Itoa(size)
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(root, domain, local, sub)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if sizeFromName(e.Name()) != want {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if hasMark(p, mark) {
				return p, true
			}
		}
	}
	return "", false
}

// sizeFromName extracts S=<size> from a Maildir++ file name
// ("<unique>,S=802" or "<unique>,S=802:2,S").
func sizeFromName(name string) string {
	i := strings.Index(name, ",S=")
	if i < 0 {
		return ""
	}
	s := name[i+3:]
	if j := strings.IndexAny(s, ",:"); j >= 0 {
		s = s[:j]
	}
	return s
}

func hasMark(path string, mark []byte) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 1024)
	n, _ := io.ReadFull(f, buf)
	return bytes.Contains(buf[:n], mark)
}
