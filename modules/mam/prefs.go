package mam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// Default archiving modes of XEP-0313 §7.
const (
	modeAlways = "always"
	modeNever  = "never"
	modeRoster = "roster"
)

// prefs are a user's archiving preferences as kept in the KV store. JIDs
// are canonical strings, bare or full as the user gave them.
type prefs struct {
	Default string   `json:"default"`
	Always  []string `json:"always,omitempty"`
	Never   []string `json:"never,omitempty"`
}

// defaultPrefs archive everything: a user who never set preferences gets
// the archive that multi-device clients expect.
var defaultPrefs = prefs{Default: modeAlways}

// maxCachedPrefs bounds the preferences kept in memory; the cache spares
// a database read for every archived message.
const maxCachedPrefs = 10000

func (m *Module) loadPrefs(ctx context.Context, owner jid.JID) (prefs, error) {
	m.prefsMu.Lock()
	p, ok := m.prefsCache[owner.String()]
	m.prefsMu.Unlock()
	if ok {
		return p, nil
	}
	p, err := m.readPrefs(ctx, owner)
	if err != nil {
		return p, err
	}
	m.prefsMu.Lock()
	if m.prefsCache == nil || len(m.prefsCache) >= maxCachedPrefs {
		m.prefsCache = make(map[string]prefs)
	}
	m.prefsCache[owner.String()] = p
	m.prefsMu.Unlock()
	return p, nil
}

func (m *Module) forgetPrefs(owner jid.JID) {
	m.prefsMu.Lock()
	defer m.prefsMu.Unlock()
	delete(m.prefsCache, owner.String())
}

func (m *Module) readPrefs(ctx context.Context, owner jid.JID) (prefs, error) {
	raw, err := m.kv.Get(ctx, owner.String(), kvKey)
	if errors.Is(err, storage.ErrNotFound) {
		return defaultPrefs, nil
	}
	if err != nil {
		return prefs{}, fmt.Errorf("mam: reading preferences of %s: %w", owner, err)
	}
	var p prefs
	if err := json.Unmarshal(raw, &p); err != nil {
		return prefs{}, fmt.Errorf("mam: decoding preferences of %s: %w", owner, err)
	}
	return p, nil
}

// listed reports whether with, or its bare JID, is in list.
func listed(list []string, with jid.JID) bool {
	return slices.Contains(list, with.String()) || slices.Contains(list, with.Bare().String())
}

// wants reports whether owner's preferences archive a message exchanged
// with with. "never" wins over "always" when a JID is in both: keeping a
// message the user asked not to keep is the worse mistake.
func (m *Module) wants(ctx context.Context, owner, with jid.JID) (bool, error) {
	p, err := m.loadPrefs(ctx, owner)
	if err != nil {
		return false, err
	}
	switch {
	case listed(p.Never, with):
		return false, nil
	case listed(p.Always, with):
		return true, nil
	}
	switch p.Default {
	case modeAlways:
		return true, nil
	case modeRoster:
		_, inRoster, err := m.host.Roster().Contact(ctx, owner, with.Bare())
		if err != nil {
			return false, fmt.Errorf("mam: %w", err)
		}
		return inRoster, nil
	}
	return false, nil
}

func prefsElement(p prefs) *xmlstream.Element {
	el := xmlstream.New(NS, "prefs", "default", p.Default)
	for _, l := range []struct {
		name string
		jids []string
	}{{"always", p.Always}, {"never", p.Never}} {
		list := xmlstream.New(NS, l.name)
		for _, j := range l.jids {
			list.AddChild(xmlstream.New(NS, "jid").AddText(j))
		}
		el.AddChild(list)
	}
	return el
}

func (m *Module) getPrefs(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if err := own(iq); err != nil {
		return nil, err
	}
	p, err := m.loadPrefs(ctx, iq.To)
	if err != nil {
		return nil, err
	}
	return prefsElement(p), nil
}

// parseJIDList reads <always/> or <never/>: canonical JIDs, sorted, without
// duplicates.
func parseJIDList(list *xmlstream.Element) ([]string, error) {
	if list == nil {
		return nil, nil
	}
	var out []string
	for c := range list.Elements() {
		if c.Name.Space != NS || c.Name.Local != "jid" {
			continue
		}
		j, err := jid.Parse(c.Text())
		if err != nil {
			return nil, stanza.JIDMalformed(fmt.Sprintf("%q in <%s/> is not a JID", c.Text(), list.Name.Local))
		}
		out = append(out, j.String())
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > maxPrefsJIDs {
		return nil, stanza.PolicyViolation(fmt.Sprintf("at most %d JIDs per list", maxPrefsJIDs))
	}
	return out, nil
}

func (m *Module) setPrefs(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if err := own(iq); err != nil {
		return nil, err
	}
	var p prefs
	switch p.Default = iq.Payload.Attr("default"); p.Default {
	case modeAlways, modeNever, modeRoster:
	default:
		return nil, stanza.BadRequest("default must be always, never or roster")
	}
	var err error
	if p.Always, err = parseJIDList(iq.Payload.Child(NS, "always")); err != nil {
		return nil, err
	}
	if p.Never, err = parseJIDList(iq.Payload.Child(NS, "never")); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("mam: encoding preferences: %w", err)
	}
	m.forgetPrefs(iq.To)
	if err := m.kv.Put(ctx, iq.To.String(), kvKey, raw); err != nil {
		return nil, fmt.Errorf("mam: saving preferences of %s: %w", iq.To, err)
	}
	m.forgetPrefs(iq.To)
	// XEP-0313 §7.2: the result carries the preferences now in force.
	return prefsElement(p), nil
}
