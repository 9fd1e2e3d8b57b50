// Package modtest is a module.Host for the unit tests of feature modules:
// the real registry (internal/module) holds what a module registers, the
// real store (SQLite, in memory) holds its data, and the host adds what a
// test needs to drive a module and observe it: sessions that record what
// they are sent, IQ dispatch and filters run the way the router runs
// them, and the stanzas a module routes or delivers. It never opens a
// socket or a file, so module tests stay fast and focused.
package modtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"parley/internal/accounts"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/vault"
	"parley/internal/xmlstream"
)

// Host implements module.Host. Registrations go to the embedded registry,
// the one the server uses; Route and Deliver only record the stanza
// (TakeRouted, TakeDelivered): tests assert on what a module chose to send
// rather than on what a router would make of it.
type Host struct {
	*module.Registry

	domains  map[string]bool
	store    *Store
	accounts *accounts.Service
	vault    *vault.Vault
	logs     *lockedBuffer
	log      *slog.Logger

	mu        sync.Mutex
	sessions  map[jid.JID][]*Session
	routed    []*xmlstream.Element
	delivered []*xmlstream.Element
	jobs      []Job
}

var _ module.Host = (*Host)(nil)

// NewHost returns a host serving the given domains, with an empty store.
func NewHost(domains ...string) *Host {
	st, err := newStore()
	if err != nil {
		panic(err) // an in-memory database that cannot be made: nothing to test
	}
	h := &Host{
		Registry: module.NewRegistry(),
		domains:  map[string]bool{},
		store:    st,
		logs:     &lockedBuffer{},
		sessions: map[jid.JID][]*Session{},
	}
	for _, d := range domains {
		h.domains[d] = true
	}
	h.log = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.vault = h.newVault()
	h.accounts = accounts.New(st, h.vault)
	return h
}

// Restart returns a new host on the same store and domains, with nothing
// registered and no sessions: the server started again on its database,
// for tests that check what survives a restart.
func (h *Host) Restart() *Host {
	n := &Host{
		Registry: module.NewRegistry(),
		domains:  h.domains,
		store:    h.store,
		accounts: h.accounts,
		logs:     h.logs,
		log:      h.log,
		sessions: map[jid.JID][]*Session{},
	}
	// Keys are held in memory only: after a restart nobody is unlocked.
	n.vault = n.newVault()
	n.accounts = accounts.New(n.store, n.vault)
	return n
}

// Storage returns the host's store, with the faults tests can inject.
func (h *Host) Storage() *Store { return h.store }

// AddUser creates a local account; it panics on a bad JID or a duplicate,
// which are mistakes in the test itself.
func (h *Host) AddUser(bare string) {
	j := jid.MustParse(bare)
	if err := h.store.Users().Create(context.Background(), storage.Account{JID: j.Bare().String()}); err != nil {
		panic(err)
	}
}

// Logs returns everything modules logged so far.
func (h *Host) Logs() string { return h.logs.String() }

// HasIQ reports whether a handler is registered for the key.
func (h *Host) HasIQ(target module.Target, typ string, payload xmlstream.Name) bool {
	return h.IQHandler(target, typ, payload) != nil
}

// PreAuthIQ returns the pre-authentication handler for payload, or nil.
func (h *Host) PreAuthIQ(payload xmlstream.Name) module.PreAuthIQHandler {
	return h.PreAuthIQHandler(payload)
}

// Message runs the message hooks as the router would.
func (h *Host) Message(ctx context.Context, ev module.MessageEvent) { h.RunMessageHooks(ctx, ev) }

// IQResult offers an IQ result or error (as a client would send it, with
// 'from' and 'to' set) to the IQ result handlers like the router does,
// and reports whether one handled it.
func (h *Host) IQResult(ctx context.Context, el *xmlstream.Element) bool {
	return h.RunIQResult(ctx, jid.MustParse(el.Attr("from")), jid.MustParse(el.Attr("to")), el)
}

// ToComponent hands a stanza to the component of to's domain, as the
// router would; it reports false when there is none.
func (h *Host) ToComponent(ctx context.Context, from, to jid.JID, el *xmlstream.Element) bool {
	fn := h.Component(to.Domain())
	if fn == nil {
		return false
	}
	fn(ctx, from, to, el)
	return true
}

// HTTPHandler serves the registered HTTP handlers as the server's HTTPS
// listener would (e.g. for httptest); with none it answers 404.
func (h *Host) HTTPHandler() http.Handler {
	if hh := h.Registry.HTTPHandler(); hh != nil {
		return hh
	}
	return http.NotFoundHandler()
}

func (h *Host) IsLocal(domain string) bool { return h.domains[domain] }

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
	bound, ended := h.SessionBoundHooks(), h.SessionEndedHooks()
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
	h.mu.Unlock()
	if i < 0 {
		return
	}
	for _, fn := range h.SessionEndedHooks() {
		fn(ctx, s)
	}
}

// Key derives a per-purpose key from a fixed test secret.
func (h *Host) Key(purpose string) []byte {
	k := sha256.Sum256([]byte("modtest secret/" + purpose))
	return k[:]
}

func (h *Host) Store() storage.Store      { return h.store }
func (h *Host) Vault() *vault.Vault       { return h.vault }
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
		if _, err := h.store.Users().Get(ctx, toJID.String()); err != nil {
			return nil, stanza.ServiceUnavailable()
		}
	}
	fn := h.IQHandler(target, typ, payload.Name)
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
	for _, f := range h.Filters() {
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

// Job is a periodic job a module registered with Every.
type Job struct {
	Period time.Duration
	Run    func(ctx context.Context)
}

// Every records the job instead of starting the registry's ticker; tests
// run it with RunJobs, so that no goroutine runs behind a test's back.
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
