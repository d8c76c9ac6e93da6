package email

import (
	"strings"
	"testing"
)

// Bad settings are refused with a message that names the field.
func TestSettingsErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{}`, "settings.address: required"},
		{`{"address":"Support <s@example.com>","inbound_smtp":true}`, "settings.address"},
		{`{"address":"s@example.com"}`, "at least one of imap, inbound_smtp or smtp"},
		{`{"address":"s@example.com","adress":"x","inbound_smtp":true}`, "settings.adress: unknown field"},
		{`{"address":"s@example.com","imap":{"host":"imap.example.com:993","username":"u"}}`, "settings.imap.host"},
		{`{"address":"s@example.com","imap":{"host":"imap example com","username":"u"}}`, "settings.imap.host"},
		{`{"address":"s@example.com","imap":{"host":"imaps://imap.example.com","username":"u"}}`, "settings.imap.host"},
		{`{"address":"s@example.com","imap":{"host":"h","username":"u","port":70000}}`, "settings.imap.port"},
		{`{"address":"s@example.com","imap":{"host":"h","username":"u","security":"ssl"}}`, "settings.imap.security"},
		{`{"address":"s@example.com","imap":{"host":"h"}}`, "settings.imap.username"},
		{`{"address":"s@example.com","imap":{"host":"h","username":"u","after_fetch":"move"}}`, "settings.imap.processed_mailbox"},
		{`{"address":"s@example.com","imap":{"host":"h","username":"u","poll_interval":"1s"}}`, "settings.imap.poll_interval"},
		{`{"address":"s@example.com","smtp":{"host":"smtp.example.com:587"}}`, "settings.smtp.host"},
		{`{"address":"s@example.com","inbound_smtp":true,"max_message_bytes":99999999999}`, "settings.max_message_bytes"},
		{`{"address":"s@example.com","inbound_smtp":true,"max_message_bytes":10}`, "settings.max_message_bytes"},
	} {
		_, err := decodeSettings([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.in, err, c.want)
		}
	}
	s, err := decodeSettings([]byte(`{"address":"Support@EXAMPLE.com","imap":{"host":"192.0.2.1","username":"u"},"smtp":{"host":"smtp.example.com"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Address != "Support@example.com" || s.IMAP.Port != 993 || s.SMTP.Port != 587 || s.MessageIDDomain != "example.com" || !*s.SubjectTag {
		t.Errorf("defaults: %+v %+v %+v", s, s.IMAP, s.SMTP)
	}
}
