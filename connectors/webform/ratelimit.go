package webform

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchboard-hub/switchboard/connectors/internal/keyrate"
)

// newLimiter is the per-client limiter of the settings; nil (allow all)
// when disabled.
func newLimiter(rl RateLimit, now func() time.Time) *keyrate.Limiter {
	if rl.Disabled {
		return nil
	}
	return keyrate.New(rate.Limit(float64(rl.PerMinute)/60), rl.Burst, now)
}

// clientKey names the client a request is charged to: its IP address, or
// for IPv6 its /64 network, since one subscriber usually holds a whole /64
// and could otherwise rotate addresses to escape the limit.
func clientKey(r *http.Request, trustForwardedFor bool) string {
	addr := remoteAddr(r.RemoteAddr)
	if trustForwardedFor {
		if a := forwardedFor(r.Header.Values("X-Forwarded-For")); a.IsValid() {
			addr = a
		}
	}
	if !addr.IsValid() {
		return r.RemoteAddr
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, err := addr.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return addr.String()
}

func remoteAddr(hostport string) netip.Addr {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	a, _ := netip.ParseAddr(host)
	return a
}

// forwardedFor returns the right-most address of X-Forwarded-For: the one
// our own proxy appended. Entries to its left were written by the client or
// by proxies we do not know, and can be forged.
func forwardedFor(values []string) netip.Addr {
	for i := len(values) - 1; i >= 0; i-- {
		parts := strings.Split(values[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			p := strings.TrimSpace(parts[j])
			if p == "" {
				continue
			}
			return remoteAddr(p)
		}
	}
	return netip.Addr{}
}
