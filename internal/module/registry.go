package module

import (
	"fmt"
	"slices"
	"sync"

	"parley/internal/xmlstream"
)

type iqKey struct {
	target  Target
	typ     string
	payload xmlstream.Name
}

// Registry stores what modules registered. It is filled during start-up
// and read-only afterwards, but guarded anyway so that a late
// registration cannot race with a lookup.
type Registry struct {
	mu         sync.RWMutex
	iq         map[iqKey]IQHandler
	features   map[Target][]string
	identities []Identity
}

func NewRegistry() *Registry {
	return &Registry{iq: make(map[iqKey]IQHandler), features: make(map[Target][]string)}
}

func (r *Registry) HandleIQ(target Target, typ string, payload xmlstream.Name, h IQHandler) {
	if typ != "get" && typ != "set" {
		panic(fmt.Sprintf("module: IQ handler type must be get or set, not %q", typ))
	}
	k := iqKey{target, typ, payload}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.iq[k]; dup {
		panic(fmt.Sprintf("module: two handlers for %s IQ {%s}%s", typ, payload.Space, payload.Local))
	}
	r.iq[k] = h
}

// IQHandler finds the handler for an IQ, nil when none is registered.
func (r *Registry) IQHandler(target Target, typ string, payload xmlstream.Name) IQHandler {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.iq[iqKey{target, typ, payload}]
}

func (r *Registry) AddFeature(target Target, feature string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Contains(r.features[target], feature) {
		r.features[target] = append(r.features[target], feature)
		slices.Sort(r.features[target])
	}
}

func (r *Registry) Features(target Target) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.features[target])
}

func (r *Registry) AddIdentity(id Identity) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.identities = append(r.identities, id)
}

func (r *Registry) Identities() []Identity {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.identities)
}
