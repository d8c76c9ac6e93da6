package webform

import (
	"net/http/httptest"
	"testing"
)

func TestClientKey(t *testing.T) {
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trust   bool
		wantKey string
	}{
		{"IPv4", "203.0.113.7:5123", nil, false, "203.0.113.7"},
		{"IPv6 by /64", "[2001:db8:1:2:aaaa::1]:443", nil, false, "2001:db8:1:2::/64"},
		{"IPv4-mapped IPv6", "[::ffff:203.0.113.7]:80", nil, false, "203.0.113.7"},
		{"XFF ignored by default", "10.0.0.1:80", []string{"198.51.100.9"}, false, "10.0.0.1"},
		{"XFF trusted: right-most", "10.0.0.1:80", []string{"1.1.1.1, 198.51.100.9"}, true, "198.51.100.9"},
		{"XFF trusted: last header line", "10.0.0.1:80", []string{"1.1.1.1", "198.51.100.9 "}, true, "198.51.100.9"},
		{"XFF trusted, IPv6", "10.0.0.1:80", []string{"2001:db8::5"}, true, "2001:db8::/64"},
		{"XFF garbage falls back", "10.0.0.1:80", []string{"1.1.1.1, not-an-ip"}, true, "10.0.0.1"},
		{"XFF empty falls back", "10.0.0.1:80", []string{" , "}, true, "10.0.0.1"},
		{"odd RemoteAddr kept", "pipe", nil, false, "pipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientKey(r, tt.trust); got != tt.wantKey {
				t.Errorf("clientKey = %q, want %q", got, tt.wantKey)
			}
		})
	}
}
