package smtp

import (
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// loginServer is the server side of the obsolete but still common LOGIN SASL
// mechanism (draft-murchison-sasl-login): the server asks "Username:" and
// "Password:" and the client answers each; a client may send the username as
// the initial response. go-sasl only ships the client side.
type loginServer struct {
	check    func(identity, user, pass string) error
	user     string
	haveUser bool
	done     bool
}

var _ sasl.Server = (*loginServer)(nil)

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch {
	case l.done:
		return nil, false, sasl.ErrUnexpectedClientResponse
	case !l.haveUser && response == nil:
		return []byte("Username:"), false, nil
	case !l.haveUser:
		l.user, l.haveUser = string(response), true
		return []byte("Password:"), false, nil
	}
	l.done = true
	if response == nil {
		return nil, true, gosmtp.ErrAuthFailed
	}
	return nil, true, l.check("", l.user, string(response))
}
