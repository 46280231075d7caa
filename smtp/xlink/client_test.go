package xlink

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

// scriptedServer greets, then answers each client line with the next
// scripted reply (a reply may span several lines) and reads one more line.
func scriptedServer(t *testing.T, replies []string) string {
	t.Helper()
	steps := []testkit.Step{{Reply: "220 scripted ESMTP"}}
	for _, r := range replies {
		steps = append(steps, testkit.Step{Expect: testkit.AnyLine, Reply: r})
	}
	return testkit.NewScript(t, append(steps, testkit.Step{Expect: testkit.AnyLine})...).Addr
}

func TestClientRejectsBadServer(t *testing.T) {
	ehlo := "250-scripted\r\n250-X-LINK2STATE\r\n250 PIPELINING\r\n"
	digest := "250 2.0.0 DIGEST " + strings.Repeat("1", 64) + "\r\n"
	first := "250 2.0.0 Send SUMMARIES chunks\r\n"
	sums := "rg1:9\n"
	okSums := "250-FIRST SUMMARIES 6 " + sum([]byte(sums)) + "\r\n250 LAST " + b64.EncodeToString([]byte(sums)) + "\r\n"
	cases := []struct {
		name    string
		replies []string
		want    error
	}{
		{"wrong_hash", []string{ehlo, digest, first, "250-FIRST SUMMARIES 6 " + sum([]byte("other")) + "\r\n250 LAST " + b64.EncodeToString([]byte(sums)) + "\r\n"}, ErrProtocol},
		{"wrong_length", []string{ehlo, digest, first, "250-FIRST SUMMARIES 7 " + sum([]byte(sums)) + "\r\n250 LAST " + b64.EncodeToString([]byte(sums)) + "\r\n"}, ErrProtocol},
		{"last_without_first", []string{ehlo, digest, first, "250 LAST " + b64.EncodeToString([]byte(sums)) + "\r\n"}, ErrProtocol},
		{"oversize", []string{ehlo, digest, first, "250-FIRST SUMMARIES 999999999 " + sum(nil) + "\r\n250 LAST\r\n"}, ErrProtocol},
		{"junk", []string{ehlo, digest, first, "250-FIRST SUMMARIES 6 " + sum([]byte(sums)) + "\r\n250 LAST \x00\x01\r\n"}, ErrProtocol},
		{"long_line", []string{ehlo, digest, first, "250-" + strings.Repeat("A", 2000) + "\r\n"}, errLineTooLong},
		{"bad_records", []string{ehlo, digest, first, okSums, "250 2.0.0 Send RECORDS chunks\r\n",
			"250-INSTALLED 0\r\n250-FIRST RECORDS 3 " + sum([]byte("abc")) + "\r\n250 LAST YWJj\r\n"}, ErrProtocol},
		{"wrong_kind", []string{ehlo, digest, first, "250-FIRST RECORDS 6 " + sum([]byte(sums)) + "\r\n250 LAST " + b64.EncodeToString([]byte(sums)) + "\r\n"}, ErrProtocol},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := scriptedServer(t, tc.replies)
			store := newMemStore("rg1:1:a")
			before := store.Digest()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := Sync(ctx, addr, ClientConfig{}, store)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if store.Digest() != before {
				t.Fatal("store changed")
			}
		})
	}
}
