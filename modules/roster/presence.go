package roster

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/vault"
	"parley/internal/xmlstream"
)

// receiversKey keeps in a session's state the bare JIDs that receive the
// user's presence, one per line, as read at the session's last broadcast.
// A session's state is replicated to the other nodes of a cluster, in
// memory only, while the session lives; the roster itself is sealed under
// the user's key, which only the session's own node holds.
type receiversKey struct{}

// keepReceivers returns the contacts of items that receive the owner's
// presence and records them in s's state when they changed.
func keepReceivers(s session.Session, items []storage.RosterItem) []jid.JID {
	var out []jid.JID
	var b strings.Builder
	for _, it := range items {
		if receivesPresence(it) {
			out = append(out, jid.MustParse(it.Contact))
			b.WriteString(it.Contact)
			b.WriteByte('\n')
		}
	}
	if old, ok := s.State().Value(receiversKey{}).(string); !ok || old != b.String() {
		s.State().SetValue(receiversKey{}, b.String())
	}
	return out
}

// noteReceiver applies a changed subscription (sub "" for a removed
// contact) to what keepReceivers recorded in the states of owner's
// sessions, so one approved after a session's first presence is there too.
func (m *Module) noteReceiver(owner jid.JID, contact, sub string) {
	for _, s := range m.host.Sessions(owner) {
		updateReceivers(s, contact, sub)
	}
}

func updateReceivers(s session.Session, contact, sub string) {
	old, ok := s.State().Value(receiversKey{}).(string)
	if !ok {
		return
	}
	var b strings.Builder
	for line := range strings.SplitSeq(old, "\n") {
		if line != "" && line != contact {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	if sub == storage.SubFrom || sub == storage.SubBoth {
		b.WriteString(contact)
		b.WriteByte('\n')
	}
	if b.String() != old {
		s.State().SetValue(receiversKey{}, b.String())
	}
}

// recordedReceivers reads what keepReceivers recorded.
func recordedReceivers(s session.Session) []jid.JID {
	v, _ := s.State().Value(receiversKey{}).(string)
	var out []jid.JID
	for line := range strings.SplitSeq(v, "\n") {
		if j, err := jid.Parse(line); err == nil && line != "" {
			out = append(out, j)
		}
	}
	return out
}

// presence is the router's presence handler. A stanza from one of our
// sessions is outbound; anything else is inbound to a local account.
func (m *Module) presence(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	if s := m.sessionOf(from); s != nil {
		m.outbound(ctx, s, to, el)
		return
	}
	if to.IsZero() || to.Local() == "" || !m.host.IsLocal(to.Domain()) {
		return
	}
	m.inbound(ctx, from, to, el)
}

func (m *Module) sessionOf(full jid.JID) session.Session {
	if full.Resource() == "" || !m.host.IsLocal(full.Domain()) {
		return nil
	}
	for _, s := range m.host.Sessions(full.Bare()) {
		if s.JID().Equal(full) {
			return s
		}
	}
	return nil
}

func (m *Module) outbound(ctx context.Context, s session.Session, to jid.JID, el *xmlstream.Element) {
	typ := el.Attr("type")
	switch typ {
	case "", "unavailable":
		if to.IsZero() {
			m.broadcast(ctx, s, el)
			return
		}
		m.directed(ctx, s, to, el)
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		if to.IsZero() || to.Local() == "" {
			m.bounce(ctx, s.JID(), el, stanza.BadRequest("a subscription request needs an account address in 'to'"))
			return
		}
		m.outboundSubscription(ctx, s.JID().Bare(), to.Bare(), typ, el)
	case "probe":
		if !to.IsZero() {
			m.answerProbe(ctx, s.JID(), to.Bare())
		}
	case "error":
		if !to.IsZero() {
			m.host.Deliver(ctx, el)
		}
	default:
		m.bounce(ctx, s.JID(), el, stanza.BadRequest("unknown presence type"))
	}
}

func (m *Module) bounce(ctx context.Context, to jid.JID, el *xmlstream.Element, se *stanza.Error) {
	r := stanza.ErrorReply(el, se)
	if r == nil {
		return
	}
	if r.Attr("from") == "" {
		r.SetAttr("from", to.Domain())
	}
	r.SetAttr("to", to.String())
	m.host.Deliver(ctx, r)
}

// priority reads <priority/>; RFC 6121 §4.7.2.3 allows -128..127, and a
// missing or broken value counts as 0.
func priority(el *xmlstream.Element) int {
	p := el.Child(el.Name.Space, "priority")
	if p == nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(p.Text()))
	if err != nil {
		return 0
	}
	return min(max(n, -128), 127)
}

// broadcast handles presence without 'to' (RFC 6121 §4.2, §4.4, §4.5):
// it goes to the contacts subscribed to the user and to the user's own
// available resources, once the outbound presence hooks have decorated
// it; initial presence also probes the contacts the user
// is subscribed to and hands over waiting subscription requests.
func (m *Module) broadcast(ctx context.Context, s session.Session, el *xmlstream.Element) {
	full := s.JID()
	owner := full.Bare()
	el.SetAttr("from", full.String())
	el.RemoveAttr("to")
	var directed []jid.JID
	initial := false
	if el.Attr("type") == "unavailable" {
		var was bool
		was, directed = s.State().SetUnavailable()
		if !was {
			return
		}
		m.host.RunOutboundPresence(ctx, full, el)
	} else {
		// Decorated before it is kept: probes and later resources get
		// the stored copy.
		m.host.RunOutboundPresence(ctx, full, el)
		initial = s.State().SetAvailable(el.Copy(), priority(el))
	}
	// The roster is read only now that the session's new state is
	// visible: a subscription change handled meanwhile on another
	// session's goroutine (an approval, say) saves the item before it
	// looks for available resources, so it either is in what we read
	// here or finds this session available and delivers to it itself.
	// Read before, the change could fall between the two and reach no
	// one: no probe from us, no delivery from it.
	items, _, err := m.store.Items(ctx, owner.String())
	var receivers []jid.JID
	switch {
	case err == nil:
		receivers = keepReceivers(s, items)
	case errors.Is(err, vault.ErrLocked):
		// Another cluster node ending this session for its dead node
		// holds no key to the sealed roster: it has the receivers the
		// session's own node recorded in the replicated state.
		receivers = recordedReceivers(s)
	default:
		m.host.Logger().Error("roster: reading the roster for a broadcast failed", "err", err)
		return
	}
	for _, j := range receivers {
		m.sendPresenceTo(ctx, el, j)
	}
	for _, j := range directed {
		m.sendPresenceTo(ctx, el, j)
	}
	for _, own := range m.host.Sessions(owner) {
		if avail, _ := own.State().Available(); avail || own == s {
			c := el.Copy()
			c.SetAttr("to", own.JID().String())
			own.Deliver(c)
		}
	}
	if !initial {
		return
	}
	// Probes: the presence of everyone the user is subscribed to, and of
	// the user's other resources, for the new session.
	for _, it := range items {
		if sendsPresence(it) {
			m.presencesOf(ctx, jid.MustParse(it.Contact), s)
		}
	}
	for _, own := range m.host.Sessions(owner) {
		if own == s {
			continue
		}
		if p := own.State().Presence(); p != nil {
			c := p.Copy()
			c.SetAttr("to", full.String())
			s.Deliver(c)
		}
	}
	m.deliverPending(ctx, s)
	if _, prio := s.State().Available(); prio >= 0 {
		m.host.Emit(ctx, module.EventAvailable, s)
	}
}

// sendPresenceTo sends a copy of a broadcast to one address: a local
// account's available resources directly, anything else through the
// router (which says so when the domain cannot be reached).
func (m *Module) sendPresenceTo(ctx context.Context, el *xmlstream.Element, to jid.JID) {
	c := el.Copy()
	c.SetAttr("to", to.String())
	if m.host.IsLocal(to.Domain()) {
		m.deliverLocal(ctx, to, c)
		return
	}
	m.host.Deliver(ctx, c)
}

// deliverLocal hands presence to a local address: a full JID gets it if
// that session is bound, a bare JID on every available resource. Filters
// (blocking) apply as they would in the router.
func (m *Module) deliverLocal(ctx context.Context, to jid.JID, el *xmlstream.Element) {
	if from, err := jid.Parse(el.Attr("from")); err == nil && m.host.Filtered(ctx, from, to, el) {
		return
	}
	for _, s := range m.host.Sessions(to.Bare()) {
		if to.Resource() != "" {
			if s.JID().Equal(to) {
				s.Deliver(el)
			}
			continue
		}
		if avail, _ := s.State().Available(); avail {
			s.Deliver(el)
		}
	}
}

// presencesOf gets s the current presence of each available resource of
// contact: a local contact's on the spot (a probe answered at once), a
// remote one's by probing its server.
func (m *Module) presencesOf(ctx context.Context, contact jid.JID, s session.Session) {
	if !m.host.IsLocal(contact.Domain()) {
		// The contact's own server answers, over federation, to the
		// user's bare JID (RFC 6121 §4.3.1).
		m.host.Deliver(ctx, xmlstream.New(stanza.NSClient, "presence", "type", "probe", "from", s.JID().Bare().String(), "to", contact.String()))
		return
	}
	for _, cs := range m.host.Sessions(contact) {
		if p := cs.State().Presence(); p != nil {
			c := p.Copy()
			c.SetAttr("to", s.JID().String())
			if !m.host.Filtered(ctx, cs.JID(), s.JID(), c) {
				s.Deliver(c)
			}
		}
	}
}

func (m *Module) directed(ctx context.Context, s session.Session, to jid.JID, el *xmlstream.Element) {
	el.SetAttr("from", s.JID().String())
	if el.Attr("type") == "unavailable" {
		s.State().RemoveDirected(to)
	} else {
		s.State().AddDirected(to)
	}
	m.host.RunOutboundPresence(ctx, s.JID(), el)
	if m.host.IsLocal(to.Domain()) && to.Local() != "" {
		m.deliverLocal(ctx, to, el)
		return
	}
	m.host.Deliver(ctx, el)
}

// answerProbe sends prober the presence of the local account probed, if
// prober is subscribed to it (RFC 6121 §4.3.2).
func (m *Module) answerProbe(ctx context.Context, prober, probed jid.JID) {
	if !m.host.IsLocal(probed.Domain()) || probed.Local() == "" {
		return
	}
	it, err := m.store.State(ctx, probed.String(), prober.Bare().String())
	if err != nil || !receivesPresence(it) {
		return
	}
	for _, cs := range m.host.Sessions(probed) {
		if p := cs.State().Presence(); p != nil {
			// A remote prober's server gets the answer over federation.
			m.sendPresenceTo(ctx, p, prober)
		}
	}
}

// inbound handles presence arriving for a local account.
func (m *Module) inbound(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	switch typ := el.Attr("type"); typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		m.inboundSubscription(ctx, from.Bare(), to.Bare(), typ, el)
	case "probe":
		m.answerProbe(ctx, from, to.Bare())
	default:
		m.deliverLocal(ctx, to, el)
	}
}

func (m *Module) sessionEnded(ctx context.Context, s session.Session) {
	if avail, _ := s.State().Available(); !avail {
		return
	}
	el := xmlstream.New(stanza.NSClient, "presence", "type", "unavailable", "from", s.JID().String())
	m.broadcast(ctx, s, el)
}

func (m *Module) deliverPending(ctx context.Context, s session.Session) {
	pending, err := m.store.Pending(ctx, s.JID().Bare().String())
	if err != nil {
		m.host.Logger().Error("roster: reading pending subscription requests failed", "err", err)
		return
	}
	for _, p := range pending {
		el, err := xmlstream.ParseElement(p.Stanza, stanza.NSClient)
		if err != nil {
			m.host.Logger().Error("roster: a stored subscription request is damaged", "err", err)
			continue
		}
		s.Deliver(el)
	}
}

// item returns the subscription state of contact in owner's roster (no
// name, no groups: they are sealed while the owner is away), or a fresh
// item with subscription none (exists reports which).
func (m *Module) item(ctx context.Context, owner, contact jid.JID) (it storage.RosterItem, exists bool, err error) {
	it, err = m.store.State(ctx, owner.String(), contact.String())
	if errors.Is(err, storage.ErrNotFound) {
		return storage.RosterItem{Contact: contact.String(), Subscription: "none"}, false, nil
	}
	return it, err == nil, err
}

// subscriptionStanza builds a subscription presence between bare JIDs.
func subscriptionStanza(from, to jid.JID, typ string) *xmlstream.Element {
	return xmlstream.New(stanza.NSClient, "presence", "from", from.String(), "to", to.String(), "type", typ)
}

// sendSubscription sends a subscription state change the server decided on.
func (m *Module) sendSubscription(ctx context.Context, from, to jid.JID, typ string) {
	m.routeSubscription(ctx, subscriptionStanza(from, to, typ))
}

// routeSubscription takes a subscription stanza to the contact's side:
// for a local contact that is our own inbound processing.
func (m *Module) routeSubscription(ctx context.Context, el *xmlstream.Element) {
	from := jid.MustParse(el.Attr("from"))
	to := jid.MustParse(el.Attr("to"))
	if m.host.IsLocal(to.Domain()) {
		m.inboundSubscription(ctx, from, to, el.Attr("type"), el)
		return
	}
	m.host.Deliver(ctx, el)
}

// sendAvailableTo sends the presence of each available resource of owner
// to contact, e.g. right after owner approved contact's subscription.
func (m *Module) sendAvailableTo(ctx context.Context, owner, contact jid.JID) {
	for _, s := range m.host.Sessions(owner) {
		if p := s.State().Presence(); p != nil {
			m.sendPresenceTo(ctx, p, contact)
		}
	}
}

// sendUnavailableTo tells contact that each of owner's resources is gone
// for it (after a subscription was cancelled).
func (m *Module) sendUnavailableTo(ctx context.Context, owner, contact jid.JID) {
	for _, s := range m.host.Sessions(owner) {
		if avail, _ := s.State().Available(); avail {
			el := xmlstream.New(stanza.NSClient, "presence", "type", "unavailable", "from", s.JID().String())
			m.sendPresenceTo(ctx, el, contact)
		}
	}
}

func (m *Module) logErr(what string, err error) {
	if err != nil {
		m.host.Logger().Error("roster: "+what, "err", err)
	}
}

// outboundSubscription applies the user's side of RFC 6121 §3 for a
// subscription stanza the user sent, then routes it when the RFC says so.
func (m *Module) outboundSubscription(ctx context.Context, user, contact jid.JID, typ string, el *xmlstream.Element) {
	// §3.1.2: the server stamps the bare JID on subscription stanzas.
	el.SetAttr("from", user.String())
	el.SetAttr("to", contact.String())
	it, _, err := m.item(ctx, user, contact)
	if err != nil {
		m.logErr("reading a roster item", err)
		return
	}
	switch typ {
	case "subscribe":
		if it.Subscription != "to" && it.Subscription != "both" && !it.Ask {
			it.Ask = true
			if err := m.saveState(ctx, user, it); err != nil {
				m.bounce(ctx, user, el, stanza.AsError(err))
				return
			}
		}
		m.routeSubscription(ctx, el)
	case "subscribed":
		pending, err := m.hasPending(ctx, user, contact)
		if err != nil {
			m.logErr("reading pending requests", err)
			return
		}
		switch {
		case pending:
			m.logErr("deleting a pending request", m.store.DeletePending(ctx, user.String(), contact.String()))
			it.Subscription = map[string]string{"none": "from", "to": "both"}[it.Subscription]
			if it.Subscription == "" {
				return
			}
			it.Approved = false
			if err := m.saveState(ctx, user, it); err != nil {
				m.bounce(ctx, user, el, stanza.AsError(err))
				return
			}
			m.routeSubscription(ctx, el)
			m.sendAvailableTo(ctx, user, contact)
		case (it.Subscription == "none" || it.Subscription == "to") && !it.Approved:
			// Pre-approval (§3.4): remembered, not routed.
			it.Approved = true
			if err := m.saveState(ctx, user, it); err != nil {
				m.bounce(ctx, user, el, stanza.AsError(err))
			}
		}
	case "unsubscribe":
		if it.Subscription == "to" || it.Subscription == "both" || it.Ask {
			it.Subscription = map[string]string{"to": "none", "both": "from", "none": "none", "from": "from"}[it.Subscription]
			it.Ask = false
			m.logErr("saving a roster item", m.saveState(ctx, user, it))
		}
		m.routeSubscription(ctx, el)
	case "unsubscribed":
		pending, err := m.hasPending(ctx, user, contact)
		if err != nil {
			m.logErr("reading pending requests", err)
			return
		}
		if pending {
			m.logErr("deleting a pending request", m.store.DeletePending(ctx, user.String(), contact.String()))
		}
		switch {
		case it.Subscription == "from" || it.Subscription == "both":
			it.Subscription = map[string]string{"from": "none", "both": "to"}[it.Subscription]
			it.Approved = false
			m.logErr("saving a roster item", m.saveState(ctx, user, it))
			m.routeSubscription(ctx, el)
			m.sendUnavailableTo(ctx, user, contact)
		case it.Approved:
			it.Approved = false
			m.logErr("saving a roster item", m.saveState(ctx, user, it))
		case pending:
			m.routeSubscription(ctx, el)
		}
	}
}

func (m *Module) hasPending(ctx context.Context, user, contact jid.JID) (bool, error) {
	return m.store.HasPending(ctx, user.String(), contact.String())
}

// inboundSubscription applies the contact's side of RFC 6121 §3 for a
// subscription stanza from `from` to the local account `user`.
func (m *Module) inboundSubscription(ctx context.Context, from, user jid.JID, typ string, el *xmlstream.Element) {
	if exists, err := m.accountExists(ctx, user); err != nil || !exists {
		if err == nil && typ == "subscribe" {
			// §3.1.3: a request to nobody is answered as refused.
			m.host.Deliver(ctx, subscriptionStanza(user, from, "unsubscribed"))
		}
		return
	}
	it, exists, err := m.item(ctx, user, from)
	if err != nil {
		m.logErr("reading a roster item", err)
		return
	}
	switch typ {
	case "subscribe":
		switch {
		case exists && (it.Subscription == "from" || it.Subscription == "both"):
			m.sendSubscription(ctx, user, from, "subscribed")
		case exists && it.Approved:
			it.Subscription = map[string]string{"none": "from", "to": "both"}[it.Subscription]
			it.Approved = false
			m.logErr("saving a roster item", m.saveState(ctx, user, it))
			m.sendSubscription(ctx, user, from, "subscribed")
			m.sendAvailableTo(ctx, user, from)
		default:
			// Kept until the user answers, also across logins (§3.1.3).
			m.logErr("storing a subscription request", m.store.AddPending(ctx, user.String(),
				storage.Pending{Contact: from.String(), Stanza: el.Append(nil, stanza.NSClient)}))
			m.deliverLocal(ctx, user, el)
		}
	case "subscribed":
		if exists && it.Ask {
			it.Subscription = map[string]string{"none": "to", "from": "both", "to": "to", "both": "both"}[it.Subscription]
			it.Ask = false
			m.logErr("saving a roster item", m.saveState(ctx, user, it))
			m.deliverLocal(ctx, user, el)
		}
	case "unsubscribe":
		pending, _ := m.hasPending(ctx, user, from)
		if pending {
			m.logErr("deleting a pending request", m.store.DeletePending(ctx, user.String(), from.String()))
		}
		if exists && (it.Subscription == "from" || it.Subscription == "both") {
			it.Subscription = map[string]string{"from": "none", "both": "to"}[it.Subscription]
			it.Approved = false
			m.logErr("saving a roster item", m.saveState(ctx, user, it))
			m.deliverLocal(ctx, user, el)
		} else if pending {
			m.deliverLocal(ctx, user, el)
		}
	case "unsubscribed":
		if exists && (it.Subscription == "to" || it.Subscription == "both" || it.Ask) {
			it.Subscription = map[string]string{"to": "none", "both": "from", "none": "none", "from": "from"}[it.Subscription]
			it.Ask = false
			m.logErr("saving a roster item", m.saveState(ctx, user, it))
			m.deliverLocal(ctx, user, el)
		}
	}
}

func (m *Module) accountExists(ctx context.Context, bare jid.JID) (bool, error) {
	_, err := m.host.Store().Users().Get(ctx, bare.String())
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
