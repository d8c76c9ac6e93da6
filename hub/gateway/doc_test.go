package gateway

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/hub"
)

// The protocol document names every request with its fields, every server
// frame, every error code and every close code this package uses, so that
// it cannot silently fall behind the code.
func TestProtocolDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/agent-protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	requests := []string{typeAuth, typePresence, typeResume, typeTicketsList, typeTicketGet, typeAccept, typeDecline,
		typeReply, typeNote, typeTransfer, typeTicketStatus, typeTyping, typePing}
	for _, typ := range requests {
		if !strings.Contains(doc, "`"+typ+"`") {
			t.Errorf("request %q is not documented", typ)
		}
		body, ok := newBody(typ)
		if !ok {
			t.Fatalf("no body for %q", typ)
		}
		rt := reflect.TypeOf(body).Elem()
		for i := range rt.NumField() {
			f := rt.Field(i)
			if f.Anonymous {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !strings.Contains(doc, "| `"+name+"` |") {
				t.Errorf("field %q of %q is not in a field table", name, typ)
			}
		}
	}
	for _, typ := range []string{typeReady, typeResult, typeError, typeResumeDone, hub.UpdateTicket, hub.UpdateMessage,
		hub.UpdateDelivery, hub.UpdateOffer, hub.UpdateOfferRevoked, hub.UpdateTyping} {
		if !strings.Contains(doc, "`"+typ+"`") {
			t.Errorf("server frame %q is not documented", typ)
		}
	}
	for _, code := range []string{CodeUnauthorized, CodeForbidden, CodeNotFound, CodeInvalid, CodePolicy, CodeChannel,
		CodeConflict, CodeOfferExpired, CodeTooLarge, CodeBadFrame, CodeUnknownType, CodeInternal} {
		if !strings.Contains(doc, "| `"+code+"` |") {
			t.Errorf("error code %q is not in the table", code)
		}
	}
	for _, code := range []int{1000, 1001, 1007, 1009, 1011, CloseUnauthorized, CloseUnsupportedProtocol, CloseTooSlow} {
		if !strings.Contains(doc, "| "+strconv.Itoa(code)+" |") {
			t.Errorf("close code %d is not in the table", code)
		}
	}
}
