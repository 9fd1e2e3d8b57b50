// Package module is the contract between the core and the features
// (XEPs) that plug into it. A feature lives in its own package under
// modules/, implements Module, and registers what it handles through the
// Host it is given. The core looks handlers up in maps and never imports
// a feature, so adding a XEP never touches the core.
package module

import (
	"context"
	"log/slog"

	"parley/internal/jid"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// Target says whom an IQ is addressed to.
type Target int

const (
	// Server: the IQ is addressed to a served domain itself
	// (e.g. disco#info on "example.org", ping to the server).
	Server Target = iota
	// Account: the IQ is addressed to a local account's bare JID, or has
	// no 'to' at all, which RFC 6120 §10.3.3 treats as addressed to the
	// sender's own account (roster, vCard, private storage...).
	Account
)

// IQ is a request handed to a handler. From is always the full, verified
// address of the sender; To is the effective recipient (for Account IQs
// without a 'to', the sender's bare JID).
type IQ struct {
	From    jid.JID
	To      jid.JID
	ID      string
	Type    string // "get" or "set"
	Payload *xmlstream.Element
	Stanza  *xmlstream.Element
}

// IQHandler answers one IQ request. It returns the payload of the result
// (nil for an empty result) or an error; a *stanza.Error is sent as is,
// any other error as internal-server-error.
type IQHandler func(ctx context.Context, iq IQ) (*xmlstream.Element, error)

// Identity is a disco#info identity (XEP-0030).
type Identity struct {
	Category, Type, Name string
}

// Host is what a module sees of the server.
type Host interface {
	// HandleIQ registers h for IQs of type typ ("get" or "set") whose
	// payload has the given name, addressed to target. Registering the
	// same key twice is a programming error and panics at start-up.
	HandleIQ(target Target, typ string, payload xmlstream.Name, h IQHandler)
	// AddFeature advertises a disco#info feature of the server for
	// target. Only call it for what the module really implements.
	AddFeature(target Target, feature string)
	// Features lists what all modules advertised for target, sorted.
	Features(target Target) []string
	// AddIdentity adds a disco#info identity of the server.
	AddIdentity(id Identity)
	Identities() []Identity
	// IsLocal reports whether domain is served by this process.
	IsLocal(domain string) bool
	// Route sends a stanza from the server into the routing core, as if
	// it had arrived from a session of its 'from' address.
	Route(ctx context.Context, el *xmlstream.Element)
	Store() storage.Store
	Logger() *slog.Logger
}

// Module is one feature. Start registers its handlers; it runs once,
// before any listener accepts a connection.
type Module interface {
	Name() string
	Start(h Host) error
}

// Stopper is implemented by modules that own goroutines or resources
// (periodic jobs such as retention); Stop must return once they are gone.
type Stopper interface {
	Stop(ctx context.Context) error
}
