// Package dsn builds delivery status notifications (RFC 3464) for meshd: the message a node
// sends back to a sender when delivery failed, is delayed, or (when asked with NOTIFY=SUCCESS)
// succeeded.
//
// Build(Report) returns the envelope sender to use (always "", the null reverse-path, so that a
// notification can never cause another one: RFC 3461 §6.2, RFC 5321 §4.5.5) and the complete
// message, CRLF line ends, no line longer than 998 octets (RFC 5322 §2.1.1):
//
//	From: Mail Delivery System <MAILER-DAEMON@host>     To: <original envelope sender>
//	Date, Message-ID, Subject, Auto-Submitted: auto-replied (RFC 3834 §5),
//	In-Reply-To/References: the original Message-ID, when it had one
//	Content-Type: multipart/report; report-type=delivery-status (RFC 6522)
//	  1. text/plain: a human-readable explanation, grouped by action
//	  2. message/delivery-status: per-message fields (Reporting-MTA, Original-Envelope-Id,
//	     Arrival-Date), then one block per recipient (Final-Recipient, Original-Recipient,
//	     Action, Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date, Will-Retry-Until)
//	  3. the original: message/rfc822 (all of it) or text/rfc822-headers (its header only)
//
// Which form of the original is returned: RET=FULL gives the whole message and RET=HDRS the
// header (RFC 3461 §4.3); without RET, the whole message when it is at most MaxFullBytes
// (default 64 KiB), else the header. A message with a line longer than 998 octets cannot be
// carried in message/rfc822 (which admits no transfer encoding) and is returned as headers.
//
// When an address or diagnostic is not ASCII (SMTPUTF8 mail), the status part is
// message/global-delivery-status with "utf-8" address types (RFC 6533 §3, §6).
//
// The output is deterministic for a given Report: with MessageID and Now set, Build always
// returns the same bytes (the MIME boundary is derived from the content), which the golden
// files under testdata/ rely on.
package dsn
