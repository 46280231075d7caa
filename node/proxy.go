package node

import (
	"net"
	"net/netip"
	"slices"

	"github.com/meshd/meshd/smtp/proxyproto"
)

// proxyRefusal answers a client that connects to a PROXY-protocol listener
// from outside listen.proxy_protocol_from (RFC 5321 §3.1 allows 554 as the
// opening reply).
const proxyRefusal = "554 5.7.1 This listener accepts connections only through the load balancer\r\n"

// proxied puts the PROXY protocol reader in front of listener name when
// listen.proxy_protocol names it, so that the per-IP cap, relay policy, logs
// and Received: see the client the balancer names.
func (n *Node) proxied(name string, ln net.Listener) net.Listener {
	l := n.cfg.Listen
	if len(l.ProxyProtocolFrom) == 0 || !slices.Contains(l.ProxyProtocol, name) {
		return ln
	}
	var allow []netip.Prefix
	for _, s := range l.ProxyProtocolFrom {
		if p, err := parsePrefix(s); err == nil { // validated at load
			allow = append(allow, p)
		}
	}
	return proxyproto.NewListener(ln, proxyproto.Config{Allow: allow, Timeout: n.cfg.Limits.CommandTimeout,
		Refusal: []byte(proxyRefusal), Logger: n.log.With("listener", name)})
}
