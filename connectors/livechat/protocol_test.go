package livechat

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeFrame(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     clientFrame
		wantCode string
	}{
		{name: "session.start minimal", in: `{"type":"session.start"}`, want: clientFrame{Type: "session.start"}},
		{name: "session.start full", in: `{"type":"session.start","v":1,"token":"t","name":"  Ann ","email":"ann@example.org","page_url":"https://www.example.com/pricing","after":7}`,
			want: clientFrame{Type: "session.start", V: 1, Token: "t", Name: "Ann", Email: "ann@example.org", PageURL: "https://www.example.com/pricing", After: 7}},
		{name: "unknown fields ignored", in: `{"type":"ping","visitor_token":"x","extra":{"a":[1]}}`, want: clientFrame{Type: "ping"}},
		{name: "message.send", in: `{"type":"message.send","client_id":"A-1","text":"Hi, <b>INV-3391</b>"}`, want: clientFrame{Type: "message.send", ClientID: "A-1", Text: "Hi, <b>INV-3391</b>"}},
		{name: "typing", in: `{"type":"typing","active":true}`, want: clientFrame{Type: "typing", Active: true}},
		{name: "resume", in: `{"type":"resume","after":42}`, want: clientFrame{Type: "resume", After: 42}},
		{name: "message.state", in: `{"type":"message.state","state":"read","message_ids":[3,4]}`, want: clientFrame{Type: "message.state", State: "read", MessageIDs: []int64{3, 4}}},
		{name: "leading whitespace", in: " \n{\"type\":\"ping\"}", want: clientFrame{Type: "ping"}},

		{name: "not JSON", in: `hello`, wantCode: codeBadFrame},
		{name: "array", in: `[{"type":"ping"}]`, wantCode: codeBadFrame},
		{name: "null", in: `null`, wantCode: codeBadFrame},
		{name: "empty", in: ``, wantCode: codeBadFrame},
		{name: "truncated", in: `{"type":"ping"`, wantCode: codeBadFrame},
		{name: "trailing data", in: `{"type":"ping"}{"type":"ping"}`, wantCode: codeBadFrame},
		{name: "invalid UTF-8", in: "{\"type\":\"message.send\",\"client_id\":\"x\",\"text\":\"\xff\xfe\"}", wantCode: codeInvalidUTF8},
		{name: "missing type", in: `{"text":"x"}`, wantCode: codeBadField},
		{name: "type not a string", in: `{"type":5}`, wantCode: codeBadField},
		{name: "unknown type", in: `{"type":"agent.reply"}`, wantCode: codeUnknownType},
		{name: "future version", in: `{"type":"session.start","v":2}`, wantCode: codeUnsupportedVer},
		{name: "bad email", in: `{"type":"session.start","email":"Ann <ann@example.org>"}`, wantCode: codeBadField},
		{name: "name with newline", in: `{"type":"session.start","name":"A\nB"}`, wantCode: codeBadField},
		{name: "long name", in: `{"type":"session.start","name":"` + strings.Repeat("n", 101) + `"}`, wantCode: codeBadField},
		{name: "javascript page url", in: `{"type":"session.start","page_url":"javascript:alert(1)"}`, wantCode: codeBadField},
		{name: "negative after", in: `{"type":"resume","after":-1}`, wantCode: codeBadField},
		{name: "after not a number", in: `{"type":"resume","after":"7"}`, wantCode: codeBadField},
		{name: "fractional after", in: `{"type":"resume","after":1.5}`, wantCode: codeBadField},
		{name: "huge token", in: `{"type":"session.start","token":"` + strings.Repeat("t", 300) + `"}`, wantCode: codeTokenInvalid},
		{name: "send without client id", in: `{"type":"message.send","text":"x"}`, wantCode: codeBadField},
		{name: "client id with spaces", in: `{"type":"message.send","client_id":"a b","text":"x"}`, wantCode: codeBadField},
		{name: "client id too long", in: `{"type":"message.send","client_id":"` + strings.Repeat("c", 65) + `","text":"x"}`, wantCode: codeBadField},
		{name: "empty text", in: `{"type":"message.send","client_id":"a","text":"  \n"}`, wantCode: codeBadField},
		{name: "text too long", in: `{"type":"message.send","client_id":"a","text":"` + strings.Repeat("é", 21) + `"}`, wantCode: codeTextTooLong},
		{name: "text not a string", in: `{"type":"message.send","client_id":"a","text":["x"]}`, wantCode: codeBadField},
		{name: "bad state", in: `{"type":"message.state","state":"seen","message_ids":[1]}`, wantCode: codeBadField},
		{name: "no ids", in: `{"type":"message.state","state":"read","message_ids":[]}`, wantCode: codeBadField},
		{name: "zero id", in: `{"type":"message.state","state":"read","message_ids":[0]}`, wantCode: codeBadField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeFrame([]byte(tt.in), 20)
			if tt.wantCode != "" {
				var fe *frameError
				if !errors.As(err, &fe) || fe.Code != tt.wantCode {
					t.Fatalf("want error %s, got %v (frame %+v)", tt.wantCode, err, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// The error frame of a too-long message names its client id, so that the
// widget marks that message as failed.
func TestDecodeFrameErrorCarriesClientID(t *testing.T) {
	_, err := decodeFrame([]byte(`{"type":"message.send","client_id":"A-1","text":"`+strings.Repeat("x", 11)+`"}`), 10)
	var fe *frameError
	if !errors.As(err, &fe) || fe.ClientID != "A-1" {
		t.Fatalf("got %v", err)
	}
}

// FuzzDecodeFrame: the decoder never panics, accepts only what validates,
// and what it accepts survives a round trip unchanged.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"session.start","v":1,"token":"v1.vis_1.1.AAAA","name":"Ann","email":"a@b.example","after":3}`,
		`{"type":"message.send","client_id":"A-1","text":"Hi"}`,
		`{"type":"typing","active":true}`,
		`{"type":"resume","after":9007199254740991}`,
		`{"type":"message.state","state":"delivered","message_ids":[1,2,3]}`,
		`{"type":"ping"}`,
		`{"type":"message.send","client_id":"x","text":"\ud83d\ude00\u0000"}`,
		"{\"type\":\"ping\",\"x\":\"\xff\"}",
		`[]`, `{`, `{"type":null}`, `{"type":"message.send","text":1e999}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := decodeFrame(data, 40)
		if err != nil {
			var fe *frameError
			if !errors.As(err, &fe) || fe.Code == "" || !utf8.ValidString(fe.Msg) {
				t.Fatalf("error is not a proper frameError: %#v", err)
			}
			return
		}
		if !utf8.Valid(data) {
			t.Fatal("accepted invalid UTF-8")
		}
		if fr.Type == typeMessageSend && (utf8.RuneCountInString(fr.Text) > 40 || !validClientID(fr.ClientID)) {
			t.Fatalf("accepted an invalid message.send: %+v", fr)
		}
		b, err := json.Marshal(fr)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeFrame(b, 40)
		if err != nil {
			t.Fatalf("re-encoded frame %s fails: %v", b, err)
		}
		if !reflect.DeepEqual(again, fr) {
			t.Fatalf("round trip changed the frame:\n%+v\n%+v", fr, again)
		}
	})
}
