// Package vcard stores and serves vcard-temp (XEP-0054) profiles of local
// accounts. A vCard is kept as the serialised element, so whatever a
// client put in it comes back unchanged; only its size is bounded.
package vcard

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
	host module.Host
	kv   storage.KV
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
	owner := iq.To.String()
	data, err := m.kv.Get(ctx, owner, kvNS, kvKey)
	if errors.Is(err, storage.ErrNotFound) {
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
	if err != nil {
		return nil, fmt.Errorf("vcard: reading the vCard of %s: %w", owner, err)
	}
	el, err := xmlstream.ParseElement(data, "")
	if err != nil {
		return nil, fmt.Errorf("vcard: the stored vCard of %s is damaged: %w", owner, err)
	}
	if el.Name.Space != NS || el.Name.Local != "vCard" {
		return nil, fmt.Errorf("vcard: the stored vCard of %s is a {%s}%s", owner, el.Name.Space, el.Name.Local)
	}
	return el, nil
}

func (m *Module) set(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if !iq.From.Bare().Equal(iq.To) {
		return nil, stanza.Forbidden("only the owner may change a vCard")
	}
	owner := iq.To.String()
	if iq.Payload.FirstElement() == nil && strings.TrimSpace(iq.Payload.Text()) == "" {
		// Clearing a vCard deletes it rather than keeping an empty one:
		// nothing about the user stays on the server.
		if err := m.kv.Delete(ctx, owner, kvNS, kvKey); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("vcard: clearing the vCard of %s: %w", owner, err)
		}
		return nil, nil
	}
	data := iq.Payload.Append(nil, "")
	if len(data) > MaxBytes {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: "not-acceptable",
			Text: fmt.Sprintf("the vCard is %d bytes; at most %d are kept", len(data), MaxBytes)}
	}
	if err := m.kv.Put(ctx, owner, kvNS, kvKey, data); err != nil {
		return nil, fmt.Errorf("vcard: storing the vCard of %s: %w", owner, err)
	}
	return nil, nil
}
