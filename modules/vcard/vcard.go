// Package vcard stores and serves vcard-temp (XEP-0054) profiles of local
// accounts. A vCard is kept as the serialised element, so whatever a
// client put in it comes back unchanged; only its size is bounded.
//
// Stored vCards are sealed under the server key (storage.key_file),
// bound to their owner: others must read them while the owner is away,
// so a per-user key cannot do, but a copy of the database alone reads
// nothing. vCards stored in clear by earlier versions stay readable and
// are sealed by a job at start.
package vcard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/seal"
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
	host   module.Host
	kv     storage.KV
	sealer *seal.Sealer
	hooks  []SetHook
	// sealed is set once the job at start has sealed every vCard stored
	// in clear by an earlier version.
	sealed atomic.Bool
	// mu keeps the job from writing back an old clear vCard over one
	// the owner sets in between.
	mu sync.Mutex
}

func New() *Module { return &Module{} }

func (*Module) Name() string { return "vcard" }

func (m *Module) Start(h module.Host) error {
	m.host = h
	m.kv = h.Store().KV()
	var err error
	if m.sealer, err = seal.New(h.Key("vcard")); err != nil {
		return err
	}
	// The period only matters if the first run fails (the database was
	// away): the job does its work once.
	h.Every(time.Hour, m.sealClear)
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
	if data, err = m.open(o, data); err != nil {
		return nil, false, err
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
	m.mu.Lock()
	defer m.mu.Unlock()
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
	if err := m.kv.Put(ctx, o, kvNS, kvKey, m.sealer.Seal(data, ad(o))); err != nil {
		return fmt.Errorf("vcard: storing the vCard of %s: %w", o, err)
	}
	return nil
}

// ad binds a sealed vCard to its owner: moved to another account's row
// it does not open.
func ad(owner string) []byte { return seal.AD(kvNS, owner) }

// open returns the serialised vCard of a stored value: sealed, or in
// clear from an earlier version (an XML element starts with '<', which
// no sealed blob does).
func (m *Module) open(owner string, stored []byte) ([]byte, error) {
	if len(stored) > 0 && stored[0] == '<' {
		return stored, nil
	}
	plain, err := m.sealer.Open(stored, ad(owner))
	if errors.Is(err, seal.ErrWrongKey) {
		return nil, fmt.Errorf("vcard: the vCard of %s was sealed under another server key (storage.key_file lost or replaced)", owner)
	}
	if err != nil {
		return nil, fmt.Errorf("vcard: the stored vCard of %s is damaged or was altered: %w", owner, err)
	}
	return plain, nil
}

// sealOne seals the vCard of owner if it is stored in clear.
func (m *Module) sealOne(ctx context.Context, owner string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, err := m.kv.Get(ctx, owner, kvNS, kvKey)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (len(data) == 0 || data[0] != '<')) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, m.kv.Put(ctx, owner, kvNS, kvKey, m.sealer.Seal(data, ad(owner)))
}

// sealClear seals the vCards earlier versions stored in clear. It runs
// until it went through every account once.
func (m *Module) sealClear(ctx context.Context) {
	if m.sealed.Load() {
		return
	}
	owners, err := m.host.Store().Users().List(ctx, "")
	if err != nil {
		m.host.Logger().Warn("vcard: listing accounts to seal clear vCards failed; trying again later", "err", err)
		return
	}
	n := 0
	for _, o := range owners {
		if ctx.Err() != nil {
			return
		}
		sealed, err := m.sealOne(ctx, o)
		if err != nil {
			m.host.Logger().Warn("vcard: sealing a clear vCard failed; trying again later", "err", err)
			return
		}
		if sealed {
			n++
		}
	}
	if n > 0 {
		m.host.Logger().Info("vcard: sealed vCards stored in clear by an earlier version", "count", n)
	}
	m.sealed.Store(true)
}
