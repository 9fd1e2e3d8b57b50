// Package roster implements the roster (RFC 6121 §2, with versioning
// XEP-0237), presence subscriptions (§3, with pre-approval) and presence
// broadcast (§4) for local accounts. Subscription state is persisted, so a
// request to an offline user waits for their next login.
package roster

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/sealstore"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

const (
	NS            = "jabber:iq:roster"
	NSVer         = "urn:xmpp:features:rosterver"
	NSPreApproval = "urn:xmpp:features:pre-approval"
)

// Limits a user can not pass.
const (
	maxNameBytes  = 1024
	maxGroupBytes = 1024
	maxGroups     = 64
)

// Module is the roster and presence module.
type Module struct {
	host     module.Host
	store    *sealstore.Roster // sealed under each owner's key (issue 16)
	maxItems func() int        // read per change: a reload may change it
}

// New returns the module; maxItems gives the bound of a roster (0 for no
// bound).
func New(maxItems func() int) *Module { return &Module{maxItems: maxItems} }

func (*Module) Name() string { return "roster" }

// Store is the sealed roster the module works on, once started: what
// `parley import` and `parley export` read and write.
func (m *Module) Store() *sealstore.Roster { return m.store }

func (m *Module) Start(h module.Host) error {
	m.host = h
	m.store = sealstore.NewRoster(h.Store().Roster(), h.Vault())
	// A login unlocked the key: seal what came while the owner was away
	// (to the mail-drop key) or before sealing began, under the data key.
	h.Vault().OnUnlock(func(ctx context.Context, owner string) {
		m.logErr("resealing the roster of "+owner, m.store.Reseal(ctx, owner))
	})
	name := xmlstream.Name{Space: NS, Local: "query"}
	h.HandleIQ(module.Account, "get", name, m.get)
	h.HandleIQ(module.Account, "set", name, m.set)
	h.SetPresenceHandler(m.presence)
	h.SetRoster(api{m.store})
	h.OnSessionEnded(m.sessionEnded)
	h.AddStreamFeature(func(fc module.FeatureContext) *xmlstream.Element {
		if !fc.Authenticated {
			return nil
		}
		return xmlstream.New(NSVer, "ver")
	})
	h.AddStreamFeature(func(fc module.FeatureContext) *xmlstream.Element {
		if !fc.Authenticated {
			return nil
		}
		return xmlstream.New(NSPreApproval, "sub")
	})
	return nil
}

func itemElement(it storage.RosterItem) *xmlstream.Element {
	el := xmlstream.New(NS, "item", "jid", it.Contact, "subscription", it.Subscription)
	if it.Name != "" {
		el.SetAttr("name", it.Name)
	}
	if it.Ask {
		el.SetAttr("ask", "subscribe")
	}
	if it.Approved {
		el.SetAttr("approved", "true")
	}
	for _, g := range it.Groups {
		el.AddChild(xmlstream.New(NS, "group").AddText(g))
	}
	return el
}

// ownRoster refuses access to someone else's roster (RFC 6121 §2.1.5).
func ownRoster(iq module.IQ) error {
	if !iq.From.Bare().Equal(iq.To) {
		return stanza.Forbidden("only the owner may use a roster")
	}
	return nil
}

func (m *Module) get(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if err := ownRoster(iq); err != nil {
		return nil, err
	}
	owner := iq.To.String()
	items, ver, err := m.store.Items(ctx, owner)
	if err != nil {
		return nil, sealstore.ForClient(fmt.Errorf("roster get: %w", err))
	}
	for _, s := range m.host.Sessions(iq.To) {
		if s.JID().Equal(iq.From) {
			s.State().SetInterested()
		}
	}
	verStr := strconv.FormatInt(ver, 10)
	// XEP-0237: an up-to-date client gets an empty result; changes since
	// its version then arrive as pushes.
	if v, ok := iq.Payload.AttrNS("", "ver"); ok && v == verStr {
		return nil, nil
	}
	q := xmlstream.New(NS, "query", "ver", verStr)
	for _, it := range items {
		q.AddChild(itemElement(it))
	}
	return q, nil
}

func (m *Module) set(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if err := ownRoster(iq); err != nil {
		return nil, err
	}
	var item *xmlstream.Element
	n := 0
	for c := range iq.Payload.Elements() {
		if c.Name.Space == NS && c.Name.Local == "item" {
			item = c
			n++
		}
	}
	if n != 1 {
		return nil, stanza.BadRequest("a roster set carries exactly one item")
	}
	contact, err := jid.Parse(item.Attr("jid"))
	if err != nil || item.Attr("jid") == "" {
		return nil, stanza.JIDMalformed("the item's jid is not a valid JID")
	}
	contact = contact.Bare()
	if contact.Equal(iq.To) {
		return nil, stanza.NotAllowed("you cannot add yourself to your roster")
	}
	owner := iq.To
	switch item.Attr("subscription") {
	case "remove":
		return nil, m.remove(ctx, owner, contact)
	case "", "none", "to", "from", "both":
		// Clients may echo the attribute; only the server changes it.
	default:
		return nil, stanza.BadRequest("unknown subscription value")
	}
	name := item.Attr("name")
	if len(name) > maxNameBytes {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: "not-acceptable", Text: "the name is too long"}
	}
	var groups []string
	seen := map[string]bool{}
	for g := range item.Elements() {
		if g.Name.Space != NS || g.Name.Local != "group" {
			continue
		}
		t := g.Text()
		switch {
		case t == "":
			return nil, &stanza.Error{Type: stanza.Modify, Condition: "not-acceptable", Text: "empty group name"}
		case len(t) > maxGroupBytes:
			return nil, &stanza.Error{Type: stanza.Modify, Condition: "not-acceptable", Text: "group name too long"}
		case seen[t]:
			return nil, stanza.BadRequest("duplicate group")
		}
		seen[t] = true
		groups = append(groups, t)
	}
	if len(groups) > maxGroups {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: "not-acceptable", Text: "too many groups"}
	}
	// The state only: name and groups are replaced.
	it, err := m.store.State(ctx, owner.String(), contact.String())
	if errors.Is(err, storage.ErrNotFound) {
		it = storage.RosterItem{Contact: contact.String(), Subscription: "none"}
	} else if err != nil {
		return nil, fmt.Errorf("roster set: %w", err)
	}
	it.Name = name
	it.Groups = groups
	return nil, m.save(ctx, owner, it)
}

// save stores a whole item (the owner's roster set) and pushes it to the
// owner's interested resources.
func (m *Module) save(ctx context.Context, owner jid.JID, it storage.RosterItem) error {
	maxItems := m.maxItems()
	ver, err := m.store.Put(ctx, owner.String(), it, maxItems)
	if err := m.saveError(it.Contact, maxItems, err); err != nil {
		return err
	}
	m.noteReceiver(owner, it.Contact, it.Subscription)
	m.push(ctx, owner, itemElement(it), ver)
	return nil
}

// saveState stores the subscription state of it, which the server
// changes also while the owner is away, and leaves the sealed name and
// groups alone; the push carries them, read back while the owner is here.
func (m *Module) saveState(ctx context.Context, owner jid.JID, it storage.RosterItem) error {
	maxItems := m.maxItems()
	ver, err := m.store.SetState(ctx, owner.String(), it.Contact, it.Subscription, it.Ask, it.Approved, maxItems)
	if err := m.saveError(it.Contact, maxItems, err); err != nil {
		return err
	}
	m.noteReceiver(owner, it.Contact, it.Subscription)
	if !m.anyInterested(owner) {
		return nil
	}
	full, err := m.store.Item(ctx, owner.String(), it.Contact)
	if err != nil {
		// Sessions without the key is a moment at most (a login
		// between unlocking and binding); the next roster get has it.
		m.logErr("reading an item for a push", err)
		return nil
	}
	m.push(ctx, owner, itemElement(full), ver)
	return nil
}

func (m *Module) saveError(contact string, maxItems int, err error) error {
	if errors.Is(err, storage.ErrLimit) {
		return &stanza.Error{Type: stanza.Cancel, Condition: "not-allowed",
			Text: fmt.Sprintf("the roster is full (%d contacts at most)", maxItems)}
	}
	if err != nil {
		return fmt.Errorf("roster: saving %s: %w", contact, err)
	}
	return nil
}

func (m *Module) anyInterested(owner jid.JID) bool {
	for _, s := range m.host.Sessions(owner) {
		if s.State().Interested() {
			return true
		}
	}
	return false
}

func (m *Module) remove(ctx context.Context, owner, contact jid.JID) error {
	it, err := m.store.State(ctx, owner.String(), contact.String())
	if errors.Is(err, storage.ErrNotFound) {
		return stanza.ItemNotFound("no such contact in the roster")
	}
	if err != nil {
		return fmt.Errorf("roster remove: %w", err)
	}
	// RFC 6121 §2.5.2: removing a contact cancels both subscriptions.
	if it.Subscription == "to" || it.Subscription == "both" || it.Ask {
		m.sendSubscription(ctx, owner, contact, "unsubscribe")
	}
	if it.Subscription == "from" || it.Subscription == "both" {
		m.sendSubscription(ctx, owner, contact, "unsubscribed")
		m.sendUnavailableTo(ctx, owner, contact)
	}
	if err := m.store.DeletePending(ctx, owner.String(), contact.String()); err != nil {
		return fmt.Errorf("roster remove: %w", err)
	}
	ver, err := m.store.Delete(ctx, owner.String(), contact.String())
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("roster remove: %w", err)
	}
	m.noteReceiver(owner, contact.String(), "")
	m.push(ctx, owner, xmlstream.New(NS, "item", "jid", contact.String(), "subscription", "remove"), ver)
	return nil
}

// push sends a roster push (RFC 6121 §2.1.6) to every resource of owner
// that requested the roster.
func (m *Module) push(ctx context.Context, owner jid.JID, item *xmlstream.Element, ver int64) {
	for _, s := range m.host.Sessions(owner) {
		if !s.State().Interested() {
			continue
		}
		iq := xmlstream.New(stanza.NSClient, "iq", "type", "set", "id", "push"+strconv.FormatInt(ver, 10),
			"from", owner.String(), "to", s.JID().String())
		iq.AddChild(xmlstream.New(NS, "query", "ver", strconv.FormatInt(ver, 10)).AddChild(item.Copy()))
		s.Deliver(iq)
	}
}
