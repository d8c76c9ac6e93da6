package livechat

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// A visitor token is "v1.<visitor id>.<issued-at unix seconds>.<mac>", the
// mac being HMAC-SHA256 over a domain tag, the channel id, the visitor id
// and the issued-at time, base64url without padding. The channel id is in
// the mac but not in the token, so a token of another channel (or another
// hub) simply fails verification.
//
// The token is the visitor's only credential: whoever holds it reads the
// conversation. The widget keeps it in localStorage of the embedding site.

const (
	tokenVersion  = "v1"
	tokenDomain   = "switchboard/livechat/visitor-token/v1"
	maxTokenLen   = 256
	maxVisitorLen = 64
	// clockSkew tolerates tokens issued slightly in the future by a node
	// whose clock runs ahead.
	clockSkew = 5 * time.Minute
)

var (
	errTokenInvalid = errors.New("visitor token invalid")
	errTokenExpired = errors.New("visitor token expired")
)

// signer issues and verifies visitor tokens of one channel.
type signer struct {
	channelID string
	keys      [][]byte // keys[0] signs; all verify (rotation)
	ttl       time.Duration
	now       func() time.Time
}

func (s *signer) mac(key []byte, visitorID string, iat int64) []byte {
	m := hmac.New(sha256.New, key)
	// NUL separators: none of the parts can contain one, so the encoding
	// is unambiguous.
	m.Write([]byte(tokenDomain))
	m.Write([]byte{0})
	m.Write([]byte(s.channelID))
	m.Write([]byte{0})
	m.Write([]byte(visitorID))
	m.Write([]byte{0})
	m.Write([]byte(strconv.FormatInt(iat, 10)))
	return m.Sum(nil)
}

// issue returns a fresh token for visitorID.
func (s *signer) issue(visitorID string) string {
	iat := s.now().Unix()
	return tokenVersion + "." + visitorID + "." + strconv.FormatInt(iat, 10) + "." +
		base64.RawURLEncoding.EncodeToString(s.mac(s.keys[0], visitorID, iat))
}

// verify returns the visitor id of a token, errTokenInvalid for anything
// not signed by this channel's keys, and errTokenExpired for a genuine
// token past its TTL.
func (s *signer) verify(tok string) (string, error) {
	if len(tok) > maxTokenLen {
		return "", errTokenInvalid
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 4 || parts[0] != tokenVersion || !validVisitorID(parts[1]) {
		return "", errTokenInvalid
	}
	iat, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || iat < 0 || parts[2] != strconv.FormatInt(iat, 10) {
		return "", errTokenInvalid
	}
	got, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil {
		return "", errTokenInvalid
	}
	ok := false
	for _, k := range s.keys {
		// hmac.Equal compares in constant time.
		if hmac.Equal(got, s.mac(k, parts[1], iat)) {
			ok = true
		}
	}
	if !ok {
		return "", errTokenInvalid
	}
	now := s.now()
	issued := time.Unix(iat, 0)
	if issued.After(now.Add(clockSkew)) {
		return "", errTokenInvalid
	}
	if now.Sub(issued) > s.ttl {
		return "", errTokenExpired
	}
	return parts[1], nil
}

// newVisitorID returns a random visitor id: 96 bits, hex.
func newVisitorID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "vis_" + hex.EncodeToString(b[:])
}

// validVisitorID accepts [A-Za-z0-9_-]{1,64}: no dots (the token
// separator), nothing that needs escaping in a topic or external id.
func validVisitorID(v string) bool {
	if v == "" || len(v) > maxVisitorLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
