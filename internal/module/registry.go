package module

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"

	"parley/internal/jid"
	"parley/internal/session"

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
	mu             sync.RWMutex
	iq             map[iqKey]IQHandler
	features       map[Target][]string
	identities     []Identity
	presence       PresenceHandler
	roster         Roster
	offline        OfflineHandler
	filters        []Filter
	presenceHooks  []OutboundPresenceHook
	bound, ended   []SessionHook
	messages       []MessageHook
	streamFeatures []StreamFeature
	events         map[string][]SessionHook
	preAuth        map[xmlstream.Name]PreAuthIQHandler
	components     map[string]ComponentHandler
	componentList  []Component
	parents        map[string]bool // components that take their subdomains
	iqResults      []IQResultHandler
	http           map[string]http.Handler
	httpsAddr      net.Addr
	jobs           jobs
	discoNodes     map[string]DiscoNode
	infoForms      []*xmlstream.Element
}

func (r *Registry) HandleDiscoNode(node string, n DiscoNode) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.discoNodes == nil {
		r.discoNodes = make(map[string]DiscoNode)
	}
	if _, dup := r.discoNodes[node]; dup {
		panic(fmt.Sprintf("module: disco node %q registered twice", node))
	}
	r.discoNodes[node] = n
}

func (r *Registry) DiscoNode(node string) (DiscoNode, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n, ok := r.discoNodes[node]
	return n, ok
}

func (r *Registry) AddInfoForm(form *xmlstream.Element) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.infoForms = append(r.infoForms, form)
}

// InfoForms returns the forms added; callers must not change them.
func (r *Registry) InfoForms() []*xmlstream.Element {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.infoForms)
}

func NewRegistry() *Registry {
	r := &Registry{iq: make(map[iqKey]IQHandler), features: make(map[Target][]string)}
	r.jobs.init()
	return r
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

func (r *Registry) SetPresenceHandler(h PresenceHandler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.presence != nil {
		panic("module: two presence handlers")
	}
	r.presence = h
}

func (r *Registry) PresenceHandler() PresenceHandler {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.presence
}

func (r *Registry) SetRoster(ro Roster) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.roster != nil {
		panic("module: two rosters")
	}
	r.roster = ro
}

func (r *Registry) Roster() Roster {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.roster == nil {
		return NoRoster{}
	}
	return r.roster
}

func (r *Registry) SetOfflineHandler(h OfflineHandler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.offline != nil {
		panic("module: two offline handlers")
	}
	r.offline = h
}

func (r *Registry) OfflineHandler() OfflineHandler {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.offline
}

func (r *Registry) AddFilter(f Filter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.filters = append(r.filters, f)
}

func (r *Registry) Filters() []Filter {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.filters
}

func (r *Registry) OnOutboundPresence(h OutboundPresenceHook) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.presenceHooks = append(r.presenceHooks, h)
}

// RunOutboundPresence runs the outbound presence hooks in registration
// order.
func (r *Registry) RunOutboundPresence(ctx context.Context, from jid.JID, el *xmlstream.Element) {
	r.mu.RLock()
	hooks := r.presenceHooks
	r.mu.RUnlock()
	for _, h := range hooks {
		h(ctx, from, el)
	}
}

func (r *Registry) OnSessionBound(h SessionHook) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bound = append(r.bound, h)
}

func (r *Registry) OnSessionEnded(h SessionHook) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = append(r.ended, h)
}

// SessionBoundHooks and SessionEndedHooks return the hooks in
// registration order.
func (r *Registry) SessionBoundHooks() []SessionHook {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.bound
}

func (r *Registry) SessionEndedHooks() []SessionHook {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.ended
}

func (r *Registry) AddStreamFeature(f StreamFeature) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.streamFeatures = append(r.streamFeatures, f)
}

// StreamFeatures returns the module features for a stream.
func (r *Registry) StreamFeatures(fc FeatureContext) []*xmlstream.Element {
	r.mu.RLock()
	fs := r.streamFeatures
	r.mu.RUnlock()
	var out []*xmlstream.Element
	for _, f := range fs {
		if el := f(fc); el != nil {
			out = append(out, el)
		}
	}
	return out
}

func (r *Registry) OnEvent(name string, h SessionHook) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.events == nil {
		r.events = make(map[string][]SessionHook)
	}
	r.events[name] = append(r.events[name], h)
}

// Emit runs the hooks of a named event in registration order.
func (r *Registry) Emit(ctx context.Context, name string, s session.Session) {
	r.mu.RLock()
	hooks := r.events[name]
	r.mu.RUnlock()
	for _, h := range hooks {
		h(ctx, s)
	}
}

func (r *Registry) HandlePreAuthIQ(payload xmlstream.Name, h PreAuthIQHandler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.preAuth == nil {
		r.preAuth = make(map[xmlstream.Name]PreAuthIQHandler)
	}
	if _, dup := r.preAuth[payload]; dup {
		panic(fmt.Sprintf("module: two pre-authentication handlers for {%s}%s", payload.Space, payload.Local))
	}
	r.preAuth[payload] = h
}

// PreAuthIQHandler finds the handler for an IQ before authentication.
func (r *Registry) PreAuthIQHandler(payload xmlstream.Name) PreAuthIQHandler {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.preAuth[payload]
}

func (r *Registry) OnMessage(h MessageHook) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.messages = append(r.messages, h)
}

// RunMessageHooks passes a message event to every message hook.
func (r *Registry) RunMessageHooks(ctx context.Context, m MessageEvent) {
	r.mu.RLock()
	hooks := r.messages
	r.mu.RUnlock()
	for _, h := range hooks {
		h(ctx, m)
	}
}

func (r *Registry) OnIQResult(h IQResultHandler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.iqResults = append(r.iqResults, h)
}

// RunIQResult offers an IQ result or error to the IQ result handlers in
// registration order and reports whether one of them handled it.
func (r *Registry) RunIQResult(ctx context.Context, from, to jid.JID, el *xmlstream.Element) bool {
	r.mu.RLock()
	hooks := r.iqResults
	r.mu.RUnlock()
	for _, h := range hooks {
		if h(ctx, from, to, el) {
			return true
		}
	}
	return false
}

func (r *Registry) AddComponent(c Component, h ComponentHandler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.components == nil {
		r.components = make(map[string]ComponentHandler)
	}
	if _, dup := r.components[c.Domain]; dup {
		panic(fmt.Sprintf("module: two components for %s", c.Domain))
	}
	r.components[c.Domain] = h
	r.componentList = append(r.componentList, c)
	if c.Subdomains {
		if r.parents == nil {
			r.parents = make(map[string]bool)
		}
		r.parents[c.Domain] = true
	}
}

// Component returns the handler of a service domain, nil when none: the
// domain's own, else that of the nearest parent domain registered with
// Subdomains.
func (r *Registry) Component(domain string) ComponentHandler {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if h := r.components[domain]; h != nil || len(r.parents) == 0 {
		return h
	}
	for d := domain; ; {
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return nil
		}
		d = d[i+1:]
		if r.parents[d] {
			return r.components[d]
		}
	}
}

func (r *Registry) Components() []Component {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.componentList)
}

func (r *Registry) HandleHTTP(pattern string, h http.Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.http == nil {
		r.http = make(map[string]http.Handler)
	}
	if _, dup := r.http[pattern]; dup {
		panic(fmt.Sprintf("module: two HTTP handlers for %q", pattern))
	}
	r.http[pattern] = h
}

// HTTPHandler returns a handler serving every registered pattern, nil
// when no module registered one.
func (r *Registry) HTTPHandler() http.Handler {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.http) == 0 {
		return nil
	}
	mux := http.NewServeMux()
	for p, h := range r.http {
		mux.Handle(p, h)
	}
	return mux
}

// SetHTTPSAddr records where the HTTPS listener is bound (nil: closed).
func (r *Registry) SetHTTPSAddr(a net.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.httpsAddr = a
}

func (r *Registry) HTTPSAddr() net.Addr {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.httpsAddr
}
