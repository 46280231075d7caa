package node

import (
	"crypto/tls"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/meshd/meshd/edge/dkim"
	"github.com/meshd/meshd/node/admin"
	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/org"
	"github.com/meshd/meshd/pki"
	"github.com/meshd/meshd/smtp"
)

// ReloadReport says what a reload did (adminapi.ReloadReport).
type ReloadReport = adminapi.ReloadReport

// ErrNoReload is returned by the admin API's reload when the node has no
// configuration file to read again (Options.Reload is nil).
var ErrNoReload = admin.ErrNoReload

// Reload applies cfg to the running node as far as it can change live:
// log.level (through Options.LogLevel), the TLS certificate offered to new
// sessions (read again from tls.cert_file even when the path is the same,
// so a renewed certificate is picked up), limits.max_header_bytes,
// limits.max_received_headers, limits.data_timeout,
// limits.max_connections_per_ip, limits.max_connections,
// limits.max_connections_per_peer, limits.peer_auth_timeout (for new
// connections), limits.shutdown_grace,
// the retry schedule and lifetimes of queue.*, the content filters of
// filters.milters (for transactions that start after it) and the signing
// keys of dkim.keys (read again even when the paths are the same, so a
// key replaced in place signs the next message), and authres.* (the
// Authentication-Results of the messages whose DATA ends after it), and
// mesh.identity.ca_files (read again even under the same paths: when the
// CAs changed, every live member proves itself again at once and one whose
// certificate no longer chains to them is dropped, recheckMembers). Any other change is
// listed in NeedsRestart and not applied. An invalid cfg, or a certificate
// that does not load, is refused as a whole: nothing changes. No session
// is cut and the queue is not touched.
func (n *Node) Reload(cfg config.Config) (ReloadReport, error) {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	var rep ReloadReport
	if err := cfg.Validate(); err != nil {
		return rep, err
	}
	if s := n.org.InForce(); s != nil {
		// The document's keys stay the document's (node/org).
		if cfg = org.Overlay(cfg, &s.Doc); cfg.Validate() != nil {
			return rep, fmt.Errorf("node: reload: with the organisation document in force (version %d): %w", s.Doc.Version, cfg.Validate())
		}
	}
	old := *n.live.Load()

	// Everything that can fail comes first, so a refusal changes nothing.
	var cert *tls.Certificate
	if n.tlsCert.Load() != nil && cfg.TLS.CertFile != "" && cfg.TLS.SelfSigned == old.TLS.SelfSigned {
		c, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return rep, fmt.Errorf("node: reload: tls.cert_file %s: %w", cfg.TLS.CertFile, err)
		}
		cert = &c
	}
	signer, err := dkim.New(cfg.DKIM)
	if err != nil {
		return rep, fmt.Errorf("node: reload: dkim.keys: %w", err)
	}
	var trust *pki.Trust // read again even under the same paths
	if n.id.Enabled() && cfg.HasIdentity() {
		if trust, err = n.id.CheckCAs(cfg.Mesh.Identity.CAFiles); err != nil {
			return rep, fmt.Errorf("node: reload: mesh.identity.ca_files: %w", err)
		}
	}

	restart := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			rep.NeedsRestart = append(rep.NeedsRestart, key)
		}
	}
	applied := func(key string, a, b any) bool {
		if reflect.DeepEqual(a, b) {
			return false
		}
		rep.Applied = append(rep.Applied, key)
		return true
	}

	// log
	if n.logLevel != nil {
		if applied("log.level", old.Log.Level, cfg.Log.Level) {
			_ = n.logLevel.UnmarshalText([]byte(cfg.Log.Level))
		}
	} else {
		restart("log.level", old.Log.Level, cfg.Log.Level)
	}
	restart("log.format", old.Log.Format, cfg.Log.Format)

	// tls
	switch {
	case cert != nil:
		n.tlsCert.Store(cert)
		rep.Applied = append(rep.Applied, "tls.cert_file")
		restart("tls.self_signed", old.TLS.SelfSigned, cfg.TLS.SelfSigned)
	default:
		restart("tls.cert_file", old.TLS.CertFile, cfg.TLS.CertFile)
		restart("tls.key_file", old.TLS.KeyFile, cfg.TLS.KeyFile)
		restart("tls.self_signed", old.TLS.SelfSigned, cfg.TLS.SelfSigned)
	}

	// limits
	ol, nl := old.Limits, cfg.Limits
	restart("limits.max_message_bytes", ol.MaxMessageBytes, nl.MaxMessageBytes)
	restart("limits.max_recipients", ol.MaxRecipients, nl.MaxRecipients)
	restart("limits.max_line_length", ol.MaxLineLength, nl.MaxLineLength)
	restart("limits.command_timeout", ol.CommandTimeout, nl.CommandTimeout)
	a := applied("limits.max_header_bytes", ol.MaxHeaderBytes, nl.MaxHeaderBytes)
	a = applied("limits.max_received_headers", ol.MaxReceived, nl.MaxReceived) || a
	a = applied("limits.data_timeout", ol.DataTimeout, nl.DataTimeout) || a
	a = applied("limits.data_total_timeout", ol.DataTotalTimeout, nl.DataTotalTimeout) || a
	a = applied("limits.max_connections_per_ip", ol.MaxConnsPerIP, nl.MaxConnsPerIP) || a
	a = applied("limits.max_connections", ol.MaxConns, nl.MaxConns) || a
	a = applied("limits.max_connections_per_peer", ol.MaxConnsPerPeer, nl.MaxConnsPerPeer) || a
	a = applied("limits.peer_auth_timeout", ol.PeerAuthTimeout, nl.PeerAuthTimeout) || a
	if a {
		for _, s := range []*smtp.Server{n.smtpSrv, n.subSrv, n.subsSrv, n.meshSrv} {
			if s != nil {
				s.SetLimits(nl.Limits) // applies the reloadable fields only
			}
		}
	}
	applied("limits.shutdown_grace", ol.ShutdownGrace, nl.ShutdownGrace)

	// queue
	oq, nq := old.Queue, cfg.Queue
	restart("queue.max_messages", oq.MaxMessages, nq.MaxMessages)
	restart("queue.max_bytes", oq.MaxBytes, nq.MaxBytes)
	restart("queue.dedup_window", oq.DedupWindow, nq.DedupWindow)
	restart("queue.gc_interval", oq.GCInterval, nq.GCInterval)
	a = applied("queue.retry", oq.Retry, nq.Retry)
	a = applied("queue.delay_warning", oq.DelayWarning, nq.DelayWarning) || a
	a = applied("queue.lifetime", oq.Lifetime, nq.Lifetime) || a
	if a && n.del != nil {
		n.del.SetSchedule(nq)
	}

	// filters, dkim
	if applied("filters.milters", old.Filters.Milters, cfg.Filters.Milters) {
		n.edge.SetMilters(cfg.Filters.Milters)
	}
	applied("dkim.keys", old.DKIM.Keys, cfg.DKIM.Keys)
	n.dkim.SetKeys(signer)
	a = applied("authres.enabled", old.AuthRes.Enabled, cfg.AuthRes.Enabled)
	a = applied("authres.authserv_id", old.AuthRes.AuthServID, cfg.AuthRes.AuthServID) || a

	// mesh.identity.ca_files: every live member proves itself again.
	if trust != nil && n.id.SetCAs(trust) {
		rep.Applied = append(rep.Applied, "mesh.identity.ca_files")
		n.recheckMembers()
	}

	// What is in force now: the applied keys from cfg, the rest as before.
	next := old
	if trust != nil {
		next.Mesh.Identity.CAFiles = cfg.Mesh.Identity.CAFiles
	}
	if n.logLevel != nil {
		next.Log.Level = cfg.Log.Level
	}
	if cert != nil {
		next.TLS.CertFile, next.TLS.KeyFile = cfg.TLS.CertFile, cfg.TLS.KeyFile
	}
	next.Limits.MaxHeaderBytes, next.Limits.MaxReceived = nl.MaxHeaderBytes, nl.MaxReceived
	next.Limits.DataTimeout, next.Limits.DataTotalTimeout, next.Limits.ShutdownGrace = nl.DataTimeout, nl.DataTotalTimeout, nl.ShutdownGrace
	next.Limits.MaxConnsPerIP, next.Limits.MaxConns = nl.MaxConnsPerIP, nl.MaxConns
	next.Limits.MaxConnsPerPeer, next.Limits.PeerAuthTimeout = nl.MaxConnsPerPeer, nl.PeerAuthTimeout
	next.Queue.Retry, next.Queue.DelayWarning, next.Queue.Lifetime = nq.Retry, nq.DelayWarning, nq.Lifetime
	next.Filters, next.DKIM, next.AuthRes = cfg.Filters, cfg.DKIM, cfg.AuthRes
	if a {
		// With the resolver and host name in force (outbound.dns_server
		// and node.hostname need a restart).
		n.edge.SetAuthRes(next)
	}

	// Every other difference is wired into listeners, gossip, routing or
	// policy at start: name its section unless a key of it is named already.
	nv, cv := reflect.ValueOf(next), reflect.ValueOf(cfg)
	for i := range nv.NumField() {
		name, _, _ := strings.Cut(nv.Type().Field(i).Tag.Get("yaml"), ",")
		if name == "" || reflect.DeepEqual(nv.Field(i).Interface(), cv.Field(i).Interface()) {
			continue
		}
		if !slices.ContainsFunc(rep.NeedsRestart, func(k string) bool { return strings.HasPrefix(k, name+".") }) {
			rep.NeedsRestart = append(rep.NeedsRestart, name)
		}
	}
	n.live.Store(&next)
	n.log.Info("configuration reloaded", "applied", rep.Applied, "needs_restart", rep.NeedsRestart)
	return rep, nil
}

// recheckMembers checks every live member's certificate against the CAs
// now in force (after a reload changed them): port-691 sessions at once,
// gossip members within a verification's time; mesh hop sessions opened
// before are not reused, and peers' sessions to us are judged again.
func (n *Node) recheckMembers() {
	if n.mesh == nil {
		return
	}
	// A hop session to a node opened before is not used again: the next
	// hop dials, and the handshake verifies the peer with the new CAs.
	if n.del != nil {
		n.del.CloseMeshSessions()
	}
	// A peer's session to us opened before is asked about again before
	// its next message (its chain verified with the new CAs), and closed
	// with 421 when it no longer proves a node of ours.
	for _, s := range []*smtp.Server{n.smtpSrv, n.meshSrv} {
		if s != nil {
			s.RecheckPeers()
		}
	}
	for _, member := range n.mesh.Recheck(reasonCAChanged, n.id.Trusted) {
		n.id.Dropped("channel", reasonCAChanged)
		n.log.Warn("live member dropped: its certificate does not chain to the reloaded CAs", "peer", member, "reason", reasonCAChanged)
	}
}

// reasonCAChanged is why a member is dropped after a reload changed
// mesh.identity.ca_files (logs, meshd_mesh_peers_dropped_total).
const reasonCAChanged = "ca_changed"

// currentCert is the tls.Config.GetCertificate of every listener: the
// certificate in force, which Reload may replace for new handshakes.
func (n *Node) currentCert(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return n.tlsCert.Load(), nil
}
