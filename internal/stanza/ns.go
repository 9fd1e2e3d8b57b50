// Package stanza holds the XMPP namespaces and the helpers that build
// replies and stanza errors (RFC 6120 §8.3), shared by the core and modules.
package stanza

// Namespaces used by the core and those several modules share (delay,
// forwarding, hints); a namespace only one module uses stays beside it.
const (
	NSClient   = "jabber:client"
	NSServer   = "jabber:server"
	NSStream   = "http://etherx.jabber.org/streams"
	NSStreams  = "urn:ietf:params:xml:ns:xmpp-streams"
	NSStanzas  = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	NSSession  = "urn:ietf:params:xml:ns:xmpp-session"
	NSSASLCB   = "urn:xmpp:sasl-cb:0"
	NSDiscoInf = "http://jabber.org/protocol/disco#info"
	NSDiscoIt  = "http://jabber.org/protocol/disco#items"
	NSSID      = "urn:xmpp:sid:0"     // XEP-0359
	NSDelay    = "urn:xmpp:delay"     // XEP-0203
	NSForward  = "urn:xmpp:forward:0" // XEP-0297
	NSHints    = "urn:xmpp:hints"     // XEP-0334
)
