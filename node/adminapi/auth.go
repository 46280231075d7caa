package adminapi

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"os"
	"strings"
)

// The admin API's credential is a token: 32 random bytes, hex-encoded, in a
// file only the node's user can read (TokenFileName in the data dir unless
// admin.token_file says otherwise), created at the node's first start.
// Clients send it as "Authorization: Bearer TOKEN" (or as the password of
// HTTP Basic, any user name, which is how a browser asks for it). Anyone
// who can read the file may change the node's state; anyone else may not.
// meshctl finds the file by itself: a 401 answer to a client on the node's
// own machine (a loopback address) names it in ErrorInfo.TokenFile, and
// meshctl reads it and asks again. Knowing the path gives nothing to whom
// the file's permissions refuse.

// TokenFileName is the token file's name in the node's data dir.
const TokenFileName = "admin.token"

// tokenBytes is the token's entropy; its text is twice as long.
const tokenBytes = 32

// minTokenLen is the shortest token a node accepts from a file an operator
// wrote.
const minTokenLen = 32

// LoadOrCreateToken returns the token in path, creating the file (mode
// 0600, O_EXCL) with a new random token when it does not exist. A file
// that group or others may read or write, or a token shorter than 32
// characters, is refused: the credential would not be one.
func LoadOrCreateToken(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		b := make([]byte, tokenBytes)
		_, _ = rand.Read(b) // never fails (crypto/rand)
		tok := hex.EncodeToString(b)
		_, werr := f.WriteString(tok + "\n")
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			_ = os.Remove(path)
			return "", fmt.Errorf("admin: create token file %s: %w", path, err)
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("admin: create token file %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("admin: token file %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("admin: token file %s has mode %04o: group and others must have no access (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin: read token file %s: %w", path, err)
	}
	tok, err := ParseTokenFile(raw)
	if err != nil {
		return "", fmt.Errorf("admin: token file %s: %w", path, err)
	}
	return tok, nil
}

// ParseTokenFile returns the token held in a token file's content: one
// line of at least 32 printable ASCII characters without spaces, and
// surrounding white space.
func ParseTokenFile(raw []byte) (string, error) {
	tok := strings.TrimSpace(string(raw))
	if len(tok) < minTokenLen {
		return "", fmt.Errorf("token is %d characters, want at least %d", len(tok), minTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c > '~' {
			return "", fmt.Errorf("token holds byte 0x%02x at %d: want printable ASCII without spaces", c, i)
		}
	}
	return tok, nil
}

// ParseCredential returns the token an Authorization header value carries:
// "Bearer TOKEN", or "Basic base64(USER:TOKEN)" (RFC 6750, RFC 7617;
// scheme names are case-insensitive). The token is printable ASCII without
// spaces. ok is false for anything else.
func ParseCredential(h string) (token string, ok bool) {
	scheme, rest, found := strings.Cut(strings.TrimSpace(h), " ")
	if !found {
		return "", false
	}
	rest = strings.TrimLeft(rest, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		token = rest
	case strings.EqualFold(scheme, "Basic"):
		dec, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return "", false
		}
		_, pass, found := strings.Cut(string(dec), ":")
		if !found {
			return "", false
		}
		token = pass
	default:
		return "", false
	}
	if !printableToken(token) {
		return "", false
	}
	return token, true
}

// printableToken: non-empty, printable ASCII without spaces (0x21..0x7e).
func printableToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return s != ""
}

// tokenEqual compares in constant time (for equal lengths; the length of
// the token is no secret).
func tokenEqual(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// GuardConfig configures Guard.
type GuardConfig struct {
	// Token is the credential state-changing requests (and, with
	// ReadsNeedToken, all requests) must carry.
	Token string
	// TokenFile is where the token is, told to clients on loopback.
	TokenFile string
	// Listener is the listener's own address (host:port); the Host header
	// must name it, a loopback address or localhost, on its port.
	Listener net.Addr
	// Hosts are further names the Host header may use (admin.hosts).
	Hosts []string
	// ReadsNeedToken (admin.auth: all) requires the token on every request.
	ReadsNeedToken bool
	// OnRefused, when set, is called with the reason of every refusal
	// ("host", "origin", "content_type", "token").
	OnRefused func(reason string)
}

// Guard wraps the admin API's handler with its checks, in this order:
//
//   - the Host header names this listener (DNS rebinding: a browser that
//     resolves an attacker's name to 127.0.0.1 still sends that name):
//     403;
//   - state-changing requests (any method but GET, HEAD, OPTIONS) from a
//     browser on another site (an Origin that is not this listener's,
//     Sec-Fetch-Site cross-site or same-site): 403; with a form content
//     type (application/x-www-form-urlencoded, multipart/form-data,
//     text/plain, which a page may send anywhere without asking): 415;
//   - the token, on state-changing requests (every request with
//     ReadsNeedToken): 401.
//
// Reads (the status page, metrics, GET endpoints) pass the Host check only,
// unless ReadsNeedToken.
func Guard(cfg GuardConfig, next http.Handler) http.Handler {
	port := ""
	var self net.IP
	if cfg.Listener != nil {
		if h, p, err := net.SplitHostPort(cfg.Listener.String()); err == nil {
			port, self = p, net.ParseIP(h)
		}
	}
	refuse := func(w http.ResponseWriter, status int, reason, msg string) {
		if cfg.OnRefused != nil {
			cfg.OnRefused(reason)
		}
		writeGuardError(w, status, ErrorInfo{Error: msg})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r.Host, port, self, cfg.Hosts) {
			refuse(w, http.StatusForbidden, "host", fmt.Sprintf("Host %q does not name this admin listener (want localhost, a loopback address or the listener's address, port %s)", r.Host, port))
			return
		}
		changes := r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions
		if changes {
			if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
				refuse(w, http.StatusForbidden, "origin", fmt.Sprintf("cross-site request refused: Origin %q is not this admin listener", o))
				return
			}
			if s := r.Header.Get("Sec-Fetch-Site"); s == "cross-site" || s == "same-site" {
				refuse(w, http.StatusForbidden, "origin", "cross-site request refused: Sec-Fetch-Site "+s)
				return
			}
			if ct := r.Header.Get("Content-Type"); ct != "" && isFormType(ct) {
				refuse(w, http.StatusUnsupportedMediaType, "content_type", fmt.Sprintf("content type %q refused on a state-changing request (send no body or application/json)", ct))
				return
			}
		}
		if changes || cfg.ReadsNeedToken {
			tok, ok := ParseCredential(r.Header.Get("Authorization"))
			if !ok || !tokenEqual(tok, cfg.Token) {
				info := ErrorInfo{Error: "admin token required: send Authorization: Bearer <token from the node's token file>"}
				if ok {
					info.Error = "admin token refused"
				}
				if isLoopbackRemote(r.RemoteAddr) {
					info.TokenFile = cfg.TokenFile
				}
				if cfg.OnRefused != nil {
					cfg.OnRefused("token")
				}
				w.Header().Set("WWW-Authenticate", `Bearer realm="meshd-admin"`)
				if cfg.ReadsNeedToken && !changes {
					// A browser asks its user for the token (as the password).
					w.Header().Add("WWW-Authenticate", `Basic realm="meshd-admin"`)
				}
				writeGuardError(w, http.StatusUnauthorized, info)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// hostAllowed: host[:port] names localhost, a loopback address, the
// listener's own IP (any IP on a wildcard listener) or one of extra, and
// the port (when given) is the listener's.
func hostAllowed(hostport, port string, self net.IP, extra []string) bool {
	if hostport == "" {
		return false // HTTP/1.1 requires Host (RFC 9112 §3.2)
	}
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		host, p = hostport, ""
		if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			host = host[1 : len(host)-1]
		}
	}
	if p != "" && port != "" && p != port {
		return false
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		// An address is never a rebinding name; on a wildcard listener
		// any of the host's addresses names it.
		return ip.IsLoopback() || (self != nil && (self.IsUnspecified() || ip.Equal(self)))
	}
	for _, h := range extra {
		if strings.EqualFold(strings.TrimSuffix(h, "."), host) {
			return true
		}
	}
	return false
}

// sameOrigin: an Origin header (RFC 6454 serialisation) is this listener
// as the request's Host names it, over http. "null" (sandboxed frames,
// some redirects) is foreign.
func sameOrigin(origin, host string) bool {
	return strings.EqualFold(origin, "http://"+host)
}

// isFormType: the content types a page may POST across sites without a
// CORS preflight (the "simple" ones of the Fetch standard).
func isFormType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true // unparsable: refuse rather than guess
	}
	switch mt {
	case "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
		return true
	}
	return false
}

func isLoopbackRemote(addr string) bool {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func writeGuardError(w http.ResponseWriter, status int, info ErrorInfo) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	b, _ := json.Marshal(info)
	_, _ = w.Write(append(b, '\n'))
}
