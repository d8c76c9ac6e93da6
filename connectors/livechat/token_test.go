package livechat

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	clk := &clock{}
	s := &signer{channelID: testChannel, keys: [][]byte{[]byte(testSecret)}, ttl: time.Hour, now: clk.now}
	tok := s.issue("vis_3c8e1f5a")
	parts := strings.Split(tok, ".")
	flip := func(p string) string { // change one character of a part
		b := []byte(p)
		if b[0] == 'A' {
			b[0] = 'B'
		} else {
			b[0] = 'A'
		}
		return string(b)
	}
	otherChannel := &signer{channelID: "ch_other", keys: s.keys, ttl: time.Hour, now: clk.now}
	otherKey := &signer{channelID: testChannel, keys: [][]byte{[]byte("another-secret-0123456789")}, ttl: time.Hour, now: clk.now}
	rotated := &signer{channelID: testChannel, keys: [][]byte{[]byte("new-secret-0123456789abcdef"), []byte(testSecret)}, ttl: time.Hour, now: clk.now}

	tests := []struct {
		name    string
		signer  *signer
		token   string
		advance time.Duration
		want    string
		wantErr error
	}{
		{name: "valid", signer: s, token: tok, want: "vis_3c8e1f5a"},
		{name: "valid just before expiry", signer: s, token: tok, advance: time.Hour - time.Second, want: "vis_3c8e1f5a"},
		{name: "expired", signer: s, token: tok, advance: time.Hour + time.Second, wantErr: errTokenExpired},
		{name: "issued in the future", signer: s, token: tok, advance: -clockSkew - time.Minute, wantErr: errTokenInvalid},
		{name: "tampered visitor", signer: s, token: strings.Join([]string{parts[0], "vis_3c8e1f5b", parts[2], parts[3]}, "."), wantErr: errTokenInvalid},
		{name: "tampered issued-at", signer: s, token: strings.Join([]string{parts[0], parts[1], "9" + parts[2], parts[3]}, "."), wantErr: errTokenInvalid},
		{name: "issued-at with leading zero", signer: s, token: strings.Join([]string{parts[0], parts[1], "0" + parts[2], parts[3]}, "."), wantErr: errTokenInvalid},
		{name: "tampered mac", signer: s, token: strings.Join([]string{parts[0], parts[1], parts[2], flip(parts[3])}, "."), wantErr: errTokenInvalid},
		{name: "truncated mac", signer: s, token: tok[:len(tok)-2], wantErr: errTokenInvalid},
		{name: "empty mac", signer: s, token: strings.Join(parts[:3], ".") + ".", wantErr: errTokenInvalid},
		{name: "padded mac", signer: s, token: tok + "=", wantErr: errTokenInvalid},
		{name: "wrong channel", signer: otherChannel, token: tok, wantErr: errTokenInvalid},
		{name: "wrong secret", signer: otherKey, token: tok, wantErr: errTokenInvalid},
		{name: "previous secret after rotation", signer: rotated, token: tok, want: "vis_3c8e1f5a"},
		{name: "other version", signer: s, token: "v2" + strings.TrimPrefix(tok, "v1"), wantErr: errTokenInvalid},
		{name: "extra part", signer: s, token: tok + ".x", wantErr: errTokenInvalid},
		{name: "bare visitor id (C23 cookie)", signer: s, token: "vis_3c8e1f5a", wantErr: errTokenInvalid},
		{name: "empty", signer: s, token: "", wantErr: errTokenInvalid},
		{name: "huge", signer: s, token: strings.Repeat("a", 10000), wantErr: errTokenInvalid},
		{name: "bad visitor charset", signer: s, token: "v1.vis_<x>.1." + base64.RawURLEncoding.EncodeToString(make([]byte, 32)), wantErr: errTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.off.Store(int64(tt.advance))
			defer clk.off.Store(0)
			got, err := tt.signer.verify(tt.token)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("verify = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}

	// A rotated signer issues under the new secret, which the old one
	// no longer accepts.
	if _, err := s.verify(rotated.issue("vis_1")); !errors.Is(err, errTokenInvalid) {
		t.Fatalf("token of the new secret verified under the old one: %v", err)
	}
}

func TestNewVisitorID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := newVisitorID()
		if !validVisitorID(id) || !strings.HasPrefix(id, "vis_") || seen[id] {
			t.Fatalf("bad or repeated visitor id %q", id)
		}
		seen[id] = true
	}
}
