// Package push implements Push Notifications (XEP-0357): a client gives
// the server an app server JID and node; when a message arrives while
// that client's session is gone or asleep (stream management detached),
// the server publishes a notification to the app server, which wakes the
// phone. By default the notification says only that something arrived:
// no body and no sender, because the app server (and the phone vendor's
// push service behind it) should not learn who writes to whom.
package push

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/sealstore"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

const (
	NS       = "urn:xmpp:push:0"
	nsPubSub = "http://jabber.org/protocol/pubsub"
	kvNS     = NS
	// maxRegistrations bounds the app servers one account can register.
	maxRegistrations = 20
)

// Options say what a notification may reveal.
type Options struct {
	IncludeSender bool
	IncludeBody   bool
}

type Module struct {
	opts Options
	host module.Host
	kv   *sealstore.KV

	// cache holds each account's registrations (nil slice: none), so the
	// message path does not read the database for every message to a
	// user who is online.
	mu    sync.Mutex
	cache map[string]cached
}

// cached is an account's registrations as read while its sessions were
// those stamp names. In a cluster, enable and disable may come through
// another node: they mark the session they came from (a replicated
// session value), which changes the stamp every node computes, so no
// node keeps using what the database no longer says.
type cached struct {
	regs   []registration
	stamp  string
	loaded time.Time
}

// genKey is the session value enable and disable change.
type genKey struct{}

// maxCached bounds the cache; it is simply emptied when full. cacheFor
// bounds how long an entry lives, for what the stamp cannot see (a
// session that came, changed the registrations and left while another
// one stayed).
const (
	maxCached = 10000
	cacheFor  = time.Minute
)

// stamp names an account's sessions and what enable or disable last did
// on each; "" when it has none, and then nothing is cached: a message
// for an account with no session goes to offline storage, a database
// write that dwarfs the read.
func stamp(sessions []session.Session) string {
	var parts []string
	for _, s := range sessions {
		g, _ := s.State().Value(genKey{}).(string)
		parts = append(parts, s.JID().Resource()+"\x00"+g)
	}
	slices.Sort(parts)
	return strings.Join(parts, "\x01")
}

func (m *Module) registrations(ctx context.Context, owner jid.JID, sessions []session.Session) ([]registration, error) {
	stamp := stamp(sessions)
	m.mu.Lock()
	c, ok := m.cache[owner.String()]
	m.mu.Unlock()
	if ok && stamp != "" && c.stamp == stamp && time.Since(c.loaded) < cacheFor {
		return c.regs, nil
	}
	entries, err := m.kv.List(ctx, owner.String())
	if err != nil {
		return nil, err
	}
	var regs []registration
	for _, e := range entries {
		var reg registration
		if json.Unmarshal(e.Value, &reg) == nil {
			regs = append(regs, reg)
		}
	}
	m.mu.Lock()
	if m.cache == nil || len(m.cache) >= maxCached {
		m.cache = make(map[string]cached)
	}
	if stamp == "" {
		delete(m.cache, owner.String())
	} else {
		m.cache[owner.String()] = cached{regs: regs, stamp: stamp, loaded: time.Now()}
	}
	m.mu.Unlock()
	return regs, nil
}

// changed is called after enable or disable: this node's entry goes, and
// the session that asked is marked for the other nodes.
func (m *Module) changed(iq module.IQ) {
	m.mu.Lock()
	delete(m.cache, iq.To.String())
	m.mu.Unlock()
	for _, s := range m.host.Sessions(iq.To) {
		if s.JID().Equal(iq.From) {
			s.State().SetValue(genKey{}, newID())
		}
	}
}

func New(opts Options) *Module { return &Module{opts: opts} }

func (*Module) Name() string { return "push" }

func (m *Module) Start(h module.Host) error {
	m.host = h
	// Registrations name the app server and node (which client, which
	// platform: a fingerprint) and are read while the user is away, when
	// a push is due: sealed and blind-indexed under a server key.
	key, err := sealstore.NewServerKey(h.Key("push registrations"))
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	m.kv = sealstore.NewKV(h.Store().KV(), key, kvNS)
	h.Vault().OnUnlock(func(ctx context.Context, owner string) {
		if err := m.kv.Reseal(ctx, owner); err != nil {
			h.Logger().Error("push: sealing registrations kept in clear failed", "jid", owner, "err", err)
		}
	})
	h.HandleIQ(module.Account, "set", xmlstream.Name{Space: NS, Local: "enable"}, m.enable)
	h.HandleIQ(module.Account, "set", xmlstream.Name{Space: NS, Local: "disable"}, m.disable)
	h.AddFeature(module.Account, NS)
	h.OnMessage(m.notify)
	return nil
}

// registration is one enabled push target, kept in the KV store.
type registration struct {
	JID      string            `json:"jid"`
	Node     string            `json:"node"`
	Resource string            `json:"resource"` // the session that enabled it
	Options  map[string]string `json:"options,omitempty"`
}

// key names a registration in the KV store; nodes are arbitrary strings,
// so the pair is hashed rather than joined.
func key(service, node string) string {
	sum := sha256.Sum256([]byte(service + "\x00" + node))
	return hex.EncodeToString(sum[:16])
}

func (m *Module) enable(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if !iq.From.Bare().Equal(iq.To) {
		return nil, stanza.Forbidden("")
	}
	service, err := jid.Parse(iq.Payload.Attr("jid"))
	node := iq.Payload.Attr("node")
	if err != nil || iq.Payload.Attr("jid") == "" || node == "" {
		return nil, stanza.BadRequest("enable needs the app server's 'jid' and a 'node'")
	}
	reg := registration{JID: service.String(), Node: node, Resource: iq.From.Resource()}
	if x := iq.Payload.Child(dataform.NS, "x"); x != nil {
		f, err := dataform.Parse(x)
		if err != nil {
			return nil, err
		}
		reg.Options = map[string]string{}
		for _, fd := range f.Fields {
			if len(fd.Values) > 0 {
				reg.Options[fd.Var] = fd.Value()
			}
		}
	}
	existing, err := m.kv.List(ctx, iq.To.String())
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	if len(existing) >= maxRegistrations {
		return nil, &stanza.Error{Type: stanza.Wait, Condition: "resource-constraint", Text: "too many push registrations"}
	}
	data, _ := json.Marshal(reg)
	if err := m.kv.Put(ctx, iq.To.String(), key(reg.JID, reg.Node), data); err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	m.changed(iq)
	return nil, nil
}

func (m *Module) disable(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if !iq.From.Bare().Equal(iq.To) {
		return nil, stanza.Forbidden("")
	}
	service, err := jid.Parse(iq.Payload.Attr("jid"))
	if err != nil || iq.Payload.Attr("jid") == "" {
		return nil, stanza.BadRequest("disable needs the app server's 'jid'")
	}
	entries, err := m.kv.List(ctx, iq.To.String())
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	node := iq.Payload.Attr("node")
	defer m.changed(iq)
	for _, e := range entries {
		var reg registration
		if json.Unmarshal(e.Value, &reg) != nil {
			continue
		}
		// Without a node every registration with that app server goes.
		if reg.JID == service.String() && (node == "" || reg.Node == node) {
			if err := m.kv.Delete(ctx, iq.To.String(), e.Key); err != nil {
				return nil, fmt.Errorf("push: %w", err)
			}
		}
	}
	return nil, nil
}

// worthPushing: messages a person would want to be woken for.
func worthPushing(el *xmlstream.Element) bool {
	if el.Child(el.Name.Space, "body") != nil {
		return true
	}
	for c := range el.Elements() {
		if c.Name.Local == "encrypted" {
			return true
		}
	}
	return false
}

func (m *Module) notify(ctx context.Context, ev module.MessageEvent) {
	if ev.Outbound || !worthPushing(ev.Stanza) {
		return
	}
	owner := ev.To.Bare()
	sessions := m.host.Sessions(owner)
	regs, err := m.registrations(ctx, owner, sessions)
	if err != nil || len(regs) == 0 {
		return
	}
	awake := map[string]bool{}
	for _, s := range sessions {
		if avail, _ := s.State().Available(); avail && !s.State().Detached() {
			awake[s.JID().Resource()] = true
		}
	}
	for _, reg := range regs {
		if !awake[reg.Resource] {
			m.host.Deliver(ctx, m.publish(owner, reg, ev))
		}
	}
}

// publish builds the XEP-0357 §5 notification for one registration.
func (m *Module) publish(owner jid.JID, reg registration, ev module.MessageEvent) *xmlstream.Element {
	form := dataform.New(dataform.TypeSubmit, dataform.PushSummary)
	form.Add("message-count", "", strconv.Itoa(1))
	if m.opts.IncludeSender {
		form.Add("last-message-sender", "", ev.From.Bare().String())
	}
	if m.opts.IncludeBody {
		if b := ev.Stanza.Child(ev.Stanza.Name.Space, "body"); b != nil {
			form.Add("last-message-body", "", b.Text())
		}
	}
	item := xmlstream.New(nsPubSub, "item")
	item.AddChild(xmlstream.New(NS, "notification").AddChild(form.Element()))
	pub := xmlstream.New(nsPubSub, "publish", "node", reg.Node)
	pub.AddChild(item)
	ps := xmlstream.New(nsPubSub, "pubsub")
	ps.AddChild(pub)
	if len(reg.Options) > 0 {
		// The client's own options (XEP-0357 §7, e.g. a secret), passed
		// on as submitted: their names are the app server's business.
		opts := dataform.New(dataform.TypeSubmit, dataform.PubSubPublishOpts)
		for _, k := range slices.Sorted(maps.Keys(reg.Options)) {
			opts.Fields = append(opts.Fields, &dataform.Field{Var: k, Values: []string{reg.Options[k]}})
		}
		ps.AddChild(xmlstream.New(nsPubSub, "publish-options").AddChild(opts.Element()))
	}
	iq := xmlstream.New(stanza.NSClient, "iq", "type", "set", "id", "push-"+newID(),
		"from", owner.String(), "to", reg.JID)
	iq.AddChild(ps)
	return iq
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
