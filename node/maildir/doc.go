// Package maildir delivers messages into Maildir mailboxes, the embedded local delivery of a
// meshd node.
//
// Deliver(root, rcpt, body) writes body into <root>/<domain>/<localpart>/new/ and returns the
// file's path. The write follows the Maildir protocol so that a crash never leaves a partial
// message where a mail reader looks:
//
//  1. the file is created in tmp/ under a unique name (O_EXCL, mode 0600), written and fsynced;
//  2. it is hard-linked into new/ (a link, unlike rename, never replaces an existing file; on
//     filesystems without hard links it is renamed), removed from tmp/, and new/ is fsynced so
//     the directory entry is durable before Deliver returns.
//
// Missing directories (root, domain, mailbox, tmp, new, cur) are created with mode 0700 and their
// parents fsynced.
//
// Unique names follow the Maildir++ convention used by Courier and Dovecot:
// "<secs>.M<usecs>P<pid>Q<seq>R<random>.<host>,S=<size>", where seq counts deliveries of one
// Writer and random is 64 random bits, so concurrent Writers and processes never collide (the
// link into new/ would fail rather than overwrite if they did).
//
// # Mapping an address to a mailbox
//
// The recipient is split at its last "@". The domain is lowercased, a trailing dot dropped, and
// must be a plain host name (letters, digits, "-", non-ASCII UTF-8; no empty label).
// The local part:
//
//   - a quoted local part ("john doe"@example.test) is unquoted first (RFC 5321 §4.1.2);
//   - it is lowercased: mailboxes are case-insensitive, so Bob@ and bob@ share one mailbox;
//   - a "+detail" suffix (subaddressing, RFC 5233) is removed: user+lists@ is delivered to the
//     mailbox of user@. A directory per detail would split a user's mail and let any sender
//     create any number of directories. The full address stays visible in the Delivered-To
//     header that the node adds. A local part that starts with "+" is kept whole;
//   - it must then be non-empty valid UTF-8 of at most 64 octets (RFC 5321 §4.5.3.1.1), must not
//     start with "." (no ".", "..", or hidden directories), and must not contain "/", "\",
//     NUL or other control characters.
//
// Anything else is rejected with an error wrapping ErrInvalidAddress before any file is
// touched, and directories on the path that are symbolic links are refused, so an address can
// never make Deliver write outside root.
//
// The body is stored byte for byte (SMTP's CRLF line ends included; Maildir readers such as
// Dovecot accept them).
package maildir
