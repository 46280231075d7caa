package maildir

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMailbox(t *testing.T) {
	tests := []struct {
		rcpt, domain, local string
	}{
		{"alice@example.test", "example.test", "alice"},
		{"Alice@EXAMPLE.Test", "example.test", "alice"},
		{"alice@example.test.", "example.test", "alice"},
		{"alice+lists@example.test", "example.test", "alice"},
		{"alice+a+b@example.test", "example.test", "alice"},
		{"+tag@example.test", "example.test", "+tag"},
		{"first.last@sub.example.test", "sub.example.test", "first.last"},
		{`"john doe"@example.test`, "example.test", "john doe"},
		{`"a\"b"@example.test`, "example.test", `a"b`},
		{`"odd@name"@example.test`, "example.test", "odd@name"},
		{"jörg@bücher.test", "bücher.test", "jörg"},
		{"x..y@example.test", "example.test", "x..y"},
		{"mail_box@my_host.example.test", "my_host.example.test", "mail_box"},
	}
	for _, tc := range tests {
		t.Run(tc.rcpt, func(t *testing.T) {
			d, l, err := Mailbox(tc.rcpt)
			if err != nil {
				t.Fatalf("Mailbox: %v", err)
			}
			if d != tc.domain || l != tc.local {
				t.Errorf("Mailbox = %q, %q; want %q, %q", d, l, tc.domain, tc.local)
			}
		})
	}
}

// hostile addresses: every one must be refused without creating anything.
var hostile = []string{
	"../escape@example.test",
	"..@example.test",
	".@example.test",
	".hidden@example.test",
	"a/b@example.test",
	"../../etc/passwd@example.test",
	"a\\b@example.test",
	"a\x00b@example.test",
	"a\nb@example.test",
	"a\x7fb@example.test",
	`"../x"@example.test`,
	`"a/b"@example.test`,
	`"\.\.\/x"@example.test`,
	`"unterminated@example.test`,
	"user@../../etc",
	"user@..",
	"user@.example.test",
	"user@exa..mple.test",
	"user@a/b",
	"user@a\\b",
	"user@a\x00b",
	"user@[127.0.0.1]",
	"user@-bad.test",
	"user@",
	"@example.test",
	"no-at-sign",
	"",
	"\xff\xfe@example.test",
	strings.Repeat("l", 65) + "@example.test",
	"user@" + strings.Repeat("d.", 130) + "test",
}

func TestDeliverRejectsHostileAddresses(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "maildir")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, rcpt := range hostile {
		t.Run(fmt.Sprintf("%q", rcpt), func(t *testing.T) {
			path, err := Deliver(root, rcpt, []byte("x"))
			if !errors.Is(err, ErrInvalidAddress) {
				t.Fatalf("Deliver = %q, %v; want ErrInvalidAddress", path, err)
			}
		})
	}
	// Nothing may have been created, inside root or beside it.
	var created []string
	_ = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if p != base && p != root {
			created = append(created, p)
		}
		return nil
	})
	if len(created) > 0 {
		t.Errorf("hostile addresses created %q", created)
	}
}

var nameRE = regexp.MustCompile(`^(\d+)\.M(\d+)P(\d+)Q(\d+)R([0-9a-f]{16})\.([^/:,]+),S=(\d+)$`)

func TestDeliver(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mail") // does not exist yet
	body := []byte("Return-Path: <a@x.test>\r\nSubject: hi\r\n\r\nbody\r\n")
	w := &Writer{Root: root, Hostname: "node1.rg:1/x", Now: func() time.Time { return time.Unix(1700000000, 123456789) }}
	path, err := w.Deliver("Bob+news@Example.Test", body)
	if err != nil {
		t.Fatal(err)
	}
	mbox := filepath.Join(root, "example.test", "bob")
	if filepath.Dir(path) != filepath.Join(mbox, "new") {
		t.Fatalf("path %s not in %s/new", path, mbox)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Errorf("content %q, want %q", got, body)
	}
	m := nameRE.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		t.Fatalf("name %q does not match %s", filepath.Base(path), nameRE)
	}
	if m[1] != "1700000000" || m[2] != "123456" || m[3] != fmt.Sprint(os.Getpid()) || m[4] != "1" ||
		m[6] != `node1.rg\0721\057x` || m[7] != fmt.Sprint(len(body)) {
		t.Errorf("name fields %q", m[1:])
	}
	for _, d := range []string{root, filepath.Join(root, "example.test"), mbox,
		filepath.Join(mbox, "tmp"), filepath.Join(mbox, "new"), filepath.Join(mbox, "cur")} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want a 0700 directory", d, fi.Mode())
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("message mode %v, want 0600", fi.Mode().Perm())
	}
	if left, _ := os.ReadDir(filepath.Join(mbox, "tmp")); len(left) != 0 {
		t.Errorf("tmp/ not empty: %v", left)
	}
	// A second delivery gets another name; the sequence number advances.
	path2, err := w.Deliver("bob@example.test", body)
	if err != nil {
		t.Fatal(err)
	}
	if path2 == path {
		t.Fatal("two deliveries got the same name")
	}
	if m2 := nameRE.FindStringSubmatch(filepath.Base(path2)); m2 == nil || m2[4] != "2" {
		t.Errorf("second name %q: want Q2", filepath.Base(path2))
	}
}

func TestDeliverConcurrent(t *testing.T) {
	root := t.TempDir()
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				// Half share one Writer (and its sequence), half use the package function.
				body := []byte(fmt.Sprintf("Subject: %d-%d\r\n\r\nmsg %d-%d\r\n", g, i, g, i))
				rcpt := []string{"shared@example.test", fmt.Sprintf("user%d@example.test", g%3)}[i%2]
				var err error
				if g%2 == 0 {
					_, err = Deliver(root, rcpt, body)
				} else {
					_, err = (&Writer{Root: root}).Deliver(rcpt, body)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var bodies []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if filepath.Base(filepath.Dir(p)) != "new" {
				t.Errorf("file outside new/: %s", p)
			}
			b, _ := os.ReadFile(p)
			bodies = append(bodies, string(b))
		}
		return nil
	})
	if len(bodies) != writers*each {
		t.Fatalf("%d files, want %d", len(bodies), writers*each)
	}
	sort.Strings(bodies)
	for i := 1; i < len(bodies); i++ {
		if bodies[i] == bodies[i-1] {
			t.Fatalf("message stored twice: %q", bodies[i])
		}
	}
}

func TestDeliverRefusesSymlinks(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	// A mailbox directory that is a symbolic link pointing outside the root.
	if err := os.MkdirAll(filepath.Join(root, "example.test"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "example.test", "victim")); err != nil {
		t.Fatal(err)
	}
	if _, err := Deliver(root, "victim@example.test", []byte("x")); err == nil {
		t.Error("delivered through a symlinked mailbox")
	}
	// A domain directory that is a symbolic link.
	if err := os.Symlink(outside, filepath.Join(root, "evil.test")); err != nil {
		t.Fatal(err)
	}
	if _, err := Deliver(root, "user@evil.test", []byte("x")); err == nil {
		t.Error("delivered through a symlinked domain")
	}
	if left, _ := os.ReadDir(outside); len(left) != 0 {
		t.Errorf("files appeared outside the root: %v", left)
	}
	// The root itself may be a link.
	linkRoot := filepath.Join(t.TempDir(), "rootlink")
	if err := os.Symlink(outside, linkRoot); err != nil {
		t.Fatal(err)
	}
	if _, err := Deliver(linkRoot, "ok@example.test", []byte("x")); err != nil {
		t.Errorf("symlinked root refused: %v", err)
	}
}

func TestDeliverErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Deliver(file, "a@example.test", []byte("x")); err == nil {
		t.Error("root that is a file: no error")
	}
	if _, err := Deliver("", "a@example.test", []byte("x")); err == nil {
		t.Error("empty root: no error")
	}
	// new/ replaced by a file: the write fails and leaves nothing in tmp/.
	mbox := filepath.Join(dir, "m", "example.test", "a")
	for _, sub := range []string{"tmp", "cur"} {
		if err := os.MkdirAll(filepath.Join(mbox, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(mbox, "new"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Deliver(filepath.Join(dir, "m"), "a@example.test", []byte("x")); err == nil {
		t.Error("new/ is a file: no error")
	}
	if left, _ := os.ReadDir(filepath.Join(mbox, "tmp")); len(left) != 0 {
		t.Errorf("tmp/ not cleaned: %v", left)
	}
}

func TestMoveNoReplace(t *testing.T) {
	dir := t.TempDir()
	tmp, dst := filepath.Join(dir, "tmp"), filepath.Join(dir, "dst")
	_ = os.WriteFile(tmp, []byte("new"), 0o600)
	_ = os.WriteFile(dst, []byte("old"), 0o600)
	if err := moveNoReplace(tmp, dst); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("moveNoReplace onto an existing file: %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "old" {
		t.Errorf("existing file overwritten: %q", b)
	}
}

func BenchmarkDeliver(b *testing.B) {
	root := b.TempDir()
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 256)
	w := &Writer{Root: root}
	for b.Loop() {
		if _, err := w.Deliver("bench@example.test", body); err != nil {
			b.Fatal(err)
		}
	}
}
