// Package modtest is a fake module.Host for the unit tests of feature
// modules: it records what a module registers, dispatches IQs and runs
// filters the way the router does, captures what a module sends, and
// keeps data in an in-memory store with the drivers' semantics. It never
// opens a socket or a database, so module tests stay fast and focused.
package modtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

type iqKey struct {
	target  module.Target
	typ     string
	payload xmlstream.Name
}

// Host implements module.Host in memory. Route and Deliver only record the
// stanza (Routed, Delivered); tests assert on what a module chose to send
// rather than on what a router would make of it.
type Host struct {
	components     map[string]module.ComponentHandler
	componentList  []module.Component
	messageHooks   []module.MessageHook
	iqResults      []module.IQResultHandler
	mu             sync.Mutex
	http           map[string]http.Handler
	httpsAddr      net.Addr
	domains        map[string]bool
	iq             map[iqKey]module.IQHandler
	preAuth        map[xmlstream.Name]module.PreAuthIQHandler
	features       map[module.Target][]string
	identities     []module.Identity
	presence       module.PresenceHandler
	roster         module.Roster
	offline        module.OfflineHandler
	filters        []module.Filter
	presenceHooks  []module.OutboundPresenceHook
	bound, ended   []module.SessionHook
	streamFeatures []module.StreamFeature
	events         map[string][]module.SessionHook
	sessions       map[jid.JID][]*Session
	routed         []*xmlstream.Element
	delivered      []*xmlstream.Element
	jobs           []Job

	discoNodes map[string]module.DiscoNode
	infoForms  []*xmlstream.Element

	store    *Store
	accounts *Accounts
	logs     *lockedBuffer
	log      *slog.Logger
}

var _ module.Host = (*Host)(nil)

func (h *Host) HandleDiscoNode(node string, n module.DiscoNode) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.discoNodes == nil {
		h.discoNodes = make(map[string]module.DiscoNode)
	}
	if _, dup := h.discoNodes[node]; dup {
		panic("modtest: disco node " + node + " registered twice")
	}
	h.discoNodes[node] = n
}

func (h *Host) DiscoNode(node string) (module.DiscoNode, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, ok := h.discoNodes[node]
	return n, ok
}

func (h *Host) AddInfoForm(form *xmlstream.Element) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.infoForms = append(h.infoForms, form)
}

func (h *Host) InfoForms() []*xmlstream.Element {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.infoForms)
}

// NewHost returns a host serving the given domains.
func NewHost(domains ...string) *Host {
	h := &Host{
		domains:  map[string]bool{},
		iq:       map[iqKey]module.IQHandler{},
		preAuth:  map[xmlstream.Name]module.PreAuthIQHandler{},
		features: map[module.Target][]string{},
		events:   map[string][]module.SessionHook{},
		sessions: map[jid.JID][]*Session{},
		store:    NewStore(),
		logs:     &lockedBuffer{},
	}
	for _, d := range domains {
		h.domains[d] = true
	}
	h.accounts = &Accounts{users: h.store.users}
	h.log = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return h
}

// FakeStore returns the in-memory store behind Store.
func (h *Host) FakeStore() *Store { return h.store }

// AddUser creates a local account; it panics on a bad JID or a duplicate,
// which are mistakes in the test itself.
func (h *Host) AddUser(bare string) {
	j := jid.MustParse(bare)
	if err := h.store.users.Create(context.Background(), storage.Account{JID: j.Bare().String()}); err != nil {
		panic(err)
	}
}

// Logs returns everything modules logged so far.
func (h *Host) Logs() string { return h.logs.String() }

func (h *Host) HandleIQ(target module.Target, typ string, payload xmlstream.Name, fn module.IQHandler) {
	if typ != "get" && typ != "set" {
		panic(fmt.Sprintf("modtest: IQ handler type must be get or set, not %q", typ))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	k := iqKey{target, typ, payload}
	if _, dup := h.iq[k]; dup {
		panic(fmt.Sprintf("modtest: two handlers for %s IQ {%s}%s", typ, payload.Space, payload.Local))
	}
	h.iq[k] = fn
}

// HasIQ reports whether a handler is registered for the key.
func (h *Host) HasIQ(target module.Target, typ string, payload xmlstream.Name) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.iq[iqKey{target, typ, payload}] != nil
}

func (h *Host) HandlePreAuthIQ(payload xmlstream.Name, fn module.PreAuthIQHandler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, dup := h.preAuth[payload]; dup {
		panic(fmt.Sprintf("modtest: two pre-auth handlers for {%s}%s", payload.Space, payload.Local))
	}
	h.preAuth[payload] = fn
}

// PreAuthIQ returns the pre-authentication handler for payload, or nil.
func (h *Host) PreAuthIQ(payload xmlstream.Name) module.PreAuthIQHandler {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.preAuth[payload]
}

func (h *Host) AddFeature(target module.Target, feature string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slices.Contains(h.features[target], feature) {
		h.features[target] = append(h.features[target], feature)
		slices.Sort(h.features[target])
	}
}

func (h *Host) Features(target module.Target) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.features[target])
}

func (h *Host) AddIdentity(id module.Identity) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.identities = append(h.identities, id)
}

func (h *Host) Identities() []module.Identity {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.identities)
}

func (h *Host) SetPresenceHandler(fn module.PresenceHandler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.presence != nil {
		panic("modtest: two presence handlers")
	}
	h.presence = fn
}

// PresenceHandler returns the installed presence handler, or nil.
func (h *Host) PresenceHandler() module.PresenceHandler {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.presence
}

func (h *Host) SetRoster(r module.Roster) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.roster != nil {
		panic("modtest: two rosters")
	}
	h.roster = r
}

// Roster is what a roster module set, else module.NoRoster{}: a test that
// needs contacts starts the roster module.
func (h *Host) Roster() module.Roster {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.roster == nil {
		return module.NoRoster{}
	}
	return h.roster
}

func (h *Host) SetOfflineHandler(fn module.OfflineHandler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.offline != nil {
		panic("modtest: two offline handlers")
	}
	h.offline = fn
}

// OfflineHandler returns the installed offline handler, or nil.
func (h *Host) OfflineHandler() module.OfflineHandler {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.offline
}

func (h *Host) AddFilter(f module.Filter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.filters = append(h.filters, f)
}

func (h *Host) OnOutboundPresence(fn module.OutboundPresenceHook) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.presenceHooks = append(h.presenceHooks, fn)
}

// RunOutboundPresence runs the outbound presence hooks in registration
// order, as the registry does.
func (h *Host) RunOutboundPresence(ctx context.Context, from jid.JID, el *xmlstream.Element) {
	h.mu.Lock()
	hooks := slices.Clone(h.presenceHooks)
	h.mu.Unlock()
	for _, fn := range hooks {
		fn(ctx, from, el)
	}
}

func (h *Host) OnMessage(fn module.MessageHook) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.messageHooks = append(h.messageHooks, fn)
}

// Message runs the message hooks as the router would.
func (h *Host) Message(ctx context.Context, ev module.MessageEvent) {
	h.mu.Lock()
	hooks := slices.Clone(h.messageHooks)
	h.mu.Unlock()
	for _, fn := range hooks {
		fn(ctx, ev)
	}
}

func (h *Host) OnSessionBound(fn module.SessionHook) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bound = append(h.bound, fn)
}

func (h *Host) OnSessionEnded(fn module.SessionHook) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended = append(h.ended, fn)
}

func (h *Host) AddStreamFeature(f module.StreamFeature) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.streamFeatures = append(h.streamFeatures, f)
}

// StreamFeatures returns the non-nil stream features for fc.
func (h *Host) StreamFeatures(fc module.FeatureContext) []*xmlstream.Element {
	h.mu.Lock()
	fs := slices.Clone(h.streamFeatures)
	h.mu.Unlock()
	var out []*xmlstream.Element
	for _, f := range fs {
		if el := f(fc); el != nil {
			out = append(out, el)
		}
	}
	return out
}

func (h *Host) IsLocal(domain string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.domains[domain]
}

func (h *Host) Route(_ context.Context, el *xmlstream.Element) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.routed = append(h.routed, el)
}

func (h *Host) Deliver(_ context.Context, el *xmlstream.Element) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.delivered = append(h.delivered, el)
}

// TakeRouted returns the stanzas passed to Route since the last call.
func (h *Host) TakeRouted() []*xmlstream.Element {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.routed
	h.routed = nil
	return out
}

// TakeDelivered returns the stanzas passed to Deliver since the last call.
func (h *Host) TakeDelivered() []*xmlstream.Element {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.delivered
	h.delivered = nil
	return out
}

func (h *Host) OnEvent(name string, fn module.SessionHook) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events[name] = append(h.events[name], fn)
}

func (h *Host) Emit(ctx context.Context, name string, s session.Session) {
	h.mu.Lock()
	hooks := slices.Clone(h.events[name])
	h.mu.Unlock()
	for _, fn := range hooks {
		fn(ctx, s)
	}
}

func (h *Host) Sessions(bare jid.JID) []session.Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]session.Session, 0, len(h.sessions[bare]))
	for _, s := range h.sessions[bare] {
		out = append(out, s)
	}
	return out
}

func (h *Host) AllSessions() []session.Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []session.Session
	for _, res := range h.sessions {
		for _, s := range res {
			out = append(out, s)
		}
	}
	return out
}

// Connect binds a new session for the full JID and runs the bound hooks,
// like the router's Bind (a session holding the same resource is
// replaced and its end hooks run first).
func (h *Host) Connect(ctx context.Context, full string) *Session {
	j := jid.MustParse(full)
	if j.IsBare() {
		panic("modtest: Connect needs a full JID, not " + full)
	}
	s := &Session{jid: j}
	h.mu.Lock()
	var replaced *Session
	list := h.sessions[j.Bare()]
	for i, o := range list {
		if o.jid.Equal(j) {
			replaced = o
			list = slices.Delete(list, i, i+1)
			break
		}
	}
	h.sessions[j.Bare()] = append(list, s)
	bound, ended := slices.Clone(h.bound), slices.Clone(h.ended)
	h.mu.Unlock()
	if replaced != nil {
		replaced.Replace()
		for _, fn := range ended {
			fn(ctx, replaced)
		}
	}
	for _, fn := range bound {
		fn(ctx, s)
	}
	return s
}

// Disconnect unbinds s and runs the end hooks, like the router's Unbind:
// the session is gone from Sessions before the hooks run.
func (h *Host) Disconnect(ctx context.Context, s *Session) {
	h.mu.Lock()
	bare := s.jid.Bare()
	i := slices.Index(h.sessions[bare], s)
	if i >= 0 {
		h.sessions[bare] = slices.Delete(h.sessions[bare], i, i+1)
		if len(h.sessions[bare]) == 0 {
			delete(h.sessions, bare)
		}
	}
	ended := slices.Clone(h.ended)
	h.mu.Unlock()
	if i < 0 {
		return
	}
	for _, fn := range ended {
		fn(ctx, s)
	}
}

// Key derives a per-purpose key from a fixed test secret.
func (h *Host) Key(purpose string) []byte {
	k := sha256.Sum256([]byte("modtest secret/" + purpose))
	return k[:]
}

// Job is a periodic job a module registered with Every.
type Job struct {
	Period time.Duration
	Run    func(ctx context.Context)
}

// Every records the job; tests run it with RunJobs, so that no goroutine
// runs behind a test's back.
func (h *Host) Every(period time.Duration, fn func(ctx context.Context)) {
	if period <= 0 {
		panic("modtest: a periodic job needs a positive period")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.jobs = append(h.jobs, Job{Period: period, Run: fn})
}

// Jobs returns the periodic jobs registered so far.
func (h *Host) Jobs() []Job {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.jobs)
}

// RunJobs runs every periodic job once, as the host's ticker would.
func (h *Host) RunJobs(ctx context.Context) {
	for _, j := range h.Jobs() {
		j.Run(ctx)
	}
}

func (h *Host) Store() storage.Store      { return h.store }
func (h *Host) Accounts() module.Accounts { return h.accounts }
func (h *Host) Logger() *slog.Logger      { return h.log }

// IQ sends an IQ request the way the router dispatches one from a local
// session: from is the sender's full JID, to the 'to' attribute ("" for
// the sender's own account). It returns the handler's result payload or
// its error; errors the router itself would raise (unknown payload,
// unknown account, remote domain) come back as *stanza.Error.
func (h *Host) IQ(ctx context.Context, from, to, typ string, payload *xmlstream.Element) (*xmlstream.Element, error) {
	fromJID := jid.MustParse(from)
	el := xmlstream.New(stanza.NSClient, "iq", "type", typ, "id", "test", "from", from)
	if to != "" {
		el.SetAttr("to", to)
	}
	if payload != nil {
		el.AddChild(payload)
	}
	var toJID jid.JID
	target := module.Account
	if to == "" {
		toJID = fromJID.Bare()
	} else {
		var err error
		if toJID, err = jid.Parse(to); err != nil {
			return nil, stanza.JIDMalformed("the 'to' address is not a valid JID")
		}
		switch {
		case !h.IsLocal(toJID.Domain()):
			return nil, stanza.RemoteServerNotFound()
		case toJID.IsDomain():
			target = module.Server
		case !toJID.IsBare():
			return nil, fmt.Errorf("modtest: IQs to full JIDs go to the session, not to modules")
		}
	}
	if stop, se := h.Filter(ctx, fromJID, toJID, el); stop {
		if se != nil {
			return nil, se
		}
		return nil, fmt.Errorf("modtest: the IQ was dropped by a filter")
	}
	if payload == nil {
		return nil, stanza.BadRequest("an IQ get or set needs a payload")
	}
	if target == module.Account && !fromJID.Bare().Equal(toJID) {
		if _, err := h.store.users.Get(ctx, toJID.String()); err != nil {
			return nil, stanza.ServiceUnavailable()
		}
	}
	h.mu.Lock()
	fn := h.iq[iqKey{target, typ, payload.Name}]
	h.mu.Unlock()
	if fn == nil {
		return nil, stanza.ServiceUnavailable()
	}
	return fn(ctx, module.IQ{From: fromJID, To: toJID, ID: "test", Type: typ, Payload: payload, Stanza: el})
}

// Filter runs the registered filters on a stanza between two addresses
// exactly as the router does: never between resources of one account,
// outbound for a local sender, then inbound for a local recipient.
func (h *Host) Filter(ctx context.Context, from, to jid.JID, el *xmlstream.Element) (stop bool, err *stanza.Error) {
	if to.IsZero() || from.Bare().Equal(to.Bare()) {
		return false, nil
	}
	h.mu.Lock()
	filters := slices.Clone(h.filters)
	h.mu.Unlock()
	for _, f := range filters {
		if from.Local() != "" && h.IsLocal(from.Domain()) {
			if stop, se := f(ctx, from, to, el, true); stop {
				return true, se
			}
		}
		if to.Local() != "" && h.IsLocal(to.Domain()) {
			if stop, se := f(ctx, from, to, el, false); stop {
				return true, se
			}
		}
	}
	return false, nil
}

// Session is a fake bound session that records what it is sent.
type Session struct {
	jid      jid.JID
	state    session.State
	mu       sync.Mutex
	got      []*xmlstream.Element
	replaced bool
}

var _ session.Session = (*Session)(nil)

func (s *Session) JID() jid.JID          { return s.jid }
func (s *Session) State() *session.State { return &s.state }

func (s *Session) Deliver(el *xmlstream.Element) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, el)
}

func (s *Session) Replace() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replaced = true
}

// Replaced reports whether another session took this one's resource.
func (s *Session) Replaced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replaced
}

// Take returns the stanzas delivered to the session since the last call.
func (s *Session) Take() []*xmlstream.Element {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.got
	s.got = nil
	return out
}

// Accounts is the fake account service over the fake Users; passwords
// are not kept, only the accounts' existence.
type Accounts struct {
	users    *Users
	mu       sync.Mutex
	disabled map[jid.JID]bool
}

func (a *Accounts) SetDisabled(ctx context.Context, bare jid.JID, off bool) error {
	if _, err := a.users.Get(ctx, bare.String()); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.disabled == nil {
		a.disabled = make(map[jid.JID]bool)
	}
	a.disabled[bare] = off
	return nil
}

func (a *Accounts) Disabled(_ context.Context, bare jid.JID) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.disabled[bare], nil
}

func (a *Accounts) Create(ctx context.Context, bare jid.JID, _ string) error {
	return a.users.Create(ctx, storage.Account{JID: bare.String()})
}

func (a *Accounts) SetPassword(ctx context.Context, bare jid.JID, _ string) error {
	_, err := a.users.Get(ctx, bare.String())
	return err
}

func (a *Accounts) Delete(ctx context.Context, bare jid.JID) error {
	return a.users.Delete(ctx, bare.String())
}

// lockedBuffer lets the logger write from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Filtered runs the filters like the router does for modules that deliver
// to sessions themselves.
func (h *Host) Filtered(ctx context.Context, from, to jid.JID, el *xmlstream.Element) bool {
	stop, _ := h.Filter(ctx, from, to, el)
	return stop
}
