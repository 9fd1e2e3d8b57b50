package cluster

import (
	"context"
	"errors"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/xmlstream"
)

// A service with state of its own (group chat rooms) runs on one node at
// a time: the node holding its domain's lease in the leases bucket. The
// others forward what they get for the domain to that node. When the
// holder dies, the surviving nodes race to take the lease over (one
// compare-and-set wins), and the new holder loads persistent rooms from
// the database as they are used.

type lease struct {
	node string
	rev  uint64
}

func (c *Cluster) leaseBucket() jetstream.KeyValue {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.leasesKV
}

// Claim asks for the leases of the service domains this node runs; a
// domain another live node holds stays with it.
func (c *Cluster) Claim(ctx context.Context, domains []string) {
	c.mu.Lock()
	c.claimed = append(c.claimed, domains...)
	c.mu.Unlock()
	for _, d := range domains {
		c.take(ctx, d)
	}
}

// take tries to hold d: a free lease, one this node held in an earlier
// life, or one whose holder is dead.
func (c *Cluster) take(ctx context.Context, d string) {
	rev, holder, err := c.acquire(ctx, d)
	switch {
	case holder != "":
		// Another live node runs it.
	case err == nil:
		c.setLease(d, lease{node: c.cfg.Node, rev: rev})
		c.cfg.Log.Info("cluster: this node now runs a service", "domain", d)
	case isWrongRevision(err) || errors.Is(err, jetstream.ErrKeyExists):
		// Another node was quicker; its write reaches the watcher.
	default:
		c.cfg.Log.Warn("cluster: a service lease could not be taken", "domain", d, "err", err)
	}
}

// acquire writes this node into d's lease unless another live node holds
// it, whose name it then returns (and records) instead.
func (c *Cluster) acquire(ctx context.Context, d string) (rev uint64, holder string, err error) {
	kv := c.leaseBucket()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	k := domainKey(d)
	rev, err = kv.Create(ctx, k, []byte(c.cfg.Node))
	if errors.Is(err, jetstream.ErrKeyExists) {
		var e jetstream.KeyValueEntry
		e, err = kv.Get(ctx, k)
		if err != nil {
			return 0, "", err
		}
		if h := string(e.Value()); h != c.cfg.Node && c.alive(h) {
			c.setLease(d, lease{node: h, rev: e.Revision()})
			return 0, h, nil
		}
		rev, err = kv.Update(ctx, k, []byte(c.cfg.Node), e.Revision())
	}
	return rev, "", err
}

func (c *Cluster) alive(node string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.seen[node]
	return ok
}

func (c *Cluster) setLease(d string, l lease) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.leases[d]; !ok || cur.rev <= l.rev {
		c.leases[d] = l
	}
}

// domainKey is a domain as a KV key (domains may hold characters keys
// may not, in their IDNA form they do not, but base64url is simplest).
func domainKey(d string) string { return key(jid.MustParse(d)) }

func (c *Cluster) leaseEntry(e jetstream.KeyValueEntry, _ bool) {
	j, err := parseKey(e.Key())
	if err != nil {
		return
	}
	d := j.String()
	if e.Operation() == jetstream.KeyValuePut {
		c.setLease(d, lease{node: string(e.Value()), rev: e.Revision()})
		c.cfg.Log.Info("cluster: service domain held", "domain", d, "holder", string(e.Value()))
		return
	}
	c.cfg.Log.Info("cluster: service domain released", "domain", d)
	c.mu.Lock()
	delete(c.leases, d)
	mine := slices.Contains(c.claimed, d)
	c.mu.Unlock()
	if mine {
		// Its holder stopped cleanly: run it here if no one is quicker.
		go c.take(context.Background(), d)
	}
}

// takeOver takes the leases a dead node held, for the services this
// node runs too.
func (c *Cluster) takeOver(ctx context.Context, dead string) {
	c.mu.RLock()
	var domains []string
	for d, l := range c.leases {
		if l.node == dead && slices.Contains(c.claimed, d) {
			domains = append(domains, d)
		}
	}
	c.mu.RUnlock()
	for _, d := range domains {
		c.take(ctx, d)
	}
}

// release gives up this node's leases when it stops cleanly.
func (c *Cluster) release(ctx context.Context) {
	kv := c.leaseBucket()
	if kv == nil {
		return
	}
	c.mu.RLock()
	held := map[string]uint64{}
	for d, l := range c.leases {
		if l.node == c.cfg.Node {
			held[d] = l.rev
		}
	}
	c.mu.RUnlock()
	for d, rev := range held {
		dctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		_ = kv.Delete(dctx, domainKey(d), jetstream.LastRevision(rev))
		cancel()
	}
}

// Component returns a handler forwarding to the node that runs the
// service of domain, or that an external component serving domain is
// connected to; nil when this node runs it (or nobody holds its lease,
// as on a single node), and for a component whose node is dead: the
// local handler then answers as for a component not connected.
func (c *Cluster) Component(domain string) module.ComponentHandler {
	c.mu.RLock()
	d := domain
	ext := c.componentOfLocked(domain)
	if ext != "" {
		d = ext
	}
	l, ok := c.leases[d]
	_, live := c.seen[l.node]
	c.mu.RUnlock()
	if !ok || l.node == c.cfg.Node || (ext != "" && !live) {
		return nil
	}
	node := l.node
	return func(ctx context.Context, _, _ jid.JID, el *xmlstream.Element) {
		// Waiting for the holder to take it turns a holder that died
		// (and whose lease has not moved yet) into an error the sender
		// sees at once, rather than a stanza lost.
		ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
		if _, err := c.nc.RequestWithContext(ctx, c.nodeSubject(node), frame(opComponent, "", el.Append(nil, ""))); err != nil {
			c.cfg.Router.Bounce(ctx, el)
		}
	}
}

// Leases lists which node runs each service domain (metrics, tests).
func (c *Cluster) Leases() map[string]string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]string, len(c.leases))
	for d, l := range c.leases {
		out[d] = l.node
	}
	return out
}
