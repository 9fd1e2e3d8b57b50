// Package pep is the Personal Eventing Protocol (XEP-0163): every account
// is a small publish-subscribe service (the parts of XEP-0060 PEP needs)
// whose nodes carry avatars (XEP-0084), OMEMO keys (XEP-0384), bookmarks
// (XEP-0402) and the like. Subscriptions are mostly implicit: contacts
// with a presence subscription whose client announces "<node>+notify" in
// its entity capabilities (XEP-0115) get the items. Anyone the access
// model lets in may also subscribe explicitly (subscribe.go).
package pep

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/pubsub"
)

const (
	NS          = pubsub.NS
	NSOwner     = pubsub.NSOwner
	NSEvent     = pubsub.NSEvent
	NSErrors    = pubsub.NSErrors
	nsBookmarks = "urn:xmpp:bookmarks:1"
)

// Limits per account. MaxItems is what "max" means for pubsub#max_items
// (XEP-0402 bookmarks ask for it); MaxNodes stops one account from
// creating nodes without end.
const (
	MaxItems = 1000
	MaxNodes = 256
)

// Features lists what the module advertises on accounts (XEP-0163 §4).
var Features = []string{
	NS + "#access-open", NS + "#access-presence", NS + "#access-roster", NS + "#access-whitelist",
	NS + "#auto-create", NS + "#config-node", NS + "#create-nodes", NS + "#delete-nodes",
	NS + "#last-published", NS + "#persistent-items", NS + "#publish", NS + "#publish-options",
	NS + "#retract-items", NS + "#retrieve-items", NS + "#subscribe", NS + "#retrieve-subscriptions",
	NS + "#manage-subscriptions", NS + "#subscription-options",
}

// Module is the PEP service.
type Module struct {
	host module.Host
	ps   storage.PubSub
	caps *capsCache
	now  func() time.Time
	// hooks see the changes owners make, by node; filled while the
	// server starts (OnChange) and only read afterwards.
	hooks map[string][]ChangeHook
	// views are the nodes other modules serve (HandleView); filled
	// while the server starts and only read afterwards.
	views map[string]View
	// quota is the most payload bytes one account's items may take
	// together; 0 is no limit.
	quota func() int64   // read per publish: a reload may change it
	locks [64]sync.Mutex // see ownerLock
}

func New() *Module {
	return &Module{caps: newCapsCache(), now: time.Now, hooks: map[string][]ChangeHook{}, views: map[string]View{}}
}

// WithQuota sets where the per-account quota on stored items comes from,
// in payload bytes (0: none); call it before Start.
func (m *Module) WithQuota(bytes func() int64) *Module {
	m.quota = bytes
	return m
}

func (*Module) Name() string { return "pep" }

func (m *Module) Start(h module.Host) error {
	m.host = h
	ps, err := pubsub.Sealed(h.Store().PubSub(), h.Key(pubsub.KeyPurpose), "pep")
	if err != nil {
		return fmt.Errorf("pep: %w", err)
	}
	m.ps = ps
	h.HandleIQ(module.Account, "get", xmlstream.Name{Space: NS, Local: "pubsub"}, m.get)
	h.HandleIQ(module.Account, "set", xmlstream.Name{Space: NS, Local: "pubsub"}, m.set)
	h.HandleIQ(module.Account, "get", xmlstream.Name{Space: NSOwner, Local: "pubsub"}, m.ownerGet)
	h.HandleIQ(module.Account, "set", xmlstream.Name{Space: NSOwner, Local: "pubsub"}, m.ownerSet)
	for _, f := range Features {
		h.AddFeature(module.Account, f)
	}
	h.OnEvent(module.EventAvailable, m.available)
	h.OnIQResult(m.iqResult)
	return nil
}

// theChild returns the one pubsub action element of a request.
func theChild(p *xmlstream.Element) *xmlstream.Element {
	for c := range p.Elements() {
		if c.Name.Space == p.Name.Space && c.Name.Local != "publish-options" && c.Name.Local != "configure" {
			return c
		}
	}
	// <configure/> alone (owner namespace) is an action too.
	return p.Child(p.Name.Space, "configure")
}

func isOwner(iq module.IQ) bool { return iq.From.Bare().Equal(iq.To) }

func (m *Module) set(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	action := theChild(iq.Payload)
	if action == nil {
		return nil, stanza.BadRequest("no pubsub action")
	}
	switch action.Name.Local {
	case "publish", "retract", "create":
	case "subscribe":
		return m.subscribe(ctx, iq, action)
	case "unsubscribe":
		return nil, m.unsubscribe(ctx, iq, action)
	case "options":
		return m.options(ctx, iq, action)
	default:
		return nil, stanza.FeatureNotImplemented(action.Name.Local + " is not supported")
	}
	if !isOwner(iq) {
		return nil, stanza.Forbidden("only the owner may change a personal node")
	}
	node := action.Attr("node")
	if node == "" {
		return nil, pubsub.NodeRequired()
	}
	if v := m.views[node]; v != nil {
		return m.setView(ctx, iq, node, action, v)
	}
	switch action.Name.Local {
	case "publish":
		return m.publish(ctx, iq, node, action)
	case "retract":
		return nil, m.retract(ctx, iq, node, action)
	default:
		return nil, m.create(ctx, iq, node)
	}
}

func randomID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// nodeConfigOf returns a node's configuration; ok is false when there is
// no such node.
func (m *Module) nodeConfigOf(ctx context.Context, owner, node string) (nodeConfig, bool, error) {
	n, err := m.ps.Node(ctx, owner, node)
	if errors.Is(err, storage.ErrNotFound) {
		return nodeConfig{}, false, nil
	}
	if err != nil {
		return nodeConfig{}, false, fmt.Errorf("pep: reading node %q of %s: %w", node, owner, err)
	}
	c, err := decodeConfig(n.Config)
	if err != nil {
		return nodeConfig{}, false, fmt.Errorf("pep: node %q of %s: %w", node, owner, err)
	}
	return c, true, nil
}

// newNode creates a node with the defaults for its name changed by an
// optional form (publish-options or a create's configure).
func (m *Module) newNode(ctx context.Context, owner, node string, x *xmlstream.Element) (nodeConfig, error) {
	cfg, err := configFor(node, x)
	if err != nil {
		return nodeConfig{}, err
	}
	nodes, err := m.ps.Nodes(ctx, owner)
	if err != nil {
		return nodeConfig{}, fmt.Errorf("pep: listing nodes of %s: %w", owner, err)
	}
	if len(nodes) >= MaxNodes {
		return nodeConfig{}, pubsub.Cond(&stanza.Error{Type: stanza.Wait, Condition: "resource-constraint",
			Text: fmt.Sprintf("at most %d nodes per account", MaxNodes)}, "max-nodes-exceeded")
	}
	if err := m.ps.CreateNode(ctx, owner, storage.PubSubNode{Name: node, Config: cfg.Encode()}); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return nodeConfig{}, stanza.Conflict("the node exists")
		}
		if errors.Is(err, storage.ErrInvalid) {
			return nodeConfig{}, stanza.BadRequest("invalid node name")
		}
		return nodeConfig{}, fmt.Errorf("pep: creating node %q of %s: %w", node, owner, err)
	}
	return cfg, nil
}

// configFor is the configuration a new node gets: the defaults for its
// name changed by an optional form.
func configFor(node string, x *xmlstream.Element) (nodeConfig, error) {
	cfg := defaultConfig(node)
	if x != nil {
		f, err := dataform.Parse(x)
		if err != nil {
			return nodeConfig{}, err
		}
		if se := cfg.Apply(f, MaxItems, models); se != nil {
			return nodeConfig{}, se
		}
	}
	return cfg, nil
}

func formIn(parent *xmlstream.Element) *xmlstream.Element {
	if parent == nil {
		return nil
	}
	return parent.Child(nsData, "x")
}

// onePayload returns the one item of a publish and its one payload.
func onePayload(pub *xmlstream.Element) (item, payload *xmlstream.Element, se *stanza.Error) {
	n := 0
	for c := range pub.Elements() {
		if c.Name.Space == NS && c.Name.Local == "item" {
			item = c
			n++
		}
	}
	if n != 1 {
		return nil, nil, pubsub.Cond(stanza.BadRequest("publish exactly one item"), "invalid-payload")
	}
	k := 0
	for c := range item.Elements() {
		payload = c
		k++
	}
	if k != 1 {
		return nil, nil, pubsub.Cond(stanza.BadRequest("an item carries exactly one payload"), "invalid-payload")
	}
	return item, payload, nil
}

func (m *Module) publish(ctx context.Context, iq module.IQ, node string, pub *xmlstream.Element) (*xmlstream.Element, error) {
	item, payload, se := onePayload(pub)
	if se != nil {
		return nil, se
	}
	opts := formIn(iq.Payload.Child(NS, "publish-options"))
	id, err := m.store(ctx, iq.To, iq.From.Bare(), node, item.Attr("id"), payload, opts)
	if err != nil {
		return nil, err
	}
	m.changed(ctx, Change{Owner: iq.To, Node: node, ItemID: id, Payload: payload})
	res := xmlstream.New(NS, "pubsub")
	res.AddChild(xmlstream.New(NS, "publish", "node", node).AddChild(xmlstream.New(NS, "item", "id", id)))
	return res, nil
}

// store publishes payload as item id (a random one when empty) on owner's
// node, creating the node from its defaults and opts, and notifies.
func (m *Module) store(ctx context.Context, ownerJID, publisher jid.JID, node, id string, payload, opts *xmlstream.Element) (string, error) {
	owner := ownerJID.String()
	if id == "" {
		id = randomID()
	}
	item := storage.PubSubItem{ID: id, Publisher: publisher.String(), Payload: payload.Append(nil, ""), Published: m.now().UTC()}
	// One owner's publishes are checked against the quota and written
	// one at a time, so two sessions cannot both take the last room.
	lock := m.ownerLock(owner)
	lock.Lock()
	cfg, err := m.keep(ctx, owner, node, item, opts)
	lock.Unlock()
	if err != nil {
		return "", err
	}
	ev := eventItems(node)
	ev.AddChild(itemElement(id, payload))
	m.broadcast(ctx, ownerJID, node, cfg, ev)
	return id, nil
}

// keep stores item on owner's node (creating the node when needed)
// within the owner's quota, and returns the node's configuration.
func (m *Module) keep(ctx context.Context, owner, node string, item storage.PubSubItem, opts *xmlstream.Element) (nodeConfig, error) {
	cfg, exists, err := m.nodeConfigOf(ctx, owner, node)
	if err != nil {
		return nodeConfig{}, err
	}
	switch {
	case !exists:
		// Checked before the node is made, so that a refusal leaves
		// none behind; a new node holds nothing the item could replace.
		if pre, err := configFor(node, opts); err == nil && pre.PersistItems {
			if err := m.checkQuota(ctx, owner, node, item, 0, false); err != nil {
				return nodeConfig{}, err
			}
		}
		if cfg, err = m.newNode(ctx, owner, node, opts); err != nil {
			return nodeConfig{}, err
		}
	case opts != nil:
		f, err := dataform.Parse(opts)
		if err != nil {
			return nodeConfig{}, err
		}
		if f.FormType == formTypePublishOptions && !cfg.Meets(f, MaxItems) {
			return nodeConfig{}, pubsub.Cond(stanza.Conflict("the node's configuration does not match the publish options"), "precondition-not-met")
		}
	}
	if !cfg.PersistItems {
		return cfg, nil
	}
	if exists {
		if err := m.checkQuota(ctx, owner, node, item, cfg.Limit(MaxItems), true); err != nil {
			return nodeConfig{}, err
		}
	}
	_, err = m.ps.Publish(ctx, owner, node, item, cfg.Limit(MaxItems))
	if errors.Is(err, storage.ErrInvalid) {
		return nodeConfig{}, pubsub.Cond(&stanza.Error{Type: stanza.Modify, Condition: "not-acceptable", Text: "the item is too large or its id is invalid"}, "payload-too-big")
	}
	if err != nil {
		return nodeConfig{}, fmt.Errorf("pep: publishing to %q of %s: %w", node, owner, err)
	}
	return cfg, nil
}

// checkQuota refuses an item that would take owner's PEP data past the
// quota. What the publish itself removes (the item it replaces, the
// oldest items it pushes out of a full node) is counted as freed, so a
// user at the quota can still replace an avatar by one of the same size.
func (m *Module) checkQuota(ctx context.Context, owner, node string, item storage.PubSubItem, limit int, exists bool) error {
	quota := int64(0)
	if m.quota != nil {
		quota = m.quota()
	}
	if quota <= 0 {
		return nil
	}
	// What the store holds is sealed: the quota counts sealed bytes.
	size := int64(len(item.Payload)) + pubsub.SealOverhead
	used, err := m.ps.PayloadBytes(ctx, owner)
	if err != nil {
		return fmt.Errorf("pep: measuring the data of %s: %w", owner, err)
	}
	if used+size <= quota {
		return nil
	}
	if exists {
		items, err := m.ps.Items(ctx, owner, node, storage.PubSubQuery{})
		if err != nil {
			return fmt.Errorf("pep: reading items of %q of %s: %w", node, owner, err)
		}
		used -= pubsub.FreedBy(items, item.ID, limit)
	}
	if used+size <= quota {
		return nil
	}
	return &stanza.Error{Type: stanza.Cancel, Condition: "resource-constraint",
		Text: fmt.Sprintf("this item (%d bytes) does not fit in your personal data quota of %d bytes, %d of which are in use; delete items or nodes you no longer need", size, quota, used)}
}

// ownerLock is the lock of owner's publishes, one of a few shared by
// hash.
func (m *Module) ownerLock(owner string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(owner))
	return &m.locks[h.Sum32()%uint32(len(m.locks))]
}

func eventItems(node string) *xmlstream.Element { return xmlstream.New(NSEvent, "items", "node", node) }

func itemElement(id string, payload *xmlstream.Element) *xmlstream.Element {
	it := xmlstream.New(NSEvent, "item", "id", id)
	if payload != nil {
		it.AddChild(payload)
	}
	return it
}

func (m *Module) retract(ctx context.Context, iq module.IQ, node string, r *xmlstream.Element) error {
	owner := iq.To.String()
	it := r.Child(NS, "item")
	if it == nil || it.Attr("id") == "" {
		return pubsub.Cond(stanza.BadRequest("retract needs an item id"), "item-required")
	}
	id := it.Attr("id")
	cfg, exists, err := m.nodeConfigOf(ctx, owner, node)
	if err != nil {
		return err
	}
	if !exists {
		return stanza.ItemNotFound("no such node")
	}
	if err := m.ps.Retract(ctx, owner, node, id); errors.Is(err, storage.ErrNotFound) {
		return stanza.ItemNotFound("no such item")
	} else if err != nil {
		return fmt.Errorf("pep: retracting from %q of %s: %w", node, owner, err)
	}
	notify := cfg.NotifyRetract
	if v := r.Attr("notify"); v != "" {
		notify = v == "true" || v == "1"
	}
	if notify {
		ev := eventItems(node)
		ev.AddChild(xmlstream.New(NSEvent, "retract", "id", id))
		m.broadcast(ctx, iq.To, node, cfg, ev)
	}
	m.changed(ctx, Change{Owner: iq.To, Node: node, ItemID: id, Retracted: true})
	return nil
}

func (m *Module) create(ctx context.Context, iq module.IQ, node string) error {
	_, err := m.newNode(ctx, iq.To.String(), node, formIn(iq.Payload.Child(NS, "configure")))
	return err
}

func (m *Module) get(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	action := theChild(iq.Payload)
	if action == nil {
		return nil, stanza.BadRequest("no pubsub action")
	}
	switch action.Name.Local {
	case "subscriptions":
		return m.ownSubscriptions(ctx, iq, action)
	case "options":
		return m.options(ctx, iq, action)
	}
	if action.Name.Local != "items" {
		return nil, pubsub.Unsupported(stanza.FeatureNotImplemented(action.Name.Local+" is not supported"), "retrieve-"+action.Name.Local)
	}
	node := action.Attr("node")
	if node == "" {
		return nil, pubsub.NodeRequired()
	}
	if v := m.views[node]; v != nil {
		return m.getView(ctx, iq, node, action, v)
	}
	owner := iq.To.String()
	cfg, exists, err := m.nodeConfigOf(ctx, owner, node)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, stanza.ItemNotFound("no such node")
	}
	if !isOwner(iq) {
		if se, err := m.mayAccess(ctx, iq.To, iq.From.Bare(), cfg); err != nil {
			return nil, err
		} else if se != nil {
			return nil, se
		}
	}
	q, se := pubsub.ItemsQuery(action)
	if se != nil {
		return nil, se
	}
	items, err := m.ps.Items(ctx, owner, node, q)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, stanza.ItemNotFound("no such node")
	}
	if errors.Is(err, storage.ErrInvalid) {
		return nil, stanza.BadRequest("too many item ids")
	}
	if err != nil {
		return nil, fmt.Errorf("pep: reading items of %q of %s: %w", node, owner, err)
	}
	out := xmlstream.New(NS, "items", "node", node)
	// Newest first: a client that reads the first item gets the current one.
	for i := len(items) - 1; i >= 0; i-- {
		el := xmlstream.New(NS, "item", "id", items[i].ID)
		p, err := xmlstream.ParseElement(items[i].Payload, "")
		if err != nil {
			return nil, fmt.Errorf("pep: damaged item %q in %q of %s: %w", items[i].ID, node, owner, err)
		}
		out.AddChild(el.AddChild(p))
	}
	return xmlstream.New(NS, "pubsub").AddChild(out), nil
}

// mayAccess applies a node's access model to someone who is not the
// owner (XEP-0060 §6.5.9), through the engine, with the owner's roster;
// it returns the error to send, or nil.
func (m *Module) mayAccess(ctx context.Context, owner, who jid.JID, cfg nodeConfig) (*stanza.Error, error) {
	return pubsub.MayAccess(ctx, m.host.Roster(), []jid.JID{owner}, who, cfg)
}

func (m *Module) ownerGet(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if !isOwner(iq) {
		return nil, stanza.Forbidden("only the owner may see a node's configuration")
	}
	action := theChild(iq.Payload)
	if action == nil || (action.Name.Local != "configure" && action.Name.Local != "subscriptions") {
		return nil, stanza.FeatureNotImplemented("only configure and subscriptions are supported")
	}
	node := action.Attr("node")
	if node == "" {
		return nil, pubsub.NodeRequired()
	}
	if m.views[node] != nil {
		return m.ownerView("get", node, action)
	}
	cfg, exists, err := m.nodeConfigOf(ctx, iq.To.String(), node)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, stanza.ItemNotFound("no such node")
	}
	if action.Name.Local == "subscriptions" {
		return m.ownerSubscriptions(ctx, iq, node, action)
	}
	contacts, err := m.host.Roster().Contacts(ctx, iq.To)
	if err != nil {
		return nil, fmt.Errorf("pep: %w", err)
	}
	var groups []string
	for _, c := range contacts {
		groups = append(groups, c.Groups...)
	}
	c := xmlstream.New(NSOwner, "configure", "node", node).AddChild(cfg.Form(groups, models))
	return xmlstream.New(NSOwner, "pubsub").AddChild(c), nil
}

func (m *Module) ownerSet(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if !isOwner(iq) {
		return nil, stanza.Forbidden("only the owner may change a node")
	}
	action := theChild(iq.Payload)
	if action == nil {
		return nil, stanza.BadRequest("no pubsub action")
	}
	node := action.Attr("node")
	if node == "" {
		return nil, pubsub.NodeRequired()
	}
	if m.views[node] != nil {
		return m.ownerView("set", node, action)
	}
	owner := iq.To.String()
	cfg, exists, err := m.nodeConfigOf(ctx, owner, node)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, stanza.ItemNotFound("no such node")
	}
	switch action.Name.Local {
	case "configure":
		x := formIn(action)
		if x == nil {
			return nil, stanza.BadRequest("configure needs a data form")
		}
		f, err := dataform.Parse(x)
		if err != nil {
			return nil, err
		}
		if f.Type == dataform.TypeCancel {
			return nil, nil
		}
		if f.Type != dataform.TypeSubmit || x.Attr("type") == "" {
			return nil, stanza.BadRequest("the form must be submitted")
		}
		// Under the owner's lock, on the state as it is then: a
		// subscription made meanwhile is kept.
		return nil, m.changeState(ctx, iq.To, node, func(st *nodeConfig) error {
			if se := st.Apply(f, MaxItems, models); se != nil {
				return se
			}
			return nil
		})
	case "delete":
		if err := m.ps.DeleteNode(ctx, owner, node); errors.Is(err, storage.ErrNotFound) {
			return nil, stanza.ItemNotFound("no such node")
		} else if err != nil {
			return nil, fmt.Errorf("pep: deleting %q of %s: %w", node, owner, err)
		}
		if cfg.NotifyDelete {
			m.broadcast(ctx, iq.To, node, cfg, xmlstream.New(NSEvent, "delete", "node", node))
		}
		m.dropSubscriptions(ctx, iq.To, node)
		m.changed(ctx, Change{Owner: iq.To, Node: node, NodeDeleted: true})
		return nil, nil
	case "subscriptions":
		return m.ownerSubscriptions(ctx, iq, node, action)
	}
	return nil, stanza.FeatureNotImplemented(action.Name.Local + " is not supported")
}
