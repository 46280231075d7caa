// Command naive-smtpd is scripts/bench-accept's reference peer, the "naive
// go-smtp + badger (synced)" server that issue 2 measures meshd against: it
// accepts any message over SMTP with github.com/emersion/go-smtp, stores
// envelope and body in one synced github.com/dgraph-io/badger/v4 transaction
// per message, answers 250 after the commit and does nothing else (no
// delivery, no checks, no logging). Not a mail server; a measuring stick.
//
//	naive-smtpd -listen 127.0.0.1:2525 -dir /tmp/naive
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/dgraph-io/badger/v4"
	"github.com/emersion/go-smtp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:2525", "SMTP listen address")
	dir := flag.String("dir", "", "badger directory (required)")
	flag.Parse()
	if *dir == "" {
		log.Fatal("naive-smtpd: -dir is required")
	}
	db, err := badger.Open(badger.DefaultOptions(*dir).WithSyncWrites(true).WithLogger(nil))
	if err != nil {
		log.Fatalf("naive-smtpd: %v", err)
	}
	srv := smtp.NewServer(backend{db: db})
	srv.Domain = "naive.bench.test"
	srv.MaxMessageBytes = 64 << 20
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("naive-smtpd: %v", err)
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		_ = srv.Close()
	}()
	if err := srv.Serve(l); err != nil && err != smtp.ErrServerClosed {
		log.Printf("naive-smtpd: %v", err)
	}
	if err := db.Close(); err != nil {
		log.Fatalf("naive-smtpd: %v", err)
	}
}

type backend struct{ db *badger.DB }

var seq atomic.Uint64

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{db: b.db}, nil }

type session struct {
	db   *badger.DB
	from string
	to   []string
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.from = from; return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error   { s.to = append(s.to, to); return nil }
func (s *session) Reset()                                      { s.from, s.to = "", nil }
func (s *session) Logout() error                               { return nil }

func (s *session) Data(r io.Reader) error {
	var body bytes.Buffer
	if _, err := body.ReadFrom(r); err != nil {
		return err
	}
	key := binary.BigEndian.AppendUint64(nil, seq.Add(1))
	env := fmt.Sprintf("%s\n%s", s.from, strings.Join(s.to, "\n"))
	return s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(append([]byte("e/"), key...), []byte(env)); err != nil {
			return err
		}
		return txn.Set(append([]byte("b/"), key...), body.Bytes())
	})
}
