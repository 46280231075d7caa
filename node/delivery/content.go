package delivery

import (
	"github.com/meshd/meshd/header"
	"github.com/meshd/meshd/meshid"
	"github.com/meshd/meshd/queue"
)

// What an attempt sends. The stored body is the message as this node
// received it; the header fields the node put in front of it at accept
// (its Received:, Authentication-Results) are kept in the record
// (queue.Envelope.HopHeader) and sent in front of the body on every
// attempt, so no hop scans the header again. The X-Meshd-* fields a mesh
// peer put at the top of the body (Envelope.PeerFields bytes) are what a
// hop to the next node replaces and a local copy (Maildir, LMTP) drops
// (but for the trace; this node's X-Meshd-ID goes in front). A DSN
// returns the message as hop header, then body, without mesh fields.
//
// Out of the organisation (a smarthost, an MX) no X-Meshd-* field goes
// along: they name the mesh's nodes, routing groups and copy IDs. With a
// hop header the only mesh fields of a message are the peer's block at
// the top of the body (the sink stores a message with mesh fields
// anywhere else whole, without a hop header), so leaving them out costs
// no scan of the header; a record without a hop header is scanned, as a
// hop to the next node scans it (docs/config.md, "mesh": what each
// destination gets).
//
// A record without a hop header (written before it existed, a DSN the
// node wrote, a message a filter rewrote) holds the whole message in its
// body, and the mesh fields are looked for in its header, as before.

// content is a message as an attempt sends it: head, then body. The smtp
// client writes the two one after the other (smtp.Outgoing.Header), so
// they are not joined on the way out.
type content struct{ head, body []byte }

// stored is the content of m whose stored body is body.
func stored(m *queue.Message, body []byte) content { return content{head: m.HopHeader, body: body} }

// joined is the content in one buffer (for DKIM signing and DSNs).
func (c content) joined() []byte {
	if len(c.head) == 0 {
		return c.body
	}
	out := make([]byte, 0, len(c.head)+len(c.body))
	return append(append(out, c.head...), c.body...)
}

// peerFields splits the stored body of m after the mesh fields a peer put
// at its top.
func peerFields(m *queue.Message, body []byte) (fields, rest []byte) {
	n := min(max(m.PeerFields, 0), len(body))
	return body[:n], body[n:]
}

// localCopy is a local copy of m after its copy header (copyHeader): the
// hop header, the peer's trace, the message; without the peer's copy ID
// and origin, since the copy header carries this message's ID.
func localCopy(m *queue.Message, body []byte) content {
	if len(m.HopHeader) == 0 {
		return content{body: header.Strip(body, meshid.HeaderID, meshid.HeaderOrigin)}
	}
	fields, rest := peerFields(m, body)
	if fields = header.Strip(fields, meshid.HeaderID, meshid.HeaderOrigin); len(fields) == 0 {
		return content{head: m.HopHeader, body: rest}
	}
	head := make([]byte, 0, len(m.HopHeader)+len(fields))
	return content{head: append(append(head, m.HopHeader...), fields...), body: rest}
}

// outside is m's content as it leaves the organisation (a smarthost, an
// MX): hop header and message without any X-Meshd-* field.
func outside(m *queue.Message, body []byte) content {
	if len(m.HopHeader) == 0 {
		return content{body: header.StripPrefix(body, meshid.FieldPrefix)}
	}
	_, rest := peerFields(m, body)
	return content{head: m.HopHeader, body: rest}
}

// lmtpCopy is what the LMTP server gets: the Maildir copy (localCopy)
// with this node's X-Meshd-ID in front, without Return-Path and
// Delivered-To, which the LMTP server adds (RFC 2033 §4.2).
func lmtpCopy(m *queue.Message, body []byte) content {
	c := localCopy(m, body)
	id := meshid.HeaderID + ": " + m.ID + "\r\n"
	head := make([]byte, 0, len(id)+len(c.head))
	return content{head: append(append(head, id...), c.head...), body: c.body}
}
