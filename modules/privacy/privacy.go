// Package privacy holds the server's spam and encryption policies, as a
// router filter:
//
//   - block strangers: messages, and subscription requests after the
//     first, from addresses not in the recipient's roster are dropped.
//     IQs (OMEMO device list and bundle fetches), messages from group
//     chats the user is in and from the server itself still pass. Users
//     override the server's default with an ad-hoc command.
//   - require end-to-end encryption: one-to-one chat messages with a body
//     and no OMEMO, OpenPGP or OTR are refused (enforce) or delivered with
//     a daily reminder to the sender (warn).
package privacy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"parley/internal/admin"
	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/adhoc"
)

// E2EE policies.
const (
	E2EEOff     = "off"
	E2EEWarn    = "warn"
	E2EEEnforce = "enforce"
)

// Options configure the module.
type Options struct {
	BlockStrangers bool     // the default for users who did not choose
	RequireE2EE    string   // E2EEOff, E2EEWarn or E2EEEnforce
	Admins         []string // bare JIDs whose messages are exempt from RequireE2EE
	// Live, when set, gives BlockStrangers and RequireE2EE in force at
	// each stanza (a reload may change them), AdminsNow the admins; the
	// other fields of what Live returns are ignored.
	Live      func() Options
	AdminsNow func() []string
	Now       func() time.Time
}

const (
	nsSettings  = "urn:parley:privacy"
	keyBlock    = "block_strangers"
	nsAsked     = "urn:parley:privacy:asked" // strangers that sent their one subscription request
	warnEvery   = 24 * time.Hour
	maxWarnings = 100000 // bounds the warned-senders map
	// CommandNode is the per-user block-strangers command.
	CommandNode = "urn:parley:privacy#block-strangers"
)

// E2EEText is the reason given with policy-violation.
const E2EEText = "this server requires end-to-end encryption (OMEMO, OpenPGP or OTR) for one-to-one messages; turn it on in your client"

type Module struct {
	opts Options
	host module.Host

	mu     sync.Mutex
	warned map[jid.JID]time.Time  // warn mode: when each sender was last told
	passed [64]*xmlstream.Element // see pass
	next   int
}

func New(opts Options) *Module {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RequireE2EE == "" {
		opts.RequireE2EE = E2EEOff
	}
	return &Module{opts: opts, warned: make(map[jid.JID]time.Time)}
}

func (*Module) Name() string { return "privacy" }

// admins are the admins in force, asked for only when a message needs
// the E2EE exemption checked.
func (m *Module) admins(o Options) []string {
	if m.opts.AdminsNow != nil {
		return m.opts.AdminsNow()
	}
	return o.Admins
}

// settings returns the options in force.
func (m *Module) settings() Options {
	if m.opts.Live == nil {
		return m.opts
	}
	o := m.opts.Live()
	if o.RequireE2EE == "" {
		o.RequireE2EE = E2EEOff
	}
	o.Admins = m.opts.Admins
	return o
}

func (m *Module) Start(h module.Host) error {
	m.host = h
	h.AddFilter(m.filter)
	return nil
}

func (m *Module) filter(ctx context.Context, from, to jid.JID, el *xmlstream.Element, outbound bool) (bool, *stanza.Error) {
	if o := m.settings(); o.RequireE2EE != E2EEOff && (outbound || !m.host.IsLocal(from.Domain())) {
		if stop, se := m.checkE2EE(ctx, o, from, to, el); stop {
			return true, se
		}
	}
	if !outbound {
		return m.stranger(ctx, from, to, el), nil
	}
	return false, nil
}

// encrypted reports whether a message carries end-to-end encryption:
// OMEMO (old and :2), OpenPGP for XMPP (XEP-0373), legacy OpenPGP
// (XEP-0027), an Explicit Message Encryption marker (XEP-0380), or an OTR
// body.
func encrypted(el *xmlstream.Element) bool {
	for _, n := range [][2]string{
		{"eu.siacs.conversations.axolotl", "encrypted"},
		{"urn:xmpp:omemo:2", "encrypted"},
		{"urn:xmpp:openpgp:0", "openpgp"},
		{"jabber:x:encrypted", "x"},
		{"urn:xmpp:eme:0", "encryption"},
	} {
		if el.Child(n[0], n[1]) != nil {
			return true
		}
	}
	return strings.HasPrefix(el.Child(stanza.NSClient, "body").Text(), "?OTR")
}

func (m *Module) checkE2EE(ctx context.Context, o Options, from, to jid.JID, el *xmlstream.Element) (bool, *stanza.Error) {
	if el.Name.Local != "message" || el.Attr("type") != "chat" || el.Child(stanza.NSClient, "body") == nil || encrypted(el) {
		return false, nil
	}
	// The server's own address and its admins' notices are exempt.
	if from.Local() == "" || to.Local() == "" || slices.Contains(m.admins(o), from.Bare().String()) {
		return false, nil
	}
	if o.RequireE2EE == E2EEEnforce {
		return true, &stanza.Error{Type: stanza.Modify, Condition: "policy-violation", Text: E2EEText}
	}
	if m.host.IsLocal(from.Domain()) && m.shouldWarn(from.Bare()) {
		m.host.Route(ctx, admin.Notice(from.Domain(), from.String(), "chat",
			"Your message to "+to.Bare().String()+" was not end-to-end encrypted. "+
				"This server asks you to turn on encryption (OMEMO, OpenPGP or OTR) for one-to-one chats; "+
				"this reminder comes once a day.", ""))
	}
	return false, nil
}

// shouldWarn records a warning to sender unless one went out within a day.
func (m *Module) shouldWarn(sender jid.JID) bool {
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.warned[sender]; ok && now.Sub(t) < warnEvery {
		return false
	}
	if len(m.warned) >= maxWarnings {
		for k, t := range m.warned {
			if now.Sub(t) >= warnEvery {
				delete(m.warned, k)
			}
		}
		if len(m.warned) >= maxWarnings {
			return false
		}
	}
	m.warned[sender] = now
	return true
}

// stranger reports whether an inbound stanza for a local account comes
// from a stranger the account does not want to hear from.
func (m *Module) stranger(ctx context.Context, from, to jid.JID, el *xmlstream.Element) bool {
	switch el.Name.Local {
	case "message":
		if el.Attr("type") == "error" {
			return false // the answer to something the user sent
		}
	case "presence":
		if el.Attr("type") != "subscribe" {
			return false
		}
	default:
		return false // IQs: OMEMO bundle and device list fetches
	}
	if from.Local() == "" || to.Local() == "" {
		return false // a server, this one included
	}
	if !m.blocks(ctx, to.Bare()) {
		return false
	}
	if _, ok, err := m.host.Roster().Contact(ctx, to.Bare(), from.Bare()); err != nil || ok {
		return false // a contact; and on a storage error, deliver rather than lose
	}
	if el.Name.Local == "message" {
		// Group chats the user is in: the room got the user's presence.
		for _, s := range m.host.Sessions(to.Bare()) {
			if s.State().DirectedTo(from.Bare()) {
				return false
			}
		}
		return true
	}
	// One subscription request per stranger: the first is delivered,
	// repeats are spam. The roster module keeps the first and hands it
	// over at each login itself, past this filter.
	if m.passing(el) {
		return false
	}
	kv := m.host.Store().KV()
	_, err := kv.Get(ctx, to.Bare().String(), nsAsked, from.Bare().String())
	if errors.Is(err, storage.ErrNotFound) {
		if err := kv.Put(ctx, to.Bare().String(), nsAsked, from.Bare().String(), []byte(m.opts.Now().UTC().Format(time.RFC3339))); err != nil {
			m.host.Logger().Error("privacy: storing a subscription request failed", "err", err)
		}
		m.pass(el)
		return false
	}
	return err == nil
}

// The first request from a stranger meets this filter more than once on
// its way (in the router, then where the roster module delivers it):
// the element let through is remembered, by identity, so that its later
// checks let it on. Holding the pointers keeps them from being reused.
func (m *Module) pass(el *xmlstream.Element) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.passed[m.next%len(m.passed)] = el
	m.next++
}

func (m *Module) passing(el *xmlstream.Element) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Contains(m.passed[:], el)
}

// blocks says whether owner blocks strangers: their own choice, else the
// server's default.
func (m *Module) blocks(ctx context.Context, owner jid.JID) bool {
	v, err := m.host.Store().KV().Get(ctx, owner.String(), nsSettings, keyBlock)
	if err != nil {
		return m.settings().BlockStrangers
	}
	return string(v) == "1"
}

// Commands offers every user the block-strangers switch.
func (m *Module) Commands() []adhoc.Command {
	return []adhoc.Command{{
		Node: CommandNode, Name: "Block messages from strangers",
		Form: func(ctx context.Context, from jid.JID) (*dataform.Form, error) {
			f := dataform.New(dataform.TypeForm, dataform.Privacy)
			f.Title = "Block strangers"
			f.Instructions = "Drop messages from addresses that are not in your contact list (each may still ask once to be added)."
			f.AddBool(keyBlock, "Block messages from strangers", m.blocks(ctx, from.Bare()))
			return f, nil
		},
		Run: func(ctx context.Context, from jid.JID, f *dataform.Form) (adhoc.Result, error) {
			on, ok, err := f.Bool(keyBlock)
			if err != nil || !ok {
				return adhoc.Result{}, stanza.BadRequest("the form needs block_strangers, true or false")
			}
			v := "0"
			if on {
				v = "1"
			}
			if err := m.host.Store().KV().Put(ctx, from.Bare().String(), nsSettings, keyBlock, []byte(v)); err != nil {
				return adhoc.Result{}, err
			}
			if on {
				return adhoc.Result{Note: "messages from strangers are blocked"}, nil
			}
			return adhoc.Result{Note: "messages from strangers are delivered"}, nil
		},
	}}
}
