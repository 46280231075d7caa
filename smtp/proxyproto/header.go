// Package proxyproto reads the PROXY protocol header (HAProxy's "PROXY
// protocol" versions 1 and 2) that a load balancer sends before the client's
// own bytes, so that a listener behind it learns the real client address.
//
// ReadHeader decodes one header from a reader; Listener wraps a
// net.Listener so that every connection it returns has read its header, and
// its RemoteAddr is the client the balancer names. Only connections from the
// trusted networks may speak it: any other source is refused, so a client
// cannot claim an address by sending a header itself.
package proxyproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Header is a decoded PROXY header. Source and Dest are nil when the
// balancer says the connection is its own (v1 UNKNOWN, v2 LOCAL, or an
// address family other than TCP over IPv4/IPv6); the socket's addresses
// then stand.
type Header struct {
	Version int // 1 or 2
	Source  *net.TCPAddr
	Dest    *net.TCPAddr
}

// ErrNoHeader is returned when the first bytes are not a PROXY header.
var ErrNoHeader = errors.New("proxyproto: no PROXY header")

// sigV2 is the 12-byte v2 signature (spec §2.2).
var sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")

const (
	maxV1 = 107  // the longest v1 line, CRLF included (spec §2.1)
	maxV2 = 4096 // address block bound; TLVs beyond it are refused
)

// ReadHeader reads one PROXY header (v1 or v2) from r and nothing more.
func ReadHeader(r *bufio.Reader) (Header, error) {
	first, err := r.Peek(1)
	if err != nil {
		return Header{}, fmt.Errorf("proxyproto: read header: %w", err)
	}
	switch first[0] {
	case 'P':
		return readV1(r)
	case '\r':
		return readV2(r)
	}
	return Header{}, ErrNoHeader
}

func readV1(r *bufio.Reader) (Header, error) {
	var line []byte
	for len(line) < maxV1 {
		b, err := r.ReadByte()
		if err != nil {
			return Header{}, fmt.Errorf("proxyproto: v1 header: %w", noEOF(err))
		}
		line = append(line, b)
		if b == '\n' {
			break
		}
	}
	if !bytes.HasSuffix(line, []byte("\r\n")) {
		return Header{}, errors.New("proxyproto: v1 header: no CRLF within 107 bytes")
	}
	f := strings.Split(string(line[:len(line)-2]), " ")
	if f[0] != "PROXY" || len(f) < 2 {
		return Header{}, ErrNoHeader
	}
	h := Header{Version: 1}
	switch f[1] {
	case "UNKNOWN":
		return h, nil // the rest of the line is to be ignored (§2.1)
	case "TCP4", "TCP6":
	default:
		return Header{}, fmt.Errorf("proxyproto: v1 header: protocol %q", f[1])
	}
	if len(f) != 6 {
		return Header{}, errors.New("proxyproto: v1 header: want 6 fields")
	}
	src, err1 := v1Addr(f[1], f[2], f[4])
	dst, err2 := v1Addr(f[1], f[3], f[5])
	if err := errors.Join(err1, err2); err != nil {
		return Header{}, fmt.Errorf("proxyproto: v1 header: %w", err)
	}
	h.Source, h.Dest = src, dst
	return h, nil
}

func v1Addr(proto, ip, port string) (*net.TCPAddr, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" || (proto == "TCP4") != a.Is4() {
		return nil, fmt.Errorf("address %q is not %s", ip, proto)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (len(port) > 1 && port[0] == '0') {
		return nil, fmt.Errorf("port %q", port)
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, uint16(p))), nil
}

func readV2(r *bufio.Reader) (Header, error) {
	var fixed [16]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return Header{}, fmt.Errorf("proxyproto: v2 header: %w", noEOF(err))
	}
	if !bytes.Equal(fixed[:12], sigV2) {
		return Header{}, ErrNoHeader
	}
	if fixed[12]>>4 != 2 {
		return Header{}, fmt.Errorf("proxyproto: v2 header: version %d", fixed[12]>>4)
	}
	cmd := fixed[12] & 0x0f
	if cmd > 1 {
		return Header{}, fmt.Errorf("proxyproto: v2 header: command %d", cmd)
	}
	n := int(binary.BigEndian.Uint16(fixed[14:]))
	if n > maxV2 {
		return Header{}, fmt.Errorf("proxyproto: v2 header: %d bytes of addresses, at most %d", n, maxV2)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return Header{}, fmt.Errorf("proxyproto: v2 header: %w", noEOF(err))
	}
	h := Header{Version: 2}
	if cmd == 0 { // LOCAL: the balancer's own connection (health check)
		return h, nil
	}
	var ipLen int
	switch fixed[13] {
	case 0x11: // TCP over IPv4
		ipLen = 4
	case 0x21: // TCP over IPv6
		ipLen = 16
	default: // UNSPEC, UDP, UNIX: no TCP client address to adopt
		return h, nil
	}
	if n < 2*ipLen+4 {
		return Header{}, fmt.Errorf("proxyproto: v2 header: %d bytes, too short for its addresses", n)
	}
	src, _ := netip.AddrFromSlice(body[:ipLen])
	dst, _ := netip.AddrFromSlice(body[ipLen : 2*ipLen])
	sp := binary.BigEndian.Uint16(body[2*ipLen:])
	dp := binary.BigEndian.Uint16(body[2*ipLen+2:])
	h.Source = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src.Unmap(), sp))
	h.Dest = net.TCPAddrFromAddrPort(netip.AddrPortFrom(dst.Unmap(), dp))
	return h, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
