package modtest

import (
	"context"
	"slices"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/xmlstream"
)

// AddComponent records a service domain's handler.
func (h *Host) AddComponent(c module.Component, fn module.ComponentHandler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.components == nil {
		h.components = map[string]module.ComponentHandler{}
	}
	h.components[c.Domain] = fn
	h.componentList = append(h.componentList, c)
}

func (h *Host) Components() []module.Component {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.componentList)
}

// ToComponent hands a stanza to the component of to's domain, as the
// router would; it reports false when there is none.
func (h *Host) ToComponent(ctx context.Context, from, to jid.JID, el *xmlstream.Element) bool {
	h.mu.Lock()
	fn := h.components[to.Domain()]
	h.mu.Unlock()
	if fn == nil {
		return false
	}
	fn(ctx, from, to, el)
	return true
}
