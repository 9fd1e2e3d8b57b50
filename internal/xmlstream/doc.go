// Package xmlstream decodes and encodes the XML subset that RFC 6120 §11
// allows on an XMPP stream.
//
// The Decoder reads a stream header and then one complete top-level element
// (stanza) at a time. It works in two passes over its own buffer: a
// resumable byte scanner finds where a stanza ends (tracking depth, quotes
// and CDATA) so that limits are enforced while bytes arrive and no Read is
// issued once the stanza is complete; then the finished stanza is copied into
// one string and parsed strictly, with names, attribute values and text
// sliced out of that string to keep allocations per stanza small.
package xmlstream
