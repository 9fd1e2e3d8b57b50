package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// An external component (XEP-0114) connects to one node, which then
// holds its domain's lease in the leases bucket, as a node running a
// group chat service does. The other nodes forward what they get for
// the domain, or a subdomain of it, to that node. Unlike a service, no
// other node can take the domain over: a lease whose holder died, or
// that its holder withdrew when the component left, leaves the domain
// unreachable until the component connects again, to any node.

// ErrComponentElsewhere refuses a component that is already connected to
// another live node.
var ErrComponentElsewhere = errors.New("cluster: the component is connected to another node")

// ServeComponents names the domains of the external components every
// node accepts (the same [[components]] on all), which serve their
// subdomains too. A lease this node left for one of them in an earlier
// life is withdrawn: no component is connected to it yet.
func (c *Cluster) ServeComponents(ctx context.Context, domains []string) {
	c.mu.Lock()
	c.components = slices.Clone(domains)
	c.mu.Unlock()
	c.dropStaleComponents(ctx)
}

// dropStaleComponents removes the leases that name this node for
// components not connected to it: left by an earlier life, or by a
// withdrawal that failed while NATS was away. Another node could not
// take such a domain while this node lives.
func (c *Cluster) dropStaleComponents(ctx context.Context) {
	c.mu.RLock()
	stale := map[string]uint64{}
	for _, d := range c.components {
		if l, ok := c.leases[d]; ok && l.node == c.cfg.Node && !c.announced[d] {
			stale[d] = l.rev
		}
	}
	c.mu.RUnlock()
	kv := c.leaseBucket()
	for d, rev := range stale {
		dctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		_ = kv.Delete(dctx, domainKey(d), jetstream.LastRevision(rev))
		cancel()
	}
}

// Announce makes this node the holder of a component's domain, now that
// the component is connected here. It fails with ErrComponentElsewhere
// when another live node holds it: a domain has one stream in the whole
// cluster.
func (c *Cluster) Announce(ctx context.Context, domain string) error {
	rev, holder, err := c.acquire(ctx, domain)
	if holder != "" {
		return fmt.Errorf("%w (%s)", ErrComponentElsewhere, holder)
	}
	if err != nil {
		if isWrongRevision(err) || errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("%w (connected at the same moment)", ErrComponentElsewhere)
		}
		return fmt.Errorf("cluster: announcing component %s: %w", domain, err)
	}
	c.setLease(domain, lease{node: c.cfg.Node, rev: rev})
	c.mu.Lock()
	c.announced[domain] = true
	c.mu.Unlock()
	return nil
}

// Withdraw gives up a component's domain when its stream ends here.
func (c *Cluster) Withdraw(ctx context.Context, domain string) {
	c.mu.Lock()
	delete(c.announced, domain)
	l, ok := c.leases[domain]
	c.mu.Unlock()
	if !ok || l.node != c.cfg.Node {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	if err := c.leaseBucket().Delete(ctx, domainKey(domain), jetstream.LastRevision(l.rev)); err != nil && !isWrongRevision(err) {
		c.cfg.Log.Warn("cluster: a component's lease could not be withdrawn", "domain", domain, "err", err)
	}
}

// componentOf is the external component domain that serves d (d itself
// or its nearest parent among them), "" when none. Callers hold c.mu.
func (c *Cluster) componentOfLocked(d string) string {
	if len(c.components) == 0 {
		return ""
	}
	for {
		if slices.Contains(c.components, d) {
			return d
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return ""
		}
		d = d[i+1:]
	}
}
