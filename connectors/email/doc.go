// Package email is the email channel (M1): mail comes in over IMAP (IDLE
// where the server offers it, polling otherwise) and over inbound SMTP,
// and agents' replies leave over SMTP through the hub's outbox.
//
// The package owns, in this order of the message path:
//
//   - receiving: the IMAP watcher (imap.go), one goroutine per mailbox,
//     with a UIDVALIDITY+UID cursor, acknowledging (\Seen or a move) only
//     after the hub committed the message; the inbound SMTP server
//     (smtpin.go), which answers 250 only after the commit;
//   - understanding: MIME parsing with every charset a support inbox meets
//     (parse.go, charset.go, tnef.go), reply extraction (reply.go), loop
//     and bounce detection (classify.go) and threading hints (thread.go),
//     turned into one connectors.Inbound by normalize.go;
//   - sending: composing a reply as proper mail and sending it over SMTP
//     with classified errors (compose.go, smtpout.go).
//
// Parsing never fails a message: what cannot be read is kept as the raw
// source, attached to a message with what could be read (rule 4 of the
// product: nothing is dropped).
//
// It imports only the connectors package of this module, never hub.
package email
