package xlink

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Server-side phases of one X-LINK2STATE exchange (PROTOCOL.md §3).
const (
	phaseNone      = iota // nothing yet: only DIGEST
	phaseDigest           // digests compared: SUMMARIES may follow
	phaseSummaries        // summaries exchanged: RECORDS may follow
)

// serverSession is the X-LINK2STATE state of one SMTP connection. EHLO,
// HELO, RSET and STARTTLS reset it.
type serverSession struct {
	cfg           *Config
	phase         int
	peerSummaries []byte
	rx            assembler
}

func (s *serverSession) init(cfg *Config) {
	s.cfg = cfg
	s.reset()
}

func (s *serverSession) reset() {
	s.phase = phaseNone
	s.peerSummaries = nil
	s.rx = assembler{max: s.cfg.Limits.MaxTransferBytes}
}

func (s *serverSession) inTransfer() bool { return s.rx.open }

const xlinkVerb = "X-LINK2STATE"

// xlink answers one X-LINK2STATE command line. It runs only in command
// state, i.e. after go-smtp has written the final reply of every earlier
// command, so replies stay in order under PIPELINING.
func (h *handler) xlink(line []byte, complete bool) error {
	if !complete || len(line) > MaxLineBytes {
		return h.drop("500 5.5.2 X-LINK2STATE line too long")
	}
	st := h.tlsState()
	switch {
	case !h.c.EHLO():
		return h.c.Reply("503 5.5.1 Send EHLO first")
	case h.c.OffersTLS() && st == nil:
		return h.c.Reply("530 5.7.0 Must issue a STARTTLS command first")
	case h.cfg.Allow == nil || !h.cfg.Allow(h.c.RemoteAddr(), st):
		h.cfg.Logger.Info("xlink: refused non-peer", "peer", h.c.RemoteAddr().String())
		return h.c.Reply("550 5.7.1 Not a configured mesh peer")
	case !bytes.HasSuffix(line, []byte("\r\n")):
		return h.drop("501 5.5.4 X-LINK2STATE commands end with CRLF")
	}
	args := string(line[len(xlinkVerb) : len(line)-2])
	if len(args) < 2 || args[0] != ' ' {
		return h.drop("501 5.5.4 X-LINK2STATE needs a subcommand")
	}
	lines, err := h.proto.handle(h.c.Context(), strings.Split(args[1:], " "))
	if err != nil {
		var fe *frameError
		if errors.As(err, &fe) {
			return h.drop(fmt.Sprintf("%d %s %s", fe.code, fe.enh, fe.msg))
		}
		return err
	}
	return h.c.Reply(lines...)
}

// handle runs one subcommand and returns the reply lines. A *frameError
// means the peer broke the protocol and the session must be dropped.
func (s *serverSession) handle(ctx context.Context, f []string) ([]string, error) {
	sub, args := strings.ToUpper(f[0]), f[1:]
	switch sub {
	case "DIGEST":
		if s.rx.open {
			return nil, errSequence("DIGEST inside a transfer")
		}
		if len(args) != 1 {
			return nil, errSyntax("DIGEST needs one digest")
		}
		if _, err := parseHash(args[0]); err != nil {
			return nil, err
		}
		s.phase, s.peerSummaries = phaseDigest, nil
		d := s.cfg.Store.Digest()
		return []string{"250 2.0.0 DIGEST " + hex.EncodeToString(d[:])}, nil
	case "FIRST":
		if s.rx.open {
			return nil, errSequence("FIRST inside an open transfer")
		}
		if len(args) > 0 {
			switch strings.ToUpper(args[0]) {
			case KindSummaries:
				if s.phase < phaseDigest {
					return nil, errSequence("SUMMARIES before DIGEST")
				}
			case KindRecords:
				if s.phase != phaseSummaries {
					return nil, errSequence("RECORDS before SUMMARIES")
				}
			}
		}
		if err := s.rx.first(args); err != nil {
			return nil, err
		}
		return []string{"250 2.0.0 Send " + s.rx.kind + " chunks"}, nil
	case "NEXT":
		if len(args) != 1 {
			return nil, errSyntax("NEXT needs one chunk")
		}
		if err := s.rx.next(args[0], false); err != nil {
			return nil, err
		}
		return []string{fmt.Sprintf("250 2.0.0 %d of %d bytes", len(s.rx.buf), s.rx.declared)}, nil
	case "LAST":
		if len(args) > 1 || (len(args) == 1 && args[0] == "") {
			return nil, errSyntax("LAST takes at most one chunk")
		}
		chunk := ""
		if len(args) == 1 {
			chunk = args[0]
		}
		if err := s.rx.next(chunk, true); err != nil {
			return nil, err
		}
		kind, payload, err := s.rx.finish()
		if err != nil {
			return nil, err
		}
		if kind == KindSummaries {
			return s.summaries(payload)
		}
		return s.records(ctx, payload)
	}
	return nil, errSyntax("unknown X-LINK2STATE subcommand")
}

// summaries absorbs the peer's summaries and answers ours as a transfer.
func (s *serverSession) summaries(peer []byte) ([]string, error) {
	if _, err := s.cfg.Store.Newer(peer); err != nil {
		return nil, errPayload("malformed summaries")
	}
	mine := s.cfg.Store.Summaries()
	if len(mine) > s.cfg.Limits.MaxTransferBytes {
		s.phase = phaseDigest
		return []string{"451 4.3.0 Local summaries exceed the transfer limit"}, nil
	}
	s.peerSummaries, s.phase = peer, phaseSummaries
	return replyLines(250, frameLines(KindSummaries, mine)), nil
}

// records installs the peer's newer records and answers with ours.
func (s *serverSession) records(ctx context.Context, payload []byte) ([]string, error) {
	lim := s.cfg.Limits
	recs, err := decodeRecords(payload, lim.MaxRecords)
	if err != nil {
		return nil, err
	}
	s.phase = phaseDigest
	installed := 0
	if len(recs) > 0 {
		ictx, cancel := context.WithTimeout(ctx, s.cfg.InstallTimeout)
		installed, err = s.cfg.Store.Install(ictx, recs)
		cancel()
		if err != nil {
			return []string{"451 4.3.0 Records not installed: " + sanitize(err.Error())}, nil
		}
	}
	newer, err := s.cfg.Store.Newer(s.peerSummaries)
	if err != nil {
		return []string{"451 4.3.0 Local records unavailable"}, nil
	}
	out, n := encodeRecords(newer, lim.MaxTransferBytes, lim.MaxRecords)
	s.cfg.Logger.Info("xlink: records exchanged", "received", len(recs), "installed", installed, "sent", n)
	return replyLines(250, append([]string{"INSTALLED " + strconv.Itoa(installed)}, frameLines(KindRecords, out)...)), nil
}

// replyLines makes a multi-line reply: "ddd-" on every line but the last.
func replyLines(code int, texts []string) []string {
	out := make([]string, len(texts))
	for i, t := range texts {
		sep := "-"
		if i == len(texts)-1 {
			sep = " "
		}
		out[i] = strconv.Itoa(code) + sep + t
	}
	return out
}

// sanitize keeps an error text printable and short enough for a reply.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}
