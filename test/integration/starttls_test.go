package integration

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"
)

// Whitespace after <starttls/> is allowed between elements (RFC 6120
// §11.7) and must not stop the upgrade; anything else sent before our
// <proceed/> would be read as if it came over TLS (STARTTLS command
// injection) and ends the stream.
func TestStartTLSTrailingData(t *testing.T) {
	s := startServer(t, serverOpts{})
	for _, tc := range []struct {
		name, after string
		ok          bool
	}{
		{"newline", "\n", true},
		{"spaces", " \r\n\t ", true},
		{"element", "\n<iq type='get' id='x'/>", false},
		{"text", "x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s.starttls)
			c.send(header)
			c.expect("</stream:features>")
			c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" + tc.after)
			if !tc.ok {
				if got := c.expectClosed(); !strings.Contains(got, "<policy-violation") || strings.Contains(got, "<proceed") {
					t.Fatalf("got %q, want a policy-violation and no <proceed/>", got)
				}
				return
			}
			c.expect("<proceed")
			tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			if err := tc.Handshake(); err != nil {
				t.Fatalf("TLS after whitespace: %v", err)
			}
			c.conn = tc
			c.buf.Reset()
			c.send(header)
			if feats := c.expect("</stream:features>"); !strings.Contains(feats, "<mechanism>PLAIN</mechanism>") {
				t.Fatalf("features after TLS: %s", feats)
			}
		})
	}
}
