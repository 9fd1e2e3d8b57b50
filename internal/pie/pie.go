// Package pie reads and writes XEP-0227 (Portable Import/Export Format,
// urn:xmpp:pie:0) files, the format Prosody's prosody-migrator and
// ejabberd's export_piefxis write, so accounts can move between servers
// with their passwords (as SCRAM verifiers), rosters, vCards, private XML,
// PEP nodes, offline messages, archives and block lists.
//
// The package only translates between XML and the User value; it knows
// nothing about parley's storage. cmd/parley writes a User through the
// modules that own each kind of data.
package pie

import (
	"time"

	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// Namespaces of the format and of the payloads it carries.
const (
	NS        = "urn:xmpp:pie:0"
	NSOld     = "http://www.xmpp.org/extensions/xep-0227.html#ns" // what older ejabberd writes
	NSScram   = NS + "#scram"
	NSMAM     = NS + "#mam"
	NSXInc    = "http://www.w3.org/2001/XInclude"
	NSRoster  = "jabber:iq:roster"
	NSVCard   = "vcard-temp"
	NSPrivate = "jabber:iq:private"
	NSPrivacy = "jabber:iq:privacy"
	NSBlock   = "urn:xmpp:blocking"
	NSPubSub  = "http://jabber.org/protocol/pubsub"
	NSOwner   = "http://jabber.org/protocol/pubsub#owner"
	NSData    = "jabber:x:data"
	NSMAM2    = "urn:xmpp:mam:2"
	NSForward = "urn:xmpp:forward:0"
	NSDelay   = "urn:xmpp:delay"
	NSClient  = "jabber:client"
)

// User is everything a file says about one account.
type User struct {
	JID string // bare JID, normalised

	// Password is the plaintext password where the old server kept one;
	// Credentials are SCRAM verifiers (Hash "SHA-1", "SHA-256", ...).
	Password    string
	Credentials []storage.Credential

	Roster  []storage.RosterItem
	Pending []string // bare JIDs whose subscription request awaits an answer

	VCard   *xmlstream.Element   // vcard-temp vCard, nil when none
	Private []*xmlstream.Element // the children of the jabber:iq:private query, one per namespace
	PEP     []Node
	Offline []*xmlstream.Element // message stanzas in jabber:client, oldest first
	Archive []ArchiveItem        // oldest first
	Blocked []string             // JIDs, normalised, no duplicates

	// Line and Column locate the <user/> element in its file.
	Line, Column int
}

// Node is a PEP node of the user.
type Node struct {
	Name string
	// Config is the node's configuration form (jabber:x:data), nil when
	// the file has none.
	Config *xmlstream.Element
	Items  []Item // oldest first
}

// Item is a published PEP item.
type Item struct {
	ID      string
	Payload *xmlstream.Element
}

// ArchiveItem is one message of the user's archive.
type ArchiveItem struct {
	ID      string    // the archive id (stanza-id)
	Stamp   time.Time // when it was archived, UTC
	Message *xmlstream.Element
}
