package edge

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"

	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/smtp/proxyproto"
)

// proxyRefusal answers a client that connects to a PROXY-protocol listener
// from outside listen.proxy_protocol_from (RFC 5321 §3.1 allows 554 as the
// opening reply).
const proxyRefusal = "554 5.7.1 This listener accepts connections only through the load balancer\r\n"

// Proxied puts the PROXY protocol reader in front of listener name when
// listen.proxy_protocol names it, so that the per-IP cap, relay policy, logs
// and Received: see the client the balancer names.
func Proxied(cfg config.Config, name string, ln net.Listener, log *slog.Logger) net.Listener {
	l := cfg.Listen
	if len(l.ProxyProtocolFrom) == 0 || !slices.Contains(l.ProxyProtocol, name) {
		return ln
	}
	var allow []netip.Prefix
	for _, s := range l.ProxyProtocolFrom {
		if p, err := config.ParsePrefix(s); err == nil { // validated at load
			allow = append(allow, p)
		}
	}
	return proxyproto.NewListener(ln, proxyproto.Config{Allow: allow, Timeout: cfg.Limits.CommandTimeout,
		Refusal: []byte(proxyRefusal), Logger: log.With("listener", name)})
}
