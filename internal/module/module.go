// Package module is the contract between the core and the features
// (XEPs) that plug into it. A feature lives in its own package under
// modules/, implements Module, and registers what it handles through the
// Host it is given. The core looks handlers up in maps and never imports
// a feature, so adding a XEP never touches the core.
package module

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"parley/internal/jid"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/vault"
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

// PresenceHandler takes every presence stanza the router sees: from a
// local session (outbound) and to a local account (inbound).
type PresenceHandler func(ctx context.Context, from, to jid.JID, el *xmlstream.Element)

// OutboundPresenceHook decorates an available or unavailable presence a
// local session sends, broadcast or directed, once, before it is copied
// to anyone (contacts, the account's own resources, a room): e.g. the
// avatar hash of XEP-0153 §4.1. el already carries the session's full
// JID as 'from'; the hook may add or replace children but must not keep
// el, which is stored as the session's presence afterwards.
type OutboundPresenceHook func(ctx context.Context, from jid.JID, el *xmlstream.Element)

// OfflineHandler is offered a message for a local account that has no
// available resource; it returns true when it kept the message for later.
type OfflineHandler func(ctx context.Context, to jid.JID, el *xmlstream.Element) (stored bool, err error)

// Filter may stop a stanza between two addresses before it is routed
// (XEP-0191 blocking). Outbound is true when from is a local account that
// sent it. A non-nil error is returned to the sender when that is allowed;
// stop with a nil error drops the stanza silently.
type Filter func(ctx context.Context, from, to jid.JID, el *xmlstream.Element, outbound bool) (stop bool, err *stanza.Error)

// MessageEvent is a message between a local account and anyone, seen by
// message hooks (archive, carbons).
type MessageEvent struct {
	From, To jid.JID
	Stanza   *xmlstream.Element
	// Outbound: sent by a local account, seen once before routing.
	// Inbound: arriving for a local account, seen once before delivery
	// (or offline storage); a hook may add elements, e.g. a stanza-id.
	Outbound bool
}

// MessageHook sees messages of type chat, normal (or none) and
// groupchat-less private traffic; errors and headlines are not passed.
type MessageHook func(ctx context.Context, m MessageEvent)

// IQResultHandler sees an IQ result or error addressed to a served
// domain or a local account, which answers nothing a client asked: only
// the server's own requests (e.g. a disco#info query for entity
// capabilities) get such answers. It returns true when it recognised the
// IQ (by its id and sender) as the answer to one of its requests.
type IQResultHandler func(ctx context.Context, from, to jid.JID, el *xmlstream.Element) (handled bool)

// ComponentHandler takes every stanza addressed to a service domain
// (e.g. conference.example.org) or to any JID at it. from has been
// checked by the stream it came from.
type ComponentHandler func(ctx context.Context, from, to jid.JID, el *xmlstream.Element)

// Component is a service on its own domain, listed in the server's
// disco#items.
type Component struct {
	Domain string
	Name   string // shown in disco#items
	// Subdomains: the handler takes the subdomains of Domain too (an
	// external component's, XEP-0114), unless one has its own handler.
	Subdomains bool
}

// SessionHook runs when a session is bound, or when it ends.
type SessionHook func(ctx context.Context, s session.Session)

// EventAvailable is emitted by the presence module when a session sends
// its initial available presence with a non-negative priority, the moment
// RFC 6121 and XEP-0160 choose to hand over stored messages.
const EventAvailable = "available"

// FeatureContext says which stream is asking for features.
type FeatureContext struct {
	Domain        string
	Authenticated bool
	Secure        bool // TLS is on
}

// StreamFeature returns a stream feature element for the stream, or nil.
type StreamFeature func(fc FeatureContext) *xmlstream.Element

// PreAuthIQ is an IQ from a stream that has not authenticated yet, such
// as an in-band registration (XEP-0077).
type PreAuthIQ struct {
	Domain  string // the domain the stream is for
	Addr    string // the client's IP address, for rate limits only
	Type    string // "get" or "set"
	Payload *xmlstream.Element
	Stanza  *xmlstream.Element
	// Stream keeps values across the stream's IQs before
	// authentication (an invite shown before registering, XEP-0401);
	// keys are of types private to the module. Handlers run on the
	// stream's own goroutine, one at a time.
	Stream map[any]any
}

// PreAuthIQHandler answers a PreAuthIQ like an IQHandler.
type PreAuthIQHandler func(ctx context.Context, iq PreAuthIQ) (*xmlstream.Element, error)

// Accounts manages accounts for modules (registration, password change).
type Accounts interface {
	Create(ctx context.Context, bare jid.JID, password string) error
	SetPassword(ctx context.Context, bare jid.JID, password string) error
	// ChangePassword is SetPassword telling whether the data sealed
	// for the account was lost: its key was not held (the user is not
	// logged in), so the account got a new one (an admin reset).
	ChangePassword(ctx context.Context, bare jid.JID, password string) (sealedLost bool, err error)
	Delete(ctx context.Context, bare jid.JID) error
	// SetDisabled disables or enables an account (XEP-0133); a disabled
	// account cannot log in. Disabled reports the flag.
	SetDisabled(ctx context.Context, bare jid.JID, disabled bool) error
	Disabled(ctx context.Context, bare jid.JID) (bool, error)
}

// DiscoNode answers disco#info and disco#items (XEP-0030) for one node
// of a served domain, such as the ad-hoc commands list (XEP-0050). A nil
// handler answers item-not-found.
type DiscoNode struct {
	Info, Items IQHandler
}

// Host is what a module sees of the server.
type Host interface {
	// HandleIQ registers h for IQs of type typ ("get" or "set") whose
	// payload has the given name, addressed to target. Registering the
	// same key twice is a programming error and panics at start-up.
	HandleIQ(target Target, typ string, payload xmlstream.Name, h IQHandler)
	// AddFeature advertises a disco#info feature for target. Only call it
	// for what the module really implements.
	AddFeature(target Target, feature string)
	// Features lists what all modules advertised for target, sorted.
	Features(target Target) []string
	// AddIdentity adds a disco#info identity of the server.
	AddIdentity(id Identity)
	Identities() []Identity
	// HandleDiscoNode registers the answers for a node of the server's
	// disco (registering a node twice panics); DiscoNode finds them.
	HandleDiscoNode(node string, n DiscoNode)
	DiscoNode(node string) (DiscoNode, bool)
	// AddInfoForm adds an extended information form (XEP-0128) to the
	// server's disco#info, e.g. contact addresses (XEP-0157).
	AddInfoForm(form *xmlstream.Element)
	InfoForms() []*xmlstream.Element
	// SetPresenceHandler and SetOfflineHandler install the one handler of
	// each kind; a second call panics.
	SetPresenceHandler(h PresenceHandler)
	SetOfflineHandler(h OfflineHandler)
	// SetRoster installs the roster module's view of rosters (a second
	// call panics); Roster returns it, or NoRoster when no module set
	// one. Modules call Roster when they use it, not at Start: modules
	// start in any order.
	SetRoster(r Roster)
	Roster() Roster
	AddFilter(f Filter)
	// OnOutboundPresence adds a hook the presence module runs, through
	// RunOutboundPresence, on the presence a session sends. Filters are
	// the wrong place to edit presence: the router never filters what an
	// account sends to itself, so the account's own resources would not
	// see the change.
	OnOutboundPresence(h OutboundPresenceHook)
	RunOutboundPresence(ctx context.Context, from jid.JID, el *xmlstream.Element)
	OnMessage(h MessageHook)
	OnSessionBound(h SessionHook)
	// OnIQResult adds a handler for IQ results and errors addressed to
	// the server or an account; handlers are tried in order until one
	// handles the IQ, and unhandled ones are dropped.
	OnIQResult(h IQResultHandler)
	OnSessionEnded(h SessionHook)
	AddStreamFeature(f StreamFeature)
	// AddComponent routes every stanza for domain (and JIDs at it) to h.
	// The domain must not be one of the served hosts.
	AddComponent(c Component, h ComponentHandler)
	Components() []Component
	// HandlePreAuthIQ lets a module answer one kind of IQ before
	// authentication (only after TLS); anything else is refused.
	HandlePreAuthIQ(payload xmlstream.Name, h PreAuthIQHandler)
	// HandleHTTP serves h on the server's HTTPS listener ([listen] https)
	// for requests matching pattern (http.ServeMux syntax). Registering a
	// pattern twice panics at start-up.
	HandleHTTP(pattern string, h http.Handler)
	// HTTPSAddr is the address the HTTPS listener is bound to, nil while
	// it is not listening (before Listen, or when it is off). Modules read
	// it when they build a URL, not at Start: with port 0 the port is only
	// known once the listener is open.
	HTTPSAddr() net.Addr

	// IsLocal reports whether domain is served by this process.
	IsLocal(domain string) bool
	// Route sends a stanza into the routing core as if it had arrived
	// from its 'from' address (which must be set).
	Route(ctx context.Context, el *xmlstream.Element)
	// Deliver routes a stanza with 'from' and 'to' set past the presence
	// handler: the presence module uses it for what it decided to send.
	Deliver(ctx context.Context, el *xmlstream.Element)
	// Filtered runs the filters (blocking) on a stanza a module is about
	// to hand to a local session itself, and reports whether it must be
	// dropped.
	Filtered(ctx context.Context, from, to jid.JID, el *xmlstream.Element) bool
	// OnEvent and Emit let modules tell each other about named events of
	// a session, e.g. EventAvailable.
	OnEvent(name string, h SessionHook)
	Emit(ctx context.Context, name string, s session.Session)
	// Sessions returns the bound sessions of a local account.
	Sessions(bare jid.JID) []session.Session
	// AllSessions returns every bound session (admin commands).
	AllSessions() []session.Session
	// Key returns a 32-byte key for purpose, derived from the server's
	// secret (kept outside the database), e.g. to seal stored messages.
	Key(purpose string) []byte
	// Every runs fn now and then every period on a goroutine the host
	// owns, until the server stops: fn's context is cancelled then and
	// the server waits for the run in progress (retention clean-ups).
	Every(period time.Duration, fn func(ctx context.Context))
	Store() storage.Store
	Accounts() Accounts
	// Vault seals a user's data under keys the server holds only while
	// the user is logged in (and to their mail-drop key while away).
	Vault() *vault.Vault
	Logger() *slog.Logger
}

// Module is one feature. Start registers its handlers; it runs once,
// before any listener accepts a connection.
type Module interface {
	Name() string
	Start(h Host) error
}

// Stopper is implemented by modules that own goroutines or resources
// (a write-behind buffer); Stop must return once they are gone. Periodic
// jobs need none: the host stops what Every started.
type Stopper interface {
	Stop(ctx context.Context) error
}
