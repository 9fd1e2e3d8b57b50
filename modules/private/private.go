// Package private implements Private XML Storage (XEP-0049): each account
// keeps arbitrary XML fragments on the server, one slot per namespace,
// readable and writable only by the account itself. Legacy bookmarks
// (XEP-0048) and client preferences live here.
package private

import (
	"context"
	"errors"
	"fmt"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/sealstore"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

const NS = "jabber:iq:private"

// Bounds on what one account can keep, so that private storage cannot be
// used to fill the server's disk.
const (
	// MaxBytes bounds the data of one namespace, serialised.
	MaxBytes = 64 << 10
	// MaxNamespaces bounds how many namespaces an account can use.
	MaxNamespaces = 64
)

// kvNS is the KV namespace; the key is the stored fragment's namespace.
const kvNS = "jabber:iq:private"

// reserved namespaces cannot be stored: XEP-0049 §2.3 lets servers refuse
// them, and storing stream or stanza content, or private storage inside
// itself, only confuses whoever reads it back.
var reserved = map[string]bool{
	"":               true, // an unqualified child is not "scoped by its own namespace"
	NS:               true,
	stanza.NSClient:  true,
	stanza.NSServer:  true,
	stanza.NSStream:  true,
	stanza.NSStanzas: true,
	stanza.NSStreams: true,
}

type Module struct {
	// kv holds each account's fragments sealed under its key (issue 16).
	kv *sealstore.KV
	// slots are the namespaces other modules took over (Handle); filled
	// while the server starts and only read afterwards.
	slots map[string]Slot
}

func New() *Module { return &Module{slots: map[string]Slot{}} }

// Slot lets another module take part in reading and writing one
// namespace, e.g. legacy bookmarks (XEP-0048) kept in step with PEP
// bookmarks (XEP-0402). What it returns from Set is what private storage
// keeps; what it returns from Get is what the owner reads.
type Slot interface {
	// Get receives what is stored for the namespace, a query element
	// holding the stored children, or nil when nothing is, and returns
	// the query to answer with.
	Get(ctx context.Context, owner jid.JID, stored *xmlstream.Element) (*xmlstream.Element, error)
	// Set receives a query holding the elements a client stores and
	// returns the query to keep (nil to keep nothing). An error refuses
	// the whole request before anything else is written.
	Set(ctx context.Context, owner jid.JID, q *xmlstream.Element) (*xmlstream.Element, error)
}

// Stored returns what is kept for ns (a query element holding it), nil
// when nothing is; slots are not consulted. It lets a slot's owner
// migrate data stored before it took the namespace over.
func (m *Module) Stored(ctx context.Context, owner jid.JID, ns string) (*xmlstream.Element, error) {
	o := owner.Bare().String()
	data, err := m.kv.Get(ctx, o, ns)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("private: reading %s of %s: %w", ns, o, err)
	}
	el, err := xmlstream.ParseElement(data, "")
	if err != nil {
		return nil, fmt.Errorf("private: stored %s of %s is damaged: %w", ns, o, err)
	}
	return el, nil
}

// Keep replaces what is kept for ns with q (nil deletes it); slots are
// not consulted.
func (m *Module) Keep(ctx context.Context, owner jid.JID, ns string, q *xmlstream.Element) error {
	o := owner.Bare().String()
	if q == nil {
		if err := m.kv.Delete(ctx, o, ns); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("private: clearing %s of %s: %w", ns, o, err)
		}
		return nil
	}
	data := q.Append(nil, "")
	if len(data) > MaxBytes {
		return notAcceptable(fmt.Sprintf("the data for %s is %d bytes; at most %d are kept", ns, len(data), MaxBytes))
	}
	if err := m.kv.Put(ctx, o, ns, data); err != nil {
		return fmt.Errorf("private: storing %s of %s: %w", ns, o, err)
	}
	return nil
}

// Handle gives namespace ns to s. Call it while the server starts (from
// a module's Start).
func (m *Module) Handle(ns string, s Slot) { m.slots[ns] = s }

func (*Module) Name() string { return "private" }

func (m *Module) Start(h module.Host) error {
	m.kv = sealstore.NewKV(h.Store().KV(), h.Vault(), kvNS)
	h.Vault().OnUnlock(func(ctx context.Context, owner string) {
		if err := m.kv.Reseal(ctx, owner); err != nil {
			h.Logger().Error("private: resealing private XML failed", "jid", owner, "err", err)
		}
	})
	name := xmlstream.Name{Space: NS, Local: "query"}
	h.HandleIQ(module.Account, "get", name, m.get)
	h.HandleIQ(module.Account, "set", name, m.set)
	h.AddFeature(module.Account, NS)
	return nil
}

func notAcceptable(text string) *stanza.Error {
	return &stanza.Error{Type: stanza.Modify, Condition: "not-acceptable", Text: text}
}

// check applies the rules shared by get and set and returns the query's
// child elements.
func check(iq module.IQ) ([]*xmlstream.Element, error) {
	if !iq.From.Bare().Equal(iq.To) {
		// XEP-0049 §2.3 prefers forbidden to service-unavailable.
		return nil, stanza.Forbidden("private storage belongs to its owner only")
	}
	var kids []*xmlstream.Element
	for c := range iq.Payload.Elements() {
		if reserved[c.Name.Space] {
			return nil, notAcceptable(fmt.Sprintf("the namespace %q is reserved", c.Name.Space))
		}
		if len(c.Name.Space) > storage.MaxKeyBytes {
			return nil, notAcceptable("the namespace is too long")
		}
		kids = append(kids, c)
	}
	if len(kids) == 0 {
		// §2.3: "At least one child element ... MUST be included;
		// otherwise the server MUST respond with a Not Acceptable error".
		return nil, notAcceptable("the query must contain an element in the namespace to store or retrieve")
	}
	return kids, nil
}

func (m *Module) get(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	kids, err := check(iq)
	if err != nil {
		return nil, err
	}
	if len(kids) > 1 {
		return nil, stanza.BadRequest("ask for one namespace per request")
	}
	req := kids[0]
	stored, err := m.Stored(ctx, iq.To, req.Name.Space)
	if err != nil {
		return nil, sealstore.ForClient(err)
	}
	if slot := m.slots[req.Name.Space]; slot != nil {
		if stored, err = slot.Get(ctx, iq.To, stored); err != nil {
			return nil, err
		}
	}
	q := xmlstream.New(NS, "query")
	if stored == nil || stored.FirstElement() == nil {
		// Nothing stored: the request's element comes back empty, as
		// every implementation does and clients expect.
		return q.AddChild(xmlstream.New(req.Name.Space, req.Name.Local)), nil
	}
	for c := range stored.Elements() {
		q.AddChild(c)
	}
	return q, nil
}

func (m *Module) set(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	kids, err := check(iq)
	if err != nil {
		return nil, err
	}
	// §2.3 allows several elements in one set; those sharing a namespace
	// are kept (and returned) together, each namespace replacing what
	// was stored for it. Everything is checked before anything is
	// written, so a refused set changes nothing.
	var order []string
	groups := map[string]*xmlstream.Element{}
	for _, c := range kids {
		g := groups[c.Name.Space]
		if g == nil {
			g = xmlstream.New(NS, "query")
			groups[c.Name.Space] = g
			order = append(order, c.Name.Space)
		}
		g.AddChild(c)
	}
	owner := iq.To.String()
	values := make([][]byte, len(order))
	for i, ns := range order {
		values[i] = groups[ns].Append(nil, "")
		if len(values[i]) > MaxBytes {
			return nil, notAcceptable(fmt.Sprintf("the data for %s is %d bytes; at most %d are kept", ns, len(values[i]), MaxBytes))
		}
	}
	if err := m.checkCount(ctx, owner, order); err != nil {
		return nil, err
	}
	// Slots go first: they may still refuse the request.
	for i, ns := range order {
		slot := m.slots[ns]
		if slot == nil {
			continue
		}
		keep, err := slot.Set(ctx, iq.To, groups[ns])
		if err != nil {
			return nil, err
		}
		values[i] = nil
		if keep != nil {
			values[i] = keep.Append(nil, "")
		}
	}
	for i, ns := range order {
		if values[i] == nil {
			if err := m.kv.Delete(ctx, owner, ns); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return nil, fmt.Errorf("private: clearing %s of %s: %w", ns, owner, err)
			}
			continue
		}
		if err := m.kv.Put(ctx, owner, ns, values[i]); err != nil {
			return nil, fmt.Errorf("private: storing %s of %s: %w", ns, owner, err)
		}
	}
	return nil, nil
}

// checkCount refuses a set that would take the account past MaxNamespaces.
func (m *Module) checkCount(ctx context.Context, owner string, namespaces []string) error {
	// By index, which needs no key (an import while the owner is away).
	idx, err := m.kv.Indexes(ctx, owner)
	if err != nil {
		return fmt.Errorf("private: listing the namespaces of %s: %w", owner, err)
	}
	have := make(map[string]bool, len(idx))
	for _, i := range idx {
		have[i] = true
	}
	n := len(idx)
	for _, ns := range namespaces {
		if !have[m.kv.Index(owner, ns)] {
			n++
		}
	}
	if n > MaxNamespaces {
		return notAcceptable(fmt.Sprintf("at most %d namespaces can be stored", MaxNamespaces))
	}
	return nil
}
