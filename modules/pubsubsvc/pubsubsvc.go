// Package pubsubsvc is the publish-subscribe service (XEP-0060) on its
// own domains, e.g. pubsub.example.org: the second front door of the
// engine in modules/internal/pubsub, PEP (modules/pep) being the first.
// Any local user may create nodes there and owns them; owners configure
// them, manage affiliations and subscriptions, and approve subscribers
// to authorize nodes. Blogs' comment nodes (XEP-0277, XEP-0472) live
// here.
package pubsubsvc

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/pubsub"
)

const (
	NS       = pubsub.NS
	NSOwner  = pubsub.NSOwner
	NSEvent  = pubsub.NSEvent
	nsInfo   = stanza.NSDiscoInf
	nsItems  = stanza.NSDiscoIt
	nsSocial = "urn:xmpp:pubsub-social-feed:1"
)

// Options are the service's settings.
type Options struct {
	Domains []string // the service domains; one module serves them all
	// MaxNodesPerUser bounds the nodes one user owns on a service
	// (0: no limit).
	MaxNodesPerUser int
	// MaxItems is what pubsub#max_items "max" means, and the most any
	// node keeps.
	MaxItems int
	// MaxItemBytes bounds one item's payload.
	MaxItemBytes int
	// MaxSubscriptions bounds the subscriptions to one node.
	MaxSubscriptions int
	// MaxBytesPerUser bounds what the items of the nodes one user owns
	// on a service take together, as stored (0: no limit).
	MaxBytesPerUser int64
}

// Defaults fills in what o leaves at zero.
func (o Options) withDefaults() Options {
	if o.MaxItems <= 0 || o.MaxItems > storage.MaxPubSubItems {
		o.MaxItems = 1000
	}
	if o.MaxItemBytes <= 0 {
		o.MaxItemBytes = 256 << 10
	}
	if o.MaxSubscriptions <= 0 {
		o.MaxSubscriptions = 10000
	}
	return o
}

// models are the access models the service offers.
var models = pubsub.Models{pubsub.AccessOpen, pubsub.AccessPresence, pubsub.AccessRoster, pubsub.AccessWhitelist, pubsub.AccessAuthorize}

// Features are what the service advertises (XEP-0060 §10).
var Features = []string{
	nsInfo, nsItems, nsSocial, NS,
	NS + "#access-authorize", NS + "#access-open", NS + "#access-presence", NS + "#access-roster", NS + "#access-whitelist",
	NS + "#auto-create", NS + "#config-node", NS + "#create-and-configure", NS + "#create-nodes", NS + "#delete-items",
	NS + "#delete-nodes", NS + "#instant-nodes", NS + "#item-ids", NS + "#last-published",
	NS + "#manage-affiliations", NS + "#manage-subscriptions", NS + "#member-affiliation", NS + "#meta-data",
	NS + "#modify-affiliations", NS + "#multi-items", NS + "#outcast-affiliation", NS + "#persistent-items",
	NS + "#publish", NS + "#publish-only-affiliation", NS + "#publish-options", NS + "#publisher-affiliation",
	NS + "#purge-nodes", NS + "#retract-items", NS + "#retrieve-affiliations", NS + "#retrieve-default", NS + "#retrieve-default-sub",
	NS + "#retrieve-items", NS + "#retrieve-subscriptions", NS + "#subscribe", NS + "#subscription-options",
	NS + "#config-node-max",
}

// Module is the pubsub service.
type Module struct {
	opts  Options
	host  module.Host
	ps    storage.PubSub
	now   func() time.Time
	locks [64]sync.Mutex // see lock

	mu sync.Mutex
	// onPresence are the nodes ("service\x00node") whose subscribers
	// get the last item when they become available
	// (on_sub_and_presence): few, so a login looks at them only.
	onPresence map[string]bool
	// owned maps "service\x00owner" to the nodes that owner owns there,
	// and owners each node to its owners: what the quotas count,
	// without reading every node.
	owned  map[string]map[string]bool
	owners map[string][]string
}

func New(o Options) *Module {
	return &Module{opts: o.withDefaults(), now: time.Now, onPresence: map[string]bool{},
		owned: map[string]map[string]bool{}, owners: map[string][]string{}}
}

func (*Module) Name() string { return "pubsub" }

func (m *Module) Start(h module.Host) error {
	m.host = h
	ps, err := pubsub.Sealed(h.Store().PubSubService(), h.Key(pubsub.KeyPurpose), "service")
	if err != nil {
		return fmt.Errorf("pubsub service: %w", err)
	}
	m.ps = ps
	for _, d := range m.opts.Domains {
		j, err := jid.Parse(d)
		if err != nil || !j.IsDomain() {
			return fmt.Errorf("pubsub service: %q is not a domain", d)
		}
		if h.IsLocal(d) {
			return fmt.Errorf("pubsub service: %q is also a served host", d)
		}
		h.AddComponent(module.Component{Domain: j.Domain(), Name: "Publish-Subscribe"}, m.handle)
		if err := m.eachNode(context.Background(), j.Domain(), "", func(node string, st pubsub.State) {
			m.track(j.Domain(), node, st)
		}); err != nil {
			return err
		}
	}
	h.OnEvent(module.EventAvailable, m.available)
	return nil
}

// track notes a node's owners and whether it sends its last item on
// presence; a deleted node is tracked as the zero State.
func (m *Module) track(service, node string, st pubsub.State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := service + "\x00" + node
	if st.SendLast == pubsub.SendLastOnSubAndPresence {
		m.onPresence[key] = true
	} else {
		delete(m.onPresence, key)
	}
	for _, o := range m.owners[key] {
		delete(m.owned[service+"\x00"+o], node)
		if len(m.owned[service+"\x00"+o]) == 0 {
			delete(m.owned, service+"\x00"+o)
		}
	}
	delete(m.owners, key)
	for _, o := range st.Owners() {
		if m.owned[service+"\x00"+o] == nil {
			m.owned[service+"\x00"+o] = map[string]bool{}
		}
		m.owned[service+"\x00"+o][node] = true
		m.owners[key] = append(m.owners[key], o)
	}
}

// ownedNodes lists the nodes who owns on service.
func (m *Module) ownedNodes(service string, who jid.JID) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.owned[service+"\x00"+who.Bare().String()]))
}

// available sends a session that became available the last item of the
// on_sub_and_presence nodes its account or itself is subscribed to
// (XEP-0060 §12.17).
func (m *Module) available(ctx context.Context, s session.Session) {
	m.mu.Lock()
	keys := slices.Collect(maps.Keys(m.onPresence))
	m.mu.Unlock()
	full := s.JID()
	for _, k := range keys {
		service, node, _ := strings.Cut(k, "\x00")
		st, ok, err := m.node(ctx, service, node)
		if err != nil || !ok || st.SendLast != pubsub.SendLastOnSubAndPresence || m.access(ctx, full, st) != nil {
			continue
		}
		for _, sub := range st.Of(full) {
			if sub.Subscribed() && !sub.NoDeliver && (sub.JID == full.Bare().String() || sub.JID == full.String()) {
				m.sendLast(ctx, service, node, st, full)
				break
			}
		}
	}
}

// lock is the lock of one node's state changes (subscriptions,
// affiliations, configuration), one of a few shared by hash.
func (m *Module) lock(service, node string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(service + "\x00" + node))
	return &m.locks[h.Sum32()%uint32(len(m.locks))]
}

func (m *Module) handle(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	if !to.IsDomain() {
		if r := stanza.ErrorReply(el, stanza.ServiceUnavailable()); r != nil {
			m.host.Deliver(ctx, r)
		}
		return
	}
	switch el.Name.Local {
	case "iq":
		m.iq(ctx, from, to, el)
	case "message":
		m.message(ctx, from, to, el)
	}
}

func (m *Module) iq(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	typ := el.Attr("type")
	if typ != "get" && typ != "set" {
		return // the service asks nothing, so it awaits no answer
	}
	res, err := m.answer(ctx, request{from: from, service: to, typ: typ, payload: el.FirstElement()})
	if err != nil {
		se := stanza.AsError(err)
		if se.Condition == "internal-server-error" {
			m.host.Logger().Error("pubsub service: request failed", "err", err)
		}
		if r := stanza.ErrorReply(el, se); r != nil {
			m.host.Deliver(ctx, r)
		}
		return
	}
	m.host.Deliver(ctx, stanza.Result(el, res))
}

// request is one IQ to the service.
type request struct {
	from, service jid.JID
	typ           string
	payload       *xmlstream.Element
}

func (r request) owner() string { return r.service.Domain() }

func (m *Module) answer(ctx context.Context, r request) (*xmlstream.Element, error) {
	p := r.payload
	if p == nil {
		return nil, stanza.BadRequest("an IQ get or set needs a payload")
	}
	switch {
	case p.Name == xmlstream.Name{Space: nsInfo, Local: "query"} && r.typ == "get":
		return m.discoInfo(ctx, r, p.Attr("node"))
	case p.Name == xmlstream.Name{Space: nsItems, Local: "query"} && r.typ == "get":
		return m.discoItems(ctx, r, p.Attr("node"))
	case p.Name == xmlstream.Name{Space: NS, Local: "pubsub"}:
		return m.user(ctx, r)
	case p.Name == xmlstream.Name{Space: NSOwner, Local: "pubsub"}:
		return m.ownerRequest(ctx, r)
	}
	return nil, stanza.ServiceUnavailable()
}

// action returns the one action element of a pubsub request: the first
// child in its namespace other than the options beside it.
func action(p *xmlstream.Element) *xmlstream.Element {
	for c := range p.Elements() {
		if c.Name.Space == p.Name.Space && c.Name.Local != "publish-options" && c.Name.Local != "configure" &&
			!(c.Name.Local == "options" && p.Child(p.Name.Space, "subscribe") != nil) {
			return c
		}
	}
	return p.Child(p.Name.Space, "configure")
}

func formIn(parent *xmlstream.Element) *xmlstream.Element {
	if parent == nil {
		return nil
	}
	return parent.Child(dataform.NS, "x")
}

// node is a stored node's state.
func (m *Module) node(ctx context.Context, service, node string) (pubsub.State, bool, error) {
	st, _, ok, err := m.nodeCreated(ctx, service, node)
	return st, ok, err
}

// nodeCreated is node with the node's creation time.
func (m *Module) nodeCreated(ctx context.Context, service, node string) (pubsub.State, time.Time, bool, error) {
	n, err := m.ps.Node(ctx, service, node)
	if errors.Is(err, storage.ErrNotFound) {
		return pubsub.State{}, time.Time{}, false, nil
	}
	if errors.Is(err, storage.ErrInvalid) {
		return pubsub.State{}, time.Time{}, false, stanza.BadRequest("invalid node name")
	}
	if err != nil {
		return pubsub.State{}, time.Time{}, false, fmt.Errorf("pubsub service: node %q of %s: %w", node, service, err)
	}
	st, err := pubsub.DecodeState(n.Config)
	if err != nil {
		return pubsub.State{}, time.Time{}, false, fmt.Errorf("pubsub service: node %q of %s: %w", node, service, err)
	}
	return st, n.Created, true, nil
}

// mustNode is node, with item-not-found for a missing one.
func (m *Module) mustNode(ctx context.Context, service, node string) (pubsub.State, error) {
	st, ok, err := m.node(ctx, service, node)
	if err == nil && !ok {
		err = stanza.ItemNotFound("no such node")
	}
	return st, err
}

// change changes a node's state with fn under the node's lock and stores
// it; fn's error is returned as is, and nothing is stored then.
func (m *Module) change(ctx context.Context, service, node string, fn func(*pubsub.State) error) (pubsub.State, error) {
	l := m.lock(service, node)
	l.Lock()
	defer l.Unlock()
	st, err := m.mustNode(ctx, service, node)
	if err != nil {
		return pubsub.State{}, err
	}
	if err := fn(&st); err != nil {
		return pubsub.State{}, err
	}
	if err := m.ps.Configure(ctx, service, node, st.Encode(), st.Limit(m.opts.MaxItems)); err != nil {
		return pubsub.State{}, fmt.Errorf("pubsub service: storing node %q of %s: %w", node, service, err)
	}
	m.track(service, node, st)
	return st, nil
}

// owners are the accounts whose rosters the presence and roster access
// models consult: the node's owners.
func owners(st pubsub.State) []jid.JID {
	var out []jid.JID
	for _, o := range st.Owners() {
		if j, err := jid.Parse(o); err == nil {
			out = append(out, j)
		}
	}
	return out
}

// access is MayAccess for the service's nodes.
func (m *Module) access(ctx context.Context, who jid.JID, st pubsub.State) error {
	se, err := pubsub.MayAccess(ctx, m.host.Roster(), owners(st), who, st)
	if err != nil {
		return err
	}
	if se != nil {
		return se
	}
	return nil
}

func isOwner(st pubsub.State, who jid.JID) bool { return st.Affiliation(who) == pubsub.Owner }

func ownerOnly() error { return stanza.Forbidden("only an owner of the node may do this") }

// local reports whether j is a user of this server: only they may
// create nodes.
func (m *Module) local(j jid.JID) bool { return j.Local() != "" && m.host.IsLocal(j.Domain()) }

// defaultConfig is a new node's configuration before the creator's form.
func (m *Module) defaultConfig() pubsub.Config {
	return pubsub.Config{AccessModel: pubsub.AccessOpen, MaxItems: 10, PersistItems: true,
		SendLast: pubsub.SendLastOnSub, NotifyRetract: true, NotifyDelete: true, NotifyConfig: false}
}

// create makes a node owned by creator, configured by x (may be nil).
func (m *Module) create(ctx context.Context, service string, creator jid.JID, node string, x *xmlstream.Element) (string, error) {
	if !m.local(creator) {
		return "", stanza.Forbidden("only users of this server may create nodes")
	}
	st := pubsub.State{Config: m.defaultConfig()}
	if x != nil {
		f, err := dataform.Parse(x)
		if err != nil {
			return "", err
		}
		if se := st.Apply(f, m.opts.MaxItems, models); se != nil {
			return "", se
		}
	}
	st.SetAffiliation(creator, pubsub.Owner)
	instant := node == ""
	if instant {
		node = pubsub.NewID()
	}
	if n := m.opts.MaxNodesPerUser; n > 0 {
		if count := m.ownedBy(service, creator); count >= n {
			return "", pubsub.Cond(&stanza.Error{Type: stanza.Wait, Condition: "resource-constraint",
				Text: fmt.Sprintf("you own %d nodes on %s, the most one user may; delete one first", count, service)}, "max-nodes-exceeded")
		}
	}
	err := m.ps.CreateNode(ctx, service, storage.PubSubNode{Name: node, Config: st.Encode()})
	switch {
	case errors.Is(err, storage.ErrExists):
		return "", stanza.Conflict("the node exists")
	case errors.Is(err, storage.ErrInvalid):
		return "", stanza.BadRequest("invalid node name")
	case err != nil:
		return "", fmt.Errorf("pubsub service: creating %q on %s: %w", node, service, err)
	}
	m.track(service, node, st)
	if instant {
		return node, nil
	}
	return "", nil
}

// checkQuota refuses an item that would take what the nodes of the
// node's owners hold past MaxBytesPerUser, for any of them. What the
// publish itself removes (the item it replaces, the oldest items it
// pushes out) is counted as freed.
func (m *Module) checkQuota(ctx context.Context, service, node string, st pubsub.State, it storage.PubSubItem) error {
	quota := m.opts.MaxBytesPerUser
	if quota <= 0 {
		return nil
	}
	size := int64(len(it.Payload)) + pubsub.SealOverhead
	freed := int64(-1) // read once, when needed
	for _, o := range owners(st) {
		used, err := m.ps.NodesBytes(ctx, service, m.ownedNodes(service, o))
		if err != nil {
			return fmt.Errorf("pubsub service: measuring the nodes of %s: %w", o, err)
		}
		if used+size > quota && freed < 0 {
			items, err := m.ps.Items(ctx, service, node, storage.PubSubQuery{})
			if err != nil {
				return fmt.Errorf("pubsub service: items of %q: %w", node, err)
			}
			freed = pubsub.FreedBy(items, it.ID, st.Limit(m.opts.MaxItems))
		}
		if used+size-max(freed, 0) > quota {
			return &stanza.Error{Type: stanza.Cancel, Condition: "resource-constraint",
				Text: fmt.Sprintf("this item (%d bytes) does not fit in the quota of %d bytes for the nodes %s owns on %s, %d of which are in use; purge or delete nodes no longer needed", size, quota, o, service, used)}
		}
	}
	return nil
}

// ownedBy counts the nodes of service who owns.
func (m *Module) ownedBy(service string, who jid.JID) int { return len(m.ownedNodes(service, who)) }

// event wraps an event payload in a headline message from the service.
func event(from string, to jid.JID, payload *xmlstream.Element) *xmlstream.Element {
	msg := xmlstream.New("jabber:client", "message", "from", from, "to", to.String(), "type", "headline")
	msg.AddChild(xmlstream.New(NSEvent, "event").AddChild(payload))
	return msg
}

// notify sends an event of node to its subscribers who want deliveries
// and still have access, once per JID, with their subid when a JID holds
// more than one subscription.
func (m *Module) notify(ctx context.Context, service, node string, st pubsub.State, payload *xmlstream.Element) {
	sent := map[string]bool{}
	for _, sub := range st.Subscriptions {
		j, err := jid.Parse(sub.JID)
		if err != nil || !sub.Subscribed() || sub.NoDeliver || sent[sub.JID] {
			continue
		}
		if m.access(ctx, j, st) != nil {
			continue
		}
		sent[sub.JID] = true
		m.host.Deliver(ctx, event(service, j, payload.Copy()))
	}
}

// itemsEvent is the notification of items published.
func itemsEvent(node string, st pubsub.State, items ...storage.PubSubItem) (*xmlstream.Element, error) {
	ev := xmlstream.New(NSEvent, "items", "node", node)
	for _, it := range items {
		el := xmlstream.New(NSEvent, "item", "id", it.ID, "publisher", it.Publisher)
		if !st.NoPayloads {
			p, err := xmlstream.ParseElement(it.Payload, "")
			if err != nil {
				return nil, fmt.Errorf("pubsub service: damaged item %q of %q: %w", it.ID, node, err)
			}
			el.AddChild(p)
		}
		ev.AddChild(el)
	}
	return ev, nil
}

// sendLast sends a new subscriber the node's last item (§6.1.7).
func (m *Module) sendLast(ctx context.Context, service, node string, st pubsub.State, to jid.JID) {
	if st.SendLast == pubsub.SendLastNever {
		return
	}
	items, err := m.ps.Items(ctx, service, node, storage.PubSubQuery{Last: 1})
	if err != nil || len(items) == 0 {
		return
	}
	ev, err := itemsEvent(node, st, items...)
	if err != nil {
		m.host.Logger().Warn("pubsub service: last item not sent", "err", err)
		return
	}
	msg := event(service, to, ev)
	msg.AddChild(stanza.Delay(service, items[0].Published))
	m.host.Deliver(ctx, msg)
}

// eachNode calls fn with the state of each node of service (only that
// node when only is not ""), skipping damaged ones.
func (m *Module) eachNode(ctx context.Context, service, only string, fn func(node string, st pubsub.State)) error {
	nodes, err := m.ps.Nodes(ctx, service)
	if err != nil {
		return fmt.Errorf("pubsub service: listing the nodes of %s: %w", service, err)
	}
	for _, n := range nodes {
		if only != "" && n.Name != only {
			continue
		}
		if st, err := pubsub.DecodeState(n.Config); err == nil {
			fn(n.Name, st)
		}
	}
	return nil
}

// affiliationsOf lists who's affiliations on service (§5.7).
func (m *Module) affiliationsOf(ctx context.Context, service string, who jid.JID, only string) (*xmlstream.Element, error) {
	out := xmlstream.New(NS, "affiliations")
	if only != "" {
		out.SetAttr("node", only)
	}
	return out, m.eachNode(ctx, service, only, func(node string, st pubsub.State) {
		if a := st.Affiliation(who); a != pubsub.None {
			out.AddChild(xmlstream.New(NS, "affiliation", "node", node, "affiliation", a))
		}
	})
}

// subscriptionsOf lists who's subscriptions on service (§5.6).
func (m *Module) subscriptionsOf(ctx context.Context, service string, who jid.JID, only string) (*xmlstream.Element, error) {
	out := xmlstream.New(NS, "subscriptions")
	if only != "" {
		out.SetAttr("node", only)
	}
	return out, m.eachNode(ctx, service, only, func(node string, st pubsub.State) {
		for _, sub := range st.Of(who) {
			out.AddChild(pubsub.SubscriptionElement(NS, node, sub))
		}
	})
}
