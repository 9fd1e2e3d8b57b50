// Package router knows who is online where and moves stanzas between
// sessions, the server's own handlers and, later, other servers. It holds
// no lock while a stanza is handled or written: sessions are found in a
// sharded table and each session queues its own output.
package router

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"sync"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// Session is a bound client stream.
type Session = session.Session

const shardCount = 64

type shard struct {
	mu sync.RWMutex
	// bare JID -> resource -> session
	m map[jid.JID]map[string]Session
}

// Remote carries stanzas to domains this server does not serve
// (federation). The router has already run its filters and hooks; Send
// must answer el with an error itself when it cannot deliver it.
type Remote interface {
	Send(ctx context.Context, from, to jid.JID, el *xmlstream.Element)
}

// Peers is the rest of a cluster as the router sees it: the sessions
// bound on other nodes are Sessions whose Deliver crosses to their node
// (and which implement Acked). A single node has none, and the router
// then never calls into cluster code.
type Peers interface {
	// Session and Sessions find the sessions other nodes hold; All
	// lists them all (admin commands).
	Session(full jid.JID) Session
	Sessions(bare jid.JID) []Session
	All() []Session
	// Bound and Unbound tell the other nodes about a local session.
	Bound(ctx context.Context, s Session)
	Unbound(ctx context.Context, s Session)
	// IQResult offers the other nodes an IQ result or error that no
	// module here claimed: it answers a request one of them sent.
	IQResult(ctx context.Context, el *xmlstream.Element)
	// Component is a handler forwarding to the node that runs the
	// service of domain (group chat), nil when it runs here.
	Component(domain string) module.ComponentHandler
}

// Acked is a session on another node: DeliverAcked waits, bounded, for
// that node to say the stanza is queued to the session, and fails when
// it is not (the session or its node is gone).
type Acked interface {
	DeliverAcked(ctx context.Context, el *xmlstream.Element) error
}

// Router is the routing core of one server process.
type Router struct {
	remote Remote // nil: no federation, remote domains are unreachable
	peers  Peers  // nil: a single node
	hosts  map[string]bool
	reg    *module.Registry
	store  storage.Store
	log    *slog.Logger
	fails  *storage.FailureLog
	seed   maphash.Seed
	shards [shardCount]shard
}

func New(hosts []string, reg *module.Registry, store storage.Store, log *slog.Logger) *Router {
	r := &Router{hosts: make(map[string]bool, len(hosts)), reg: reg, store: store, log: log,
		fails: storage.NewFailureLog(log), seed: maphash.MakeSeed()}
	for _, h := range hosts {
		r.hosts[h] = true
	}
	for i := range r.shards {
		r.shards[i].m = make(map[jid.JID]map[string]Session)
	}
	return r
}

func (r *Router) IsLocal(domain string) bool { return r.hosts[domain] }

// servesDomain reports whether a stanza from domain is ours to send to
// other servers: a host or one of its services.
func (r *Router) servesDomain(domain string) bool {
	return r.hosts[domain] || r.component(domain) != nil
}

// SetPeers joins the router to a cluster. It must be called before any
// stanza is routed.
func (r *Router) SetPeers(p Peers) { r.peers = p }

// SetRemote gives the router its way to other servers. It must be called
// before any stanza is routed.
func (r *Router) SetRemote(rem Remote) { r.remote = rem }

func (r *Router) shard(bare jid.JID) *shard {
	h := maphash.String(r.seed, bare.String())
	return &r.shards[h%shardCount]
}

// Bind registers s under its full JID and returns the session it replaced,
// if any. The new session wins, which RFC 6120 §7.7.2.2 allows and which
// is what a user who reconnects from a phone with a stale session wants.
//
// The replaced session's end hooks run here, before the new session can
// send anything, so that its "unavailable" cannot overtake the new
// session's presence.
func (r *Router) Bind(ctx context.Context, s Session) (replaced Session) {
	full := s.JID()
	bare := full.Bare()
	sh := r.shard(bare)
	sh.mu.Lock()
	res := sh.m[bare]
	if res == nil {
		res = make(map[string]Session, 1)
		sh.m[bare] = res
	}
	replaced = res[full.Resource()]
	res[full.Resource()] = s
	sh.mu.Unlock()
	if replaced != nil {
		r.runHooks(ctx, r.reg.SessionEndedHooks(), replaced)
	}
	if r.peers != nil {
		r.peers.Bound(ctx, s)
	}
	r.runHooks(ctx, r.reg.SessionBoundHooks(), s)
	return replaced
}

func (r *Router) runHooks(ctx context.Context, hooks []module.SessionHook, s Session) {
	for _, h := range hooks {
		h(ctx, s)
	}
}

// ResourceInUse reports whether a session holds full.
func (r *Router) ResourceInUse(full jid.JID) bool {
	return r.session(full) != nil
}

// Unbind removes s, but only if it still holds its resource: a session
// that was replaced must not remove its successor.
func (r *Router) Unbind(ctx context.Context, s Session) {
	full := s.JID()
	bare := full.Bare()
	sh := r.shard(bare)
	sh.mu.Lock()
	res := sh.m[bare]
	held := res[full.Resource()] == s
	if held {
		delete(res, full.Resource())
		if len(res) == 0 {
			delete(sh.m, bare)
		}
	}
	sh.mu.Unlock()
	if held {
		if r.peers != nil {
			r.peers.Unbound(ctx, s)
		}
		r.runHooks(ctx, r.reg.SessionEndedHooks(), s)
	}
}

// EndRemote runs the session-end hooks for a session of another node
// that died with it: its contacts hear that it is gone.
func (r *Router) EndRemote(ctx context.Context, s Session) {
	r.runHooks(ctx, r.reg.SessionEndedHooks(), s)
}

// Local is the session bound here to full, nil if none: a stanza from
// another node for one of ours goes to it.
func (r *Router) Local(full jid.JID) Session {
	sh := r.shard(full.Bare())
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.m[full.Bare()][full.Resource()]
}

// Bounce answers a stanza from another node whose session had gone
// with service-unavailable.
func (r *Router) Bounce(ctx context.Context, el *xmlstream.Element) {
	if from, err := jid.Parse(el.Attr("from")); err == nil {
		r.bounce(ctx, from, el, stanza.ServiceUnavailable())
	}
}

// component is the handler of a service domain: this node's, or one
// forwarding to the node that runs the service.
func (r *Router) component(domain string) module.ComponentHandler {
	if r.peers != nil {
		if h := r.peers.Component(domain); h != nil {
			return h
		}
	}
	return r.reg.Component(domain)
}

// Service hands a stanza another node forwarded to the local handler of
// its service domain.
func (r *Router) Service(ctx context.Context, el *xmlstream.Element) {
	from, err1 := jid.Parse(el.Attr("from"))
	to, err2 := jid.Parse(el.Attr("to"))
	if err1 != nil || err2 != nil {
		return
	}
	if h := r.reg.Component(to.Domain()); h != nil {
		h(ctx, from, to, el)
	}
}

// Unclaimed hands an IQ result from another node to this node's
// modules, which may have sent the request.
func (r *Router) Unclaimed(ctx context.Context, el *xmlstream.Element) {
	from, err1 := jid.Parse(el.Attr("from"))
	to, err2 := jid.Parse(el.Attr("to"))
	if err1 == nil && err2 == nil {
		r.reg.RunIQResult(ctx, from, to, el)
	}
}

func (r *Router) session(full jid.JID) Session {
	if s := r.Local(full); s != nil || r.peers == nil {
		return s
	}
	return r.peers.Session(full)
}

// Sessions returns the sessions of an account.
func (r *Router) Sessions(bare jid.JID) []Session {
	sh := r.shard(bare)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	res := sh.m[bare]
	out := make([]Session, 0, len(res))
	for _, s := range res {
		out = append(out, s)
	}
	if r.peers != nil {
		out = append(out, r.peers.Sessions(bare)...)
	}
	return out
}

// AllSessions returns every bound session, for the admin commands that
// list or address everyone online.
func (r *Router) AllSessions() []Session {
	var out []Session
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		for _, res := range sh.m {
			for _, s := range res {
				out = append(out, s)
			}
		}
		sh.mu.RUnlock()
	}
	if r.peers != nil {
		out = append(out, r.peers.All()...)
	}
	return out
}

// Route delivers a stanza whose 'from' has already been set and checked by
// the stream it came from (or by the server itself).
func (r *Router) Route(ctx context.Context, el *xmlstream.Element) {
	from, err := jid.Parse(el.Attr("from"))
	if err != nil {
		// Only the server's own code can get here; a session always
		// stamps a valid from.
		r.log.Error("router: stanza with an invalid from dropped", "err", err)
		return
	}
	var to jid.JID
	if t := el.Attr("to"); t != "" {
		to, err = jid.Parse(t)
		if err != nil {
			r.bounce(ctx, from, el, stanza.JIDMalformed("the 'to' address is not a valid JID"))
			return
		}
	}
	if el.Name.Local == "presence" {
		if h := r.reg.PresenceHandler(); h != nil {
			if r.filtered(ctx, from, to, el) {
				return
			}
			h(ctx, from, to, el)
			return
		}
	}
	r.routeTo(ctx, from, to, el)
}

// RouteDirect delivers a stanza without the presence handler, for the
// presence module's own broadcasts and probes.
func (r *Router) RouteDirect(ctx context.Context, el *xmlstream.Element) {
	from, err1 := jid.Parse(el.Attr("from"))
	to, err2 := jid.Parse(el.Attr("to"))
	if err1 != nil || err2 != nil {
		r.log.Error("router: server-made stanza with a bad address dropped")
		return
	}
	r.routeTo(ctx, from, to, el)
}

func (r *Router) routeTo(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	if r.filtered(ctx, from, to, el) {
		return
	}
	if el.Name.Local == "message" && hookedMessage(el) && from.Local() != "" && r.hosts[from.Domain()] && !to.IsZero() {
		r.reg.RunMessageHooks(ctx, module.MessageEvent{From: from, To: to, Stanza: el, Outbound: true})
	}
	switch {
	case to.IsZero():
		r.toAccount(ctx, from, from.Bare(), el)
	case r.component(to.Domain()) != nil:
		r.component(to.Domain())(ctx, from, to, el)
	case !r.hosts[to.Domain()]:
		if r.remote == nil || !r.servesDomain(from.Domain()) {
			// No federation, or a remote sender (a server never relays
			// between two other servers): say so rather than pretend.
			r.bounce(ctx, from, el, stanza.RemoteServerNotFound())
			return
		}
		r.remote.Send(ctx, from, to, el)
	case to.IsDomain():
		r.toServer(ctx, from, to, el)
	case to.IsBare():
		r.toAccount(ctx, from, to, el)
	default:
		r.toFull(ctx, from, to, el)
	}
}

// Filtered is filtered for modules that deliver to sessions themselves.
func (r *Router) Filtered(ctx context.Context, from, to jid.JID, el *xmlstream.Element) bool {
	return r.filtered(ctx, from, to, el)
}

// filtered runs the filters (blocking) on a stanza between two parties; a
// stanza from an account to itself is never filtered.
func (r *Router) filtered(ctx context.Context, from, to jid.JID, el *xmlstream.Element) bool {
	if to.IsZero() || from.Bare().Equal(to.Bare()) {
		return false
	}
	// Which sides are local accounts does not change between filters.
	outbound := from.Local() != "" && r.hosts[from.Domain()]
	inbound := to.Local() != "" && r.hosts[to.Domain()]
	for _, f := range r.reg.Filters() {
		for _, dir := range [2]bool{true, false} {
			if (dir && !outbound) || (!dir && !inbound) {
				continue
			}
			if stop, se := f(ctx, from, to, el, dir); stop {
				if se != nil {
					r.bounce(ctx, from, el, se)
				}
				return true
			}
		}
	}
	return false
}

func (r *Router) toServer(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	if el.Name.Local == "iq" {
		r.handleIQ(ctx, module.Server, from, to, el)
	}
	// Messages and presence addressed to the server itself have no
	// handler; RFC 6120 §10.3.1 lets the server ignore them.
}

func (r *Router) toAccount(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	switch el.Name.Local {
	case "iq":
		r.handleIQ(ctx, module.Account, from, to, el)
	case "message":
		r.messageToBare(ctx, from, to, el)
	}
}

// hookedMessage says whether message hooks see el: person-to-person
// traffic, not errors, headlines or groupchat.
func hookedMessage(el *xmlstream.Element) bool {
	switch el.Attr("type") {
	case "", "normal", "chat":
		return true
	}
	return false
}

// inbound runs the inbound message hooks once for a message that is about
// to reach a local account.
func (r *Router) inbound(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	if hookedMessage(el) {
		r.reg.RunMessageHooks(ctx, module.MessageEvent{From: from, To: to, Stanza: el})
	}
}

func (r *Router) toFull(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	if s := r.session(to); s != nil {
		if !r.room(ctx, from, s) {
			r.bounce(ctx, from, el, noRoom())
			return
		}
		if el.Name.Local == "message" {
			r.inbound(ctx, from, to, el)
			if !r.deliverMessage(ctx, s, el) {
				// Its node lost it or died: the message goes where a
				// message for an unavailable resource goes.
				r.unavailableResource(ctx, from, to, el, false)
			}
			return
		}
		s.Deliver(el)
		return
	}
	r.unavailableResource(ctx, from, to, el, true)
}

// deliverMessage delivers a message to s, and for a session on another
// node reports whether its node took it. A single node never looks for
// such sessions.
func (r *Router) deliverMessage(ctx context.Context, s Session, el *xmlstream.Element) bool {
	if r.peers != nil {
		if a, ok := s.(Acked); ok {
			return a.DeliverAcked(ctx, el) == nil
		}
	}
	s.Deliver(el)
	return true
}

func (r *Router) unavailableResource(ctx context.Context, from, to jid.JID, el *xmlstream.Element, hooks bool) {
	switch el.Name.Local {
	case "message":
		// RFC 6121 §8.5.3.2.1: a message to an unavailable resource is
		// treated as if it had been sent to the bare JID, except
		// groupchat, which is refused, and errors, which are dropped.
		switch el.Attr("type") {
		case "groupchat":
			r.bounce(ctx, from, el, stanza.ServiceUnavailable())
		case "error":
		default:
			r.deliverToBare(ctx, from, to.Bare(), el, hooks)
		}
	case "iq":
		r.bounce(ctx, from, el, stanza.ServiceUnavailable())
	}
	// Presence to an unavailable resource is silently dropped (§8.5.3.2.3).
}

// messageToBare applies RFC 6121 §8.5.2: a message goes to every available
// resource with non-negative priority (the "all" option of §8.5.2.1.1,
// which keeps several devices in step), else to offline storage.
// Reroute delivers again a message a session received but never
// acknowledged (XEP-0198) to the account's bare JID: other resources or
// offline storage. Hooks saw it the first time and do not run again.
func (r *Router) Reroute(ctx context.Context, el *xmlstream.Element) {
	from, err1 := jid.Parse(el.Attr("from"))
	to, err2 := jid.Parse(el.Attr("to"))
	if err1 != nil || err2 != nil {
		return
	}
	r.deliverToBare(ctx, from, to.Bare(), el, false)
}

func (r *Router) messageToBare(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	r.deliverToBare(ctx, from, to, el, true)
}

func (r *Router) deliverToBare(ctx context.Context, from, to jid.JID, el *xmlstream.Element, hooks bool) {
	typ := el.Attr("type")
	if typ == "error" {
		return
	}
	if typ == "groupchat" {
		r.bounce(ctx, from, el, stanza.ServiceUnavailable())
		return
	}
	sessions := r.Sessions(to)
	// Bound sessions prove the account exists; the database is asked only
	// when there are none. A database that cannot answer proves nothing:
	// the message goes on to offline storage, which holds it until the
	// database is back, rather than be bounced as if the account were
	// gone.
	if len(sessions) == 0 {
		if exists, err := r.lookupAccount(ctx, to); !exists && err == nil {
			r.bounce(ctx, from, el, stanza.ServiceUnavailable())
			return
		}
	}
	var ready []Session
	full := false
	for _, s := range sessions {
		if avail, prio := s.State().Available(); avail && prio >= 0 {
			if !r.room(ctx, from, s) {
				full = true
				continue
			}
			ready = append(ready, s)
		}
	}
	if len(ready) == 0 && full {
		// Available, but not reading: offline storage is not the place
		// for it, and the sender can try again (the archive has not
		// seen it yet, so trying again makes no duplicate there).
		r.bounce(ctx, from, el, noRoom())
		return
	}
	if hooks {
		r.inbound(ctx, from, to, el)
	}
	delivered := 0
	for _, s := range ready {
		if !r.deliverMessage(ctx, s, el) {
			continue
		}
		delivered++
	}
	if delivered > 0 || typ == "headline" {
		return
	}
	if h := r.reg.OfflineHandler(); h != nil {
		stored, err := h(ctx, to, el)
		if err != nil {
			se := stanza.AsError(err)
			if se.Condition == "internal-server-error" {
				r.fails.Report("keeping a message for an offline user", err)
			}
			r.bounce(ctx, from, el, se)
			return
		}
		if stored {
			return
		}
	}
	r.bounce(ctx, from, el, stanza.ServiceUnavailable())
}

// noRoom tells a sender that its recipient does not read fast enough.
func noRoom() *stanza.Error {
	return &stanza.Error{Type: stanza.Wait, Condition: "resource-constraint",
		Text: "the recipient is not reading its data; try again later"}
}

// room applies back-pressure to a local account sending to s: its own
// goroutine waits (bounded) while s has not read what it was sent, so a
// slow reader slows down who sends to it instead of losing its session.
// No lock is held while it waits, and only the sender waits. It reports
// false when s did not make room in time.
func (r *Router) room(ctx context.Context, from jid.JID, s Session) bool {
	if from.Local() == "" || !r.hosts[from.Domain()] {
		return true
	}
	return !errors.Is(session.WaitRoom(ctx, s), session.ErrNoRoom)
}

func (r *Router) accountExists(ctx context.Context, bare jid.JID) bool {
	exists, _ := r.lookupAccount(ctx, bare)
	return exists
}

// lookupAccount says whether an account exists; err is set when the
// database could not tell.
func (r *Router) lookupAccount(ctx context.Context, bare jid.JID) (bool, error) {
	_, err := r.store.Users().Get(ctx, bare.String())
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		r.fails.Report("looking up an account", err)
		return false, err
	}
	return true, nil
}

func (r *Router) handleIQ(ctx context.Context, target module.Target, from, to jid.JID, el *xmlstream.Element) {
	typ := el.Attr("type")
	if typ != "get" && typ != "set" {
		// Results and errors addressed to the server can only answer the
		// server's own requests: modules that sent one claim it; the rest
		// are dropped, never bounced.
		if !r.reg.RunIQResult(ctx, from, to, el) && r.peers != nil && from.Local() != "" && r.hosts[from.Domain()] {
			// A client of ours answers what another node asked.
			r.peers.IQResult(ctx, el)
		}
		return
	}
	payload := el.FirstElement()
	if payload == nil {
		r.bounce(ctx, from, el, stanza.BadRequest("an IQ get or set needs a payload"))
		return
	}
	// The server answers for an account only if it exists (RFC 6121
	// §8.5.2.2.3); otherwise anyone could probe handlers on any name.
	if target == module.Account && !from.Bare().Equal(to) && !r.accountExists(ctx, to) {
		r.bounce(ctx, from, el, stanza.ServiceUnavailable())
		return
	}
	h := r.reg.IQHandler(target, typ, payload.Name)
	if h == nil {
		r.bounce(ctx, from, el, stanza.ServiceUnavailable())
		return
	}
	res, err := h(ctx, module.IQ{From: from, To: to, ID: el.Attr("id"), Type: typ, Payload: payload, Stanza: el})
	if err != nil {
		se := stanza.AsError(err)
		if se.Condition == "internal-server-error" {
			r.log.Error("router: IQ handler failed", "payload", payload.Name.Space, "err", err)
		}
		r.bounce(ctx, from, el, se)
		return
	}
	reply := stanza.Result(el, res)
	if el.Attr("to") == "" {
		// The request went to the sender's own account implicitly; the
		// answer comes from that account (RFC 6120 §10.3.3).
		reply.SetAttr("from", to.String())
	}
	reply.SetAttr("to", from.String())
	r.deliverReply(ctx, from, reply)
}

// bounce answers el with an error, to its sender. An error is never
// answered with an error, so two servers can never bounce forever.
func (r *Router) bounce(ctx context.Context, from jid.JID, el *xmlstream.Element, se *stanza.Error) {
	reply := stanza.ErrorReply(el, se)
	if reply == nil {
		return
	}
	if reply.Attr("from") == "" {
		reply.SetAttr("from", from.Bare().String())
	}
	r.deliverReply(ctx, from, reply)
}

// deliverReply sends something the server generated back to its sender:
// the full JID of a local session (nothing to deliver to if that session
// has gone), or a remote sender's server.
func (r *Router) deliverReply(ctx context.Context, to jid.JID, el *xmlstream.Element) {
	if !r.hosts[to.Domain()] {
		if h := r.component(to.Domain()); h != nil {
			// A service hears the answers to what it sent (an external
			// component waits for them like a client).
			if from, err := jid.Parse(el.Attr("from")); err == nil {
				h(ctx, from, to, el)
			}
			return
		}
		// Only what a domain of ours says goes to another server: an
		// error in the name of a third domain (a stanza of a remote
		// sender for another remote domain, refused) would be relaying.
		if r.remote != nil {
			if from, err := jid.Parse(el.Attr("from")); err == nil && r.servesDomain(from.Domain()) {
				r.remote.Send(ctx, from, to, el)
			}
		}
		return
	}
	s := r.session(to)
	if s == nil {
		return
	}
	// On the asking session's own goroutine, answers are paced by what
	// the client reads: a client that fetches many large items at once
	// gets them as fast as it reads instead of being cut off.
	if session.SenderWaits(ctx) && session.DeliverPaced(ctx, s, el, nil) == nil {
		return
	}
	s.Deliver(el)
}
