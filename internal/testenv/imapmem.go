package testenv

import (
	"bytes"
	"net"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// IMAPMemory starts go-imap's in-memory IMAP server on a loopback port
// with one user whose INBOX holds mails (unread, in order), and stops it
// at cleanup. It returns the server's address and the user, whose
// mailboxes a test may inspect.
func IMAPMemory(t testing.TB, username, password string, mails [][]byte) (string, *imapmemserver.User) {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(username, password)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	for _, raw := range mails {
		if _, err := u.Append("INBOX", IMAPLiteral(raw), &imap.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), u
}

// IMAPLiteral is raw as an IMAP literal, for appending to a mailbox of the
// in-memory server.
func IMAPLiteral(raw []byte) imap.LiteralReader {
	return memLiteral{bytes.NewReader(raw), int64(len(raw))}
}

type memLiteral struct {
	*bytes.Reader
	size int64
}

func (l memLiteral) Size() int64 { return l.size }
