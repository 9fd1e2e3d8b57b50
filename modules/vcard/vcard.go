// Package vcard stores and serves vcard-temp (XEP-0054) profiles of local
// accounts. A vCard is kept as the serialised element, so whatever a
// client put in it comes back unchanged; only its size is bounded.
package vcard

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

const NS = "vcard-temp"

// MaxBytes bounds a stored vCard (serialised). Avatars belong in
// XEP-0084 or HTTP upload; 64 KiB still fits a small embedded photo.
const MaxBytes = 64 << 10

// kvNS and kvKey address the one vCard of an account in the KV store.
const (
	kvNS  = "vcard-temp"
	kvKey = ""
)

type Module struct {
	host  module.Host
	kv    storage.KV
	hooks []SetHook
}

func New() *Module { return &Module{} }

func (*Module) Name() string { return "vcard" }

func (m *Module) Start(h module.Host) error {
	m.host = h
	m.kv = h.Store().KV()
	name := xmlstream.Name{Space: NS, Local: "vCard"}
	h.HandleIQ(module.Account, "get", name, m.get)
	h.HandleIQ(module.Account, "set", name, m.set)
	h.AddFeature(module.Account, NS)
	return nil
}

func (m *Module) get(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	el, found, err := m.Load(ctx, iq.To)
	if err != nil {
		return nil, err
	}
	if !found {
		// XEP-0054 §3.1 lets the owner get an empty vCard, which clients
		// handle better than an error. For someone else's account §3.2
		// asks for an error, the same one as for an account that does
		// not exist (the router answers those with service-unavailable),
		// so that vCards cannot be used to find out who has an account.
		if iq.From.Bare().Equal(iq.To) {
			return xmlstream.New(NS, "vCard"), nil
		}
		return nil, stanza.ServiceUnavailable()
	}
	return el, nil
}

func (m *Module) set(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if !iq.From.Bare().Equal(iq.To) {
		return nil, stanza.Forbidden("only the owner may change a vCard")
	}
	vc := iq.Payload
	if vc.FirstElement() == nil && strings.TrimSpace(vc.Text()) == "" {
		vc = nil
	} else {
		for _, h := range m.hooks {
			if err := h.Check(vc); err != nil {
				return nil, err
			}
		}
	}
	if err := m.Store(ctx, iq.To, vc); err != nil {
		return nil, err
	}
	for _, h := range m.hooks {
		h.Stored(ctx, iq.To, vc)
	}
	return nil, nil
}

// SetHook lets another module take part when a client sets its vCard
// (XEP-0398 converts its photo to a PEP avatar).
type SetHook struct {
	// Check sees a vCard before it is stored; an error refuses it, and
	// nothing is stored.
	Check func(vc *xmlstream.Element) error
	// Stored runs once the vCard is stored; vc is nil when the client
	// cleared it.
	Stored func(ctx context.Context, owner jid.JID, vc *xmlstream.Element)
}

// OnSet adds h. Call it while the server starts (from a module's Start).
// Store, used by conversions, does not run the hooks.
func (m *Module) OnSet(h SetHook) { m.hooks = append(m.hooks, h) }

// Load returns the stored vCard of an account; found is false when it
// has none.
func (m *Module) Load(ctx context.Context, owner jid.JID) (vc *xmlstream.Element, found bool, err error) {
	o := owner.Bare().String()
	data, err := m.kv.Get(ctx, o, kvNS, kvKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("vcard: reading the vCard of %s: %w", o, err)
	}
	el, err := xmlstream.ParseElement(data, "")
	if err != nil {
		return nil, false, fmt.Errorf("vcard: the stored vCard of %s is damaged: %w", o, err)
	}
	if el.Name.Space != NS || el.Name.Local != "vCard" {
		return nil, false, fmt.Errorf("vcard: the stored vCard of %s is a {%s}%s", o, el.Name.Space, el.Name.Local)
	}
	return el, true, nil
}

// Store replaces an account's vCard (nil deletes it) without running the
// hooks. A vCard larger than MaxBytes is refused with a stanza error.
func (m *Module) Store(ctx context.Context, owner jid.JID, vc *xmlstream.Element) error {
	o := owner.Bare().String()
	if vc == nil {
		// Clearing a vCard deletes it rather than keeping an empty one:
		// nothing about the user stays on the server.
		if err := m.kv.Delete(ctx, o, kvNS, kvKey); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("vcard: clearing the vCard of %s: %w", o, err)
		}
		return nil
	}
	data := vc.Append(nil, "")
	if len(data) > MaxBytes {
		return &stanza.Error{Type: stanza.Modify, Condition: "not-acceptable",
			Text: fmt.Sprintf("the vCard is %d bytes; at most %d are kept", len(data), MaxBytes)}
	}
	if err := m.kv.Put(ctx, o, kvNS, kvKey, data); err != nil {
		return fmt.Errorf("vcard: storing the vCard of %s: %w", o, err)
	}
	return nil
}
