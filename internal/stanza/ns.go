// Package stanza holds the XMPP namespaces and the helpers that build
// replies and stanza errors (RFC 6120 §8.3), shared by the core and modules.
package stanza

// Namespaces used by the core. Modules keep their own namespaces beside
// their code; only what the stream and routing layers need lives here.
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
)
