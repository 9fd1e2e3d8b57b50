// Package cluster joins parley nodes serving the same domains over NATS.
// Each node writes its bound sessions (full JID, node, the replicated
// part of their presence state) to a JetStream key-value bucket and
// watches it, so every node keeps a copy of where every session is and
// routes without asking anyone. Stanzas for another node's session go to
// that node's subject; a message waits for the node to say it queued it,
// so a message to a dead node falls back to offline storage instead of
// being lost. Nodes write a heartbeat to a second bucket; one whose
// heartbeat stops is dead after DeadAfter, its sessions leave every
// copy, and one surviving node tells their contacts they are gone.
package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"parley/internal/jid"
	"parley/internal/session"
	"parley/internal/xmlstream"
)

// Router is what the cluster needs of the local routing core.
type Router interface {
	// Local is the session bound here to full, nil if none.
	Local(full jid.JID) session.Session
	// EndRemote runs the session-end hooks for a dead node's session.
	EndRemote(ctx context.Context, s session.Session)
	// Unclaimed offers an IQ result from another node to local modules.
	Unclaimed(ctx context.Context, el *xmlstream.Element)
	// Bounce answers a stanza that found no session with an error.
	Bounce(ctx context.Context, el *xmlstream.Element)
	// Service hands a stanza another node forwarded to the service
	// (group chat) whose lease this node holds.
	Service(ctx context.Context, el *xmlstream.Element)
}

// Config says how a node joins the cluster.
type Config struct {
	URL  string // nats://host:port
	Node string // this node's unique name
	// Prefix names the buckets and subjects, so that tests (or two
	// clusters) can share one NATS; "" = "parley".
	Prefix string
	Router Router
	Log    *slog.Logger
	// HeartbeatEvery, DeadAfter and RequestTimeout default to 2 s, 10 s
	// and 2 s: a dead node's contacts learn of it within about 12 s.
	HeartbeatEvery time.Duration
	DeadAfter      time.Duration
	RequestTimeout time.Duration
	// MaxStanzaBytes bounds what another node may send (the c2s limit).
	MaxStanzaBytes int
	// SecretID identifies the server secret without giving it away:
	// nodes seal and sign with keys derived from it, so a node whose
	// secret differs from the others' would read nothing they stored.
	SecretID string
}

// Cluster is this node's membership. Its methods are safe for concurrent
// use.
type Cluster struct {
	cfg         Config
	incarnation string
	nc          *nats.Conn
	js          jetstream.JetStream
	sessions    jetstream.KeyValue
	nodes       jetstream.KeyValue
	leasesKV    jetstream.KeyValue
	subs        []*nats.Subscription

	mu    sync.RWMutex
	view  map[jid.JID]map[string]*remote // other nodes' sessions, by bare JID
	seen  map[string]nodeState           // other nodes, by name
	local map[jid.JID]*localEntry        // this node's sessions, by full JID
	// leases: which node runs each service domain; claimed: the
	// domains this node can run.
	leases  map[string]lease
	claimed []string
	// components: the external components' domains (every node's
	// config); announced: those connected to this node.
	components []string
	announced  map[string]bool
	// pending: registry entries of sessions that ended while NATS was
	// away (key → our revision), removed at reconnection.
	pending map[string]uint64

	cancel context.CancelFunc
	// runCtx ends with the cluster; unwatch ends the current watchers,
	// which a NATS restart replaces.
	runCtx   context.Context
	unwatch  context.CancelFunc
	rejoinMu sync.Mutex
	wg       sync.WaitGroup
}

type nodeState struct {
	incarnation string
	secretID    string
	last        time.Time
}

// record is a session's value in the sessions bucket.
type record struct {
	Node        string           `json:"n"`
	Incarnation string           `json:"i"`
	State       session.Snapshot `json:"s"`
}

// heartbeat is a node's value in the nodes bucket.
type heartbeat struct {
	Incarnation string `json:"i"`
	Sessions    int    `json:"s"`
	SecretID    string `json:"k"`
}

// Start connects to NATS, loads the current view of the cluster and
// starts the heartbeat, the watchers and the subject this node receives
// stanzas on.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "parley"
	}
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = 2 * time.Second
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = 10 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 2 * time.Second
	}
	c := &Cluster{cfg: cfg, incarnation: nats.NewInbox()[len(nats.InboxPrefix):],
		view: map[jid.JID]map[string]*remote{}, seen: map[string]nodeState{}, local: map[jid.JID]*localEntry{},
		leases: map[string]lease{}, pending: map[string]uint64{}, announced: map[string]bool{}}
	nc, err := nats.Connect(cfg.URL, nats.Name("parley "+cfg.Node), nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second), nats.Timeout(5*time.Second),
		nats.ReconnectHandler(func(*nats.Conn) { c.reconnected() }))
	if err != nil {
		return nil, fmt.Errorf("cluster: connecting to NATS at %s: %w", cfg.URL, err)
	}
	c.nc = nc
	if err := c.open(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	for _, sub := range []struct {
		subject string
		fn      nats.MsgHandler
	}{{c.nodeSubject(cfg.Node), c.receive}, {cfg.Prefix + ".iqr", c.receiveIQResult}} {
		s, err := nc.Subscribe(sub.subject, sub.fn)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("cluster: subscribing to %s: %w", sub.subject, err)
		}
		c.subs = append(c.subs, s)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel, c.runCtx = cancel, runCtx
	if err := c.watch(ctx); err != nil {
		c.Stop(ctx)
		return nil, err
	}
	if err := c.sameSecret(); err != nil {
		c.Stop(ctx)
		return nil, err
	}
	c.beat(ctx)
	c.wg.Add(1)
	go c.loop(runCtx)
	return c, nil
}

// open creates the buckets when they are missing. Both live in memory:
// they describe who is connected now, which a NATS restart forgets
// together with the connections.
func (c *Cluster) open(ctx context.Context) error {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return fmt.Errorf("cluster: JetStream: %w", err)
	}
	c.js = js
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sessions, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: c.cfg.Prefix + "_sessions", Description: "parley: which node holds each bound full JID",
		History: 1, Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		return fmt.Errorf("cluster: opening the sessions bucket (is JetStream enabled on the NATS server?): %w", err)
	}
	nodes, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: c.cfg.Prefix + "_nodes", Description: "parley: node heartbeats",
		History: 1, Storage: jetstream.MemoryStorage, TTL: 3 * c.cfg.DeadAfter,
	})
	if err != nil {
		return fmt.Errorf("cluster: opening the nodes bucket: %w", err)
	}
	leases, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: c.cfg.Prefix + "_leases", Description: "parley: which node runs each group chat service",
		History: 1, Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		return fmt.Errorf("cluster: opening the leases bucket: %w", err)
	}
	c.mu.Lock()
	c.sessions, c.nodes, c.leasesKV = sessions, nodes, leases
	c.mu.Unlock()
	return nil
}

func (c *Cluster) buckets() (jetstream.KeyValue, jetstream.KeyValue) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.sessions, c.nodes
}

func (c *Cluster) nodeSubject(node string) string { return c.cfg.Prefix + ".node." + node }

// key is a full JID as a KV key: base64url keeps to the key alphabet.
func key(full jid.JID) string { return base64.RawURLEncoding.EncodeToString([]byte(full.String())) }

func parseKey(k string) (jid.JID, error) {
	b, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil {
		return jid.JID{}, err
	}
	return jid.Parse(string(b))
}

// watch reads both buckets to their end, then follows them.
func (c *Cluster) watch(ctx context.Context) error {
	runCtx, unwatch := context.WithCancel(c.runCtx)
	c.mu.Lock()
	if c.unwatch != nil {
		c.unwatch()
	}
	c.unwatch = unwatch
	c.mu.Unlock()
	sessions, nodes := c.buckets()
	for _, w := range []struct {
		kv jetstream.KeyValue
		fn func(jetstream.KeyValueEntry, bool)
	}{{nodes, c.nodeEntry}, {sessions, c.sessionEntry}, {c.leaseBucket(), c.leaseEntry}} {
		kw, err := w.kv.WatchAll(runCtx)
		if err != nil {
			return fmt.Errorf("cluster: watching %s: %w", w.kv.Bucket(), err)
		}
		initial := true
		// The initial values first, so that routing starts with the
		// whole view.
	load:
		for {
			select {
			case e := <-kw.Updates():
				if e == nil {
					break load
				}
				w.fn(e, initial)
			case <-ctx.Done():
				_ = kw.Stop()
				return fmt.Errorf("cluster: reading %s: %w", w.kv.Bucket(), ctx.Err())
			}
		}
		initial = false
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer func() { _ = kw.Stop() }()
			for {
				select {
				case e, ok := <-kw.Updates():
					if !ok {
						return
					}
					if e != nil {
						w.fn(e, initial)
					}
				case <-runCtx.Done():
					return
				}
			}
		}()
	}
	return nil
}

// EndStale ends the sessions this node left in the registry when it
// died: nobody else ends them if it came back before the others noticed.
// The server calls it once the router can reach the other nodes, so
// that the contacts there hear of it.
func (c *Cluster) EndStale(ctx context.Context) {
	var stale []*remote
	c.mu.Lock()
	for _, res := range c.view {
		for _, r := range res {
			if r.node == c.cfg.Node {
				stale = append(stale, r)
			}
		}
	}
	c.mu.Unlock()
	c.endDead(ctx, stale)
}

// sameSecret refuses to join nodes that hold another server secret.
func (c *Cluster) sameSecret() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for name, st := range c.seen {
		if st.secretID != c.cfg.SecretID && time.Since(st.last) < c.cfg.DeadAfter {
			return fmt.Errorf("cluster: node %s has another server secret than this node: copy the server key ([storage] key_file, default data_dir/server.secret) of one node to every node", name)
		}
	}
	return nil
}

func (c *Cluster) nodeEntry(e jetstream.KeyValueEntry, initial bool) {
	node := e.Key()
	if node == c.cfg.Node {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		// A node that stopped cleanly removed its sessions, then its
		// heartbeat: it has left, unless some of its sessions are still
		// listed, which the reaper then ends as for a dead node.
		for _, res := range c.view {
			for _, r := range res {
				if r.node == node {
					return
				}
			}
		}
		if _, ok := c.seen[node]; ok {
			delete(c.seen, node)
			c.cfg.Log.Info("cluster: node left", "node", node)
		}
		return
	}
	var hb heartbeat
	if json.Unmarshal(e.Value(), &hb) != nil {
		return
	}
	last := time.Now()
	if initial {
		// An old heartbeat read at start-up must not look fresh.
		last = e.Created()
	}
	c.seen[node] = nodeState{incarnation: hb.Incarnation, secretID: hb.SecretID, last: last}
}

func (c *Cluster) sessionEntry(e jetstream.KeyValueEntry, _ bool) {
	full, err := parseKey(e.Key())
	if err != nil {
		return
	}
	bare := full.Bare()
	if e.Operation() != jetstream.KeyValuePut {
		c.mu.Lock()
		if r := c.view[bare][full.Resource()]; r != nil && r.rev < e.Revision() {
			c.dropLocked(r)
		}
		mine := c.local[full]
		c.mu.Unlock()
		if mine != nil {
			// Another node took this node for dead (it was cut off
			// from NATS a while): the session is alive, say so again.
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				mine.publish(c.runCtx, true)
			}()
		}
		return
	}
	var rec record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		c.cfg.Log.Warn("cluster: a session record does not decode", "err", err)
		return
	}
	if rec.Node == c.cfg.Node && rec.Incarnation == c.incarnation {
		return // our own write coming back
	}
	st, err := session.Replica(rec.State)
	if err != nil {
		c.cfg.Log.Warn("cluster: a session record does not decode", "err", err)
		return
	}
	r := &remote{c: c, full: full, node: rec.Node, incarnation: rec.Incarnation, rev: e.Revision(), state: st}
	c.mu.Lock()
	if _, ok := c.seen[rec.Node]; !ok && rec.Node != c.cfg.Node {
		// A node known only by its sessions gets DeadAfter to show a
		// heartbeat.
		c.seen[rec.Node] = nodeState{incarnation: rec.Incarnation, last: time.Now()}
	}
	res := c.view[bare]
	if res == nil {
		res = map[string]*remote{}
		c.view[bare] = res
	}
	res[full.Resource()] = r
	mine := c.local[full]
	c.mu.Unlock()
	if mine != nil && rec.Node != c.cfg.Node && mine.rev < e.Revision() {
		// Bound again on another node: the newer session wins, as on
		// one node (RFC 6120 §7.7.2.2).
		mine.s.Replace()
	}
}

func (c *Cluster) dropLocked(r *remote) {
	bare := r.full.Bare()
	res := c.view[bare]
	if res[r.full.Resource()] != r {
		return
	}
	delete(res, r.full.Resource())
	if len(res) == 0 {
		delete(c.view, bare)
	}
}

// loop beats and looks for dead nodes until the cluster stops.
func (c *Cluster) loop(ctx context.Context) {
	defer c.wg.Done()
	beat := time.NewTicker(c.cfg.HeartbeatEvery)
	defer beat.Stop()
	reap := time.NewTicker(time.Second)
	defer reap.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			c.beat(ctx)
		case <-reap.C:
			c.reap(ctx)
		}
	}
}

func (c *Cluster) beat(ctx context.Context) {
	_, nodes := c.buckets()
	c.mu.RLock()
	n := len(c.local)
	c.mu.RUnlock()
	b, _ := json.Marshal(heartbeat{Incarnation: c.incarnation, Sessions: n, SecretID: c.cfg.SecretID})
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	if _, err := nodes.Put(ctx, c.cfg.Node, b); err != nil && ctx.Err() == nil {
		c.cfg.Log.Warn("cluster: heartbeat not written", "err", err)
	}
}

// reap ends the sessions of nodes whose heartbeat stopped. Every node
// drops them from its view; the surviving node with the smallest name
// also runs their end hooks (their contacts hear "unavailable" once) and
// removes them from the registry. A node cut off from NATS judges no
// one: it is the one who cannot hear.
func (c *Cluster) reap(ctx context.Context) {
	if !c.nc.IsConnected() {
		return
	}
	now := time.Now()
	var dead []*remote
	var deadNodes []string
	c.mu.Lock()
	cleaner := true
	for name, st := range c.seen {
		if now.Sub(st.last) > c.cfg.DeadAfter {
			delete(c.seen, name)
			deadNodes = append(deadNodes, name)
			for bare, res := range c.view {
				for resource, r := range res {
					if r.node == name {
						dead = append(dead, r)
						delete(res, resource)
					}
				}
				if len(res) == 0 {
					delete(c.view, bare)
				}
			}
			c.cfg.Log.Warn("cluster: node lost; its sessions are ended", "node", name, "sessions", len(dead))
		} else if name < c.cfg.Node {
			cleaner = false
		}
	}
	c.mu.Unlock()
	for _, name := range deadNodes {
		c.takeOver(ctx, name)
	}
	if cleaner {
		c.endDead(ctx, dead)
	}
}

// endDead runs the end hooks of sessions whose node died and removes
// them from the registry unless they were bound again since.
func (c *Cluster) endDead(ctx context.Context, dead []*remote) {
	sessions, _ := c.buckets()
	for _, r := range dead {
		c.mu.Lock()
		c.dropLocked(r)
		c.mu.Unlock()
		dctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		err := sessions.Delete(dctx, key(r.full), jetstream.LastRevision(r.rev))
		cancel()
		if err != nil {
			// Bound again elsewhere meanwhile, or NATS is away: either
			// way its contacts are not told it left.
			continue
		}
		c.cfg.Router.EndRemote(ctx, r)
	}
}

// reconnected writes this node's sessions again: after NATS restarted
// the buckets are empty, and other nodes may have judged this node dead
// while it was cut off.
func (c *Cluster) reconnected() {
	if c.runCtx == nil || c.runCtx.Err() != nil {
		return
	}
	// Not on NATS's callback goroutine: a NATS that just started may
	// need a moment before JetStream answers, so this retries.
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.rejoinMu.Lock()
		defer c.rejoinMu.Unlock()
		for {
			err := c.rejoin()
			if err == nil {
				return
			}
			c.cfg.Log.Warn("cluster: rejoining after a NATS reconnect failed; trying again", "err", err)
			select {
			case <-time.After(time.Second):
			case <-c.runCtx.Done():
				return
			}
		}
	}()
}

func (c *Cluster) rejoin() error {
	ctx, cancel := context.WithTimeout(c.runCtx, 10*time.Second)
	defer cancel()
	if err := c.open(ctx); err != nil {
		return err
	}
	// A restarted NATS lost the buckets and the watchers with them.
	if err := c.watch(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	// Cut off, this node heard no heartbeat: every node gets its full
	// time again before it is judged.
	for name, st := range c.seen {
		st.last = time.Now()
		c.seen[name] = st
	}
	entries := slices.Collect(maps.Values(c.local))
	pending := c.pending
	c.pending = map[string]uint64{}
	claimed := slices.Clone(c.claimed)
	announced := slices.Collect(maps.Keys(c.announced))
	c.mu.Unlock()
	for k, rev := range pending {
		c.remove(ctx, k, rev)
	}
	for _, e := range entries {
		e.publish(ctx, true)
	}
	for _, d := range claimed {
		c.take(ctx, d)
	}
	for _, d := range announced {
		if err := c.Announce(ctx, d); err != nil {
			c.cfg.Log.Warn("cluster: a component connected here could not be announced again", "domain", d, "err", err)
		}
	}
	c.dropStaleComponents(ctx)
	c.cfg.Log.Info("cluster: reconnected to NATS", "sessions", len(entries))
	return nil
}

// Stop removes this node's heartbeat and leaves NATS; the sessions were
// unbound before (the c2s listener stops first).
func (c *Cluster) Stop(ctx context.Context) error {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	c.release(ctx)
	_, nodes := c.buckets()
	if nodes != nil {
		dctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		_ = nodes.Delete(dctx, c.cfg.Node)
		cancel()
	}
	for _, s := range c.subs {
		_ = s.Unsubscribe()
	}
	err := c.nc.Drain()
	if errors.Is(err, nats.ErrConnectionClosed) {
		err = nil
	}
	return err
}

// Node is this node's name.
func (c *Cluster) Node() string { return c.cfg.Node }

// SessionsPerNode counts the sessions each node of the cluster holds as
// this node sees it, this node included (metrics).
func (c *Cluster) SessionsPerNode() map[string]int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := map[string]int{c.cfg.Node: len(c.local)}
	for name := range c.seen {
		out[name] += 0
	}
	for _, res := range c.view {
		for _, r := range res {
			out[r.node]++
		}
	}
	return out
}

// Probe says whether a NATS server with JetStream answers at url
// (parley check).
func Probe(ctx context.Context, url string) error {
	nc, err := nats.Connect(url, nats.Timeout(5*time.Second), nats.Name("parley check"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("JetStream does not answer (run nats-server with -js): %w", err)
	}
	return nil
}
