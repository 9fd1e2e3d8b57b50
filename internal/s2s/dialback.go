package s2s

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Namespaces of server streams.
const (
	nsDialback        = "jabber:server:dialback"     // XEP-0220 elements
	nsDialbackFeature = "urn:xmpp:features:dialback" // XEP-0220 §2.1 stream feature
)

// dialbackKey computes the XEP-0220 key as XEP-0185 recommends:
// HMAC-SHA256 keyed with the hex SHA-256 of the secret, over "receiving
// originating streamID", in lower-case hex. Only the server that knows
// the secret (the originating domain's authoritative server) can make
// it, and it is bound to one stream of one pair of domains.
func dialbackKey(secret []byte, receiving, originating, streamID string) string {
	k := sha256.Sum256(secret)
	m := hmac.New(sha256.New, []byte(hex.EncodeToString(k[:])))
	m.Write([]byte(receiving))
	m.Write([]byte{' '})
	m.Write([]byte(originating))
	m.Write([]byte{' '})
	m.Write([]byte(streamID))
	return hex.EncodeToString(m.Sum(nil))
}

// verifyDialbackKey checks a key in constant time.
func verifyDialbackKey(secret []byte, receiving, originating, streamID, key string) bool {
	if streamID == "" || receiving == "" || originating == "" {
		return false
	}
	want := dialbackKey(secret, receiving, originating, streamID)
	return hmac.Equal([]byte(want), []byte(key))
}
