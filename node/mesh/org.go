package mesh

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/meshd/meshd/linkstate"
)

// OrgDocs is the node's organisation document as the mesh floods it
// (implemented by the node over package orgdoc; the mesh sees only
// bytes). Offer verifies, stores and applies a document: fresh reports
// that it was newer than the one in force, and only fresh documents are
// flooded on. A refused document (older, unsigned, badly signed,
// invalid) is an error and goes no further.
type OrgDocs interface {
	// Current is the encoded signed document in force and its version
	// (nil, 0: none).
	Current() ([]byte, uint64)
	Offer(doc []byte, from string) (fresh bool, err error)
}

// orgMagic starts an organisation document where link-state records
// travel (port-691 RECORDS frames, X-LINK2STATE RECORDS transfers): a
// record kind of its own beside linkstate's "MLSR" (linkstate/PROTOCOL.md,
// "Organisation document"). Nodes that do not know it refuse it as a
// record of bad magic.
const orgMagic = linkstate.OrgRecordMagic

// sumMagic starts the X-LINK2STATE summaries of a node that holds an
// organisation document: its version and content hash, then linkstate's
// summary list (MLSS) unchanged.
const sumMagic = "MSUM\x01"

// MaxOrgRecord bounds an organisation document on the wire (orgdoc's
// MaxEncoded and the prefix).
const MaxOrgRecord = 256<<10 + len(orgMagic)

// IsOrgRecord reports whether b is an organisation document record.
func IsOrgRecord(b []byte) bool { return linkstate.IsOrgRecord(b) }

// OrgRecord wraps an encoded signed document as a record.
func OrgRecord(doc []byte) []byte { return append([]byte(orgMagic), doc...) }

// orgRecord is the document in force as a record (nil: none).
func (m *Mesh) orgRecord() ([]byte, uint64) {
	if m.cfg.Org == nil {
		return nil, 0
	}
	doc, v := m.cfg.Org.Current()
	if doc == nil {
		return nil, 0
	}
	return OrgRecord(doc), v
}

// OfferOrg takes a document given to this node (admin API): as if it had
// arrived from a peer, it is verified, stored, applied and flooded.
func (m *Mesh) OfferOrg(doc []byte) (bool, error) {
	return m.offerOrgRecord(OrgRecord(doc), "admin", false)
}

// offerOrgRecord installs an organisation document record and floods a
// fresh one: to every member when this node is master, to the master
// otherwise (unless it came from there), and to other groups by the next
// X-LINK2STATE round.
func (m *Mesh) offerOrgRecord(rec []byte, from string, fromMaster bool) (bool, error) {
	if m.cfg.Org == nil {
		return false, errors.New("mesh: this node takes no organisation document")
	}
	if len(rec) > MaxOrgRecord {
		return false, errors.New("mesh: organisation document too large")
	}
	fresh, err := m.cfg.Org.Offer(rec[len(orgMagic):], from)
	if err != nil || !fresh {
		return fresh, err
	}
	_, v := m.cfg.Org.Current()
	m.publishOrgVersion(v)
	if m.srv != nil && m.IsMaster() {
		m.srv.Push([][]byte{rec})
	} else if !fromMaster && m.cli.Load() != nil {
		m.cli.Load().Hand([][]byte{rec})
	}
	if m.syncer != nil {
		m.syncer.trigger()
	}
	return true, nil
}

// publishOrgVersion tells the group (gossip metadata) which document this
// node applied, for meshctl org status. The gossip update may wait for a
// broadcast: publishMeta does it off the caller's goroutine (a channel
// read loop, an SMTP session).
func (m *Mesh) publishOrgVersion(v uint64) {
	m.mu.Lock()
	m.meta.Org = v
	m.mu.Unlock()
	select {
	case m.metaKick <- struct{}{}:
	default:
	}
}

// publishMeta runs from Start to Close: it gossips the metadata again
// after each change.
func (m *Mesh) publishMeta() {
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.metaKick:
		}
		m.mu.Lock()
		meta := m.meta
		m.mu.Unlock()
		if err := m.pool.UpdateMeta(meta); err != nil && m.ctx.Err() == nil {
			m.log.Warn("publish gossip metadata", "err", err)
		}
	}
}

// orgDigest folds the document in force into the LSDB digest, so that two
// bridgeheads with the same records but different documents still run an
// exchange. Without a document the digest is the LSDB's own.
func (m *Mesh) orgDigest(lsdb [32]byte) [32]byte {
	rec, v := m.orgRecord()
	if rec == nil {
		return lsdb
	}
	h := sha256.New()
	h.Write(lsdb[:])
	h.Write([]byte(orgMagic))
	_ = binary.Write(h, binary.BigEndian, v)
	sum := sha256.Sum256(rec)
	h.Write(sum[:])
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// wrapSummaries prefixes linkstate's summary list with the document in
// force (version, SHA-256 of its record), when there is one.
func (m *Mesh) wrapSummaries(mlss []byte) []byte {
	rec, v := m.orgRecord()
	if rec == nil {
		return mlss
	}
	sum := sha256.Sum256(rec)
	out := make([]byte, 0, len(sumMagic)+8+32+len(mlss))
	out = append(out, sumMagic...)
	out = binary.BigEndian.AppendUint64(out, v)
	out = append(out, sum[:]...)
	return append(out, mlss...)
}

// unwrapSummaries splits a peer's summaries into its document version
// (0: none, or a node that does not know documents) and linkstate's list.
func unwrapSummaries(b []byte) (org uint64, mlss []byte, err error) {
	if !bytes.HasPrefix(b, []byte(sumMagic)) {
		return 0, b, nil
	}
	rest := b[len(sumMagic):]
	if len(rest) < 8+32 {
		return 0, nil, errors.New("mesh: summaries: truncated organisation entry")
	}
	return binary.BigEndian.Uint64(rest), rest[8+32:], nil
}

// orgPeers remembers the document version each X-LINK2STATE peer of
// another group reported (meshctl org status).
type orgPeers struct {
	mu   sync.Mutex
	seen map[string]PeerOrg
}

// PeerOrg is the document version a peer reported, and when.
type PeerOrg struct {
	Version uint64    `json:"version"`
	At      time.Time `json:"at"`
}

func (p *orgPeers) note(addr string, v uint64, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = map[string]PeerOrg{}
	}
	p.seen[addr] = PeerOrg{Version: v, At: at}
}

// OrgPeers returns the document versions reported by X-LINK2STATE peers
// (target bridgeheads this node synced with), by mesh address.
func (m *Mesh) OrgPeers() map[string]PeerOrg {
	m.orgPeers.mu.Lock()
	defer m.orgPeers.mu.Unlock()
	out := make(map[string]PeerOrg, len(m.orgPeers.seen))
	for k, v := range m.orgPeers.seen {
		out[k] = v
	}
	return out
}
