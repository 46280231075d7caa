package smtp

import (
	"errors"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/meshd/meshd/smtp/reply"
)

// Reply is an SMTP reply: code, enhanced status code, text (package
// smtp/reply, which queue shares). The server's hooks return one to have
// it sent; client results carry the server's.
type Reply = reply.Reply

// EnhancedCode is an RFC 3463 enhanced status code.
type EnhancedCode = reply.Enhanced

// goSMTPError is r as go-smtp sends it from a session hook.
func goSMTPError(r *Reply) *gosmtp.SMTPError {
	enh := gosmtp.EnhancedCode(r.Enhanced)
	if r.Enhanced == (EnhancedCode{}) {
		enh = gosmtp.NoEnhancedCode
	}
	return &gosmtp.SMTPError{Code: r.Code, EnhancedCode: enh, Message: r.Text}
}

// hookError turns what a hook returned into what go-smtp sends: a *Reply
// or *gosmtp.SMTPError as it is; ok false for any other error.
func hookError(err error) (*gosmtp.SMTPError, bool) {
	var r *Reply
	if errors.As(err, &r) {
		return goSMTPError(r), true
	}
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return se, true
	}
	return nil, false
}
