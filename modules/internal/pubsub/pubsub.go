// Package pubsub is the publish-subscribe engine (XEP-0060) that both
// front doors use: PEP (modules/pep), where each account is a service,
// and the pubsub service domains (modules/pubsubsvc). It holds what does
// not depend on the door: node configuration and its forms, the node's
// affiliations and subscriptions with their options, access models, and
// storage sealed under the server's key.
package pubsub

import (
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

const (
	NS       = "http://jabber.org/protocol/pubsub"
	NSOwner  = "http://jabber.org/protocol/pubsub#owner"
	NSEvent  = "http://jabber.org/protocol/pubsub#event"
	NSErrors = "http://jabber.org/protocol/pubsub#errors"
)

// Cond adds a pubsub#errors condition to a stanza error.
func Cond(se *stanza.Error, cond string, attrs ...string) *stanza.Error {
	se.Extra = xmlstream.New(NSErrors, cond, attrs...)
	return se
}

// Unsupported is the error for a feature not offered.
func Unsupported(se *stanza.Error, feature string) *stanza.Error {
	return Cond(se, "unsupported", "feature", feature)
}

// NodeRequired is the error for a request that names no node.
func NodeRequired() *stanza.Error {
	return Cond(&stanza.Error{Type: stanza.Modify, Condition: "not-acceptable"}, "nodeid-required")
}
