package avatarconv

import (
	"context"
	"strings"
	"sync"

	"parley/internal/jid"
	"parley/internal/session"
	"parley/internal/xmlstream"
)

// hashes caches the avatar hash of accounts that are online, so that
// stamping presence costs no database read per contact. An entry is
// dropped when the account's last session ends.
type hashes struct {
	mu sync.Mutex
	m  map[jid.JID]string
}

func (h *hashes) get(bare jid.JID) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.m[bare]
	return v, ok
}

// set records the hash after a change; it always wins.
func (h *hashes) set(bare jid.JID, hash string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.m[bare] = hash
}

// fill records a hash read from storage unless a change recorded one
// meanwhile: the change is newer than what was read.
func (h *hashes) fill(bare jid.JID, hash string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.m[bare]; !ok {
		h.m[bare] = hash
	}
}

func (h *hashes) drop(bare jid.JID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, bare)
}

// hashOf returns the SHA-1 of an account's vCard photo, "" for none.
func (m *Module) hashOf(ctx context.Context, bare jid.JID) (string, error) {
	if h, ok := m.hashes.get(bare); ok {
		return h, nil
	}
	vc, _, err := m.vcard.Load(ctx, bare)
	if err != nil {
		return "", err
	}
	hash := ""
	// A stored photo that does not decode was accepted before the
	// conversion was on: it counts as none.
	if p, ok, err := photoOf(vc); err == nil && ok {
		hash = p.id()
	}
	m.hashes.fill(bare, hash)
	return hash, nil
}

// decorate stamps the avatar hash into the available presence a local
// account sends (XEP-0398 §4), broadcast or directed (group chat joins
// included), once, before the presence module copies it to contacts,
// the account's own resources and rooms.
func (m *Module) decorate(ctx context.Context, from jid.JID, el *xmlstream.Element) {
	if el.Attr("type") != "" || from.Local() == "" || !m.host.IsLocal(from.Domain()) {
		return
	}
	hash, err := m.hashOf(ctx, from.Bare())
	if err != nil {
		m.host.Logger().Warn("avatarconv: reading the avatar hash failed", "user", from.Bare().String(), "err", err)
		return
	}
	stamp(el, hash)
}

// stamp puts <x xmlns='vcard-temp:x:update'><photo>hash</photo></x> in
// an available presence. A client's empty <photo/> is left alone (it
// says the client has no avatar to show, or is not ready to); an x
// without photo, or with another hash, is replaced by what the server
// knows. hash "" gives an empty photo: the account has no avatar.
func stamp(el *xmlstream.Element, hash string) {
	isUpdate := func(n xmlstream.Node) bool {
		return n.Elem != nil && n.Elem.Name.Space == nsUpdate && n.Elem.Name.Local == "x"
	}
	for _, n := range el.Children {
		if isUpdate(n) {
			if p := n.Elem.Child(nsUpdate, "photo"); p != nil && strings.TrimSpace(p.Text()) == "" {
				return
			}
		}
	}
	kept := el.Children[:0]
	for _, n := range el.Children {
		if !isUpdate(n) {
			kept = append(kept, n)
		}
	}
	el.Children = kept
	photo := xmlstream.New(nsUpdate, "photo")
	if hash != "" {
		photo.AddText(hash)
	}
	el.AddChild(xmlstream.New(nsUpdate, "x").AddChild(photo))
}

// sessionEnded forgets the hash of an account with no session left.
func (m *Module) sessionEnded(_ context.Context, s session.Session) {
	bare := s.JID().Bare()
	if len(m.host.Sessions(bare)) == 0 {
		m.hashes.drop(bare)
	}
}
