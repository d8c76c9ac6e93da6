package email

import (
	"context"
	"crypto/tls"
)

// FetchOnly reads every mail of mailbox over IMAP and discards it: the
// limit the import benchmark (package email_test) measures itself
// against. It acknowledges nothing and saves no cursor.
func FetchOnly(ctx context.Context, s IMAPSettings, password string, tlsConfig *tls.Config) (messages int, bytes int64, err error) {
	w := newIMAPWatcher(imapConfig{Settings: s, Password: password, TLSConfig: tlsConfig})
	st, err := w.fetchOnly(ctx, "INBOX")
	return st.Messages, st.Bytes, err
}
