package server

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"time"

	"parley/internal/cluster"
	"parley/internal/config"
	"parley/internal/router"
	"parley/internal/session"
	"parley/internal/stream"
)

// joinCluster connects this node to the others ([cluster] nats_url):
// from then on the router reaches their sessions.
func (s *Server) joinCluster(ctx context.Context, h *host) error {
	cl, err := cluster.Start(ctx, cluster.Config{
		URL:            s.cfg.Cluster.NATSURL,
		Node:           s.cfg.Cluster.Node,
		Router:         clusterRouter{s.router, s},
		Log:            s.log.With("node", s.cfg.Cluster.Node),
		MaxStanzaBytes: s.cfg.Limits.MaxStanzaBytes,
		SecretID:       hex.EncodeToString(h.Key("cluster secret check")[:8]),
	})
	if err != nil {
		return err
	}
	if err := cl.AnswerDialback(s.s2s.DialbackPending); err != nil {
		_ = cl.Stop(ctx)
		return err
	}
	s.cluster = cl
	s.router.SetPeers(cl)
	cl.EndStale(ctx)
	// The services of modules (group chat, upload) run on one node at a
	// time; an external component's domain is held by the node it
	// connects to, while it is connected.
	var services []string
	for _, c := range s.reg.Components() {
		if !slices.ContainsFunc(s.cfg.Components, func(ec config.Component) bool { return ec.Domain == c.Domain }) {
			services = append(services, c.Domain)
		}
	}
	cl.Claim(ctx, services)
	if s.comps != nil {
		domains := make([]string, 0, len(s.cfg.Components))
		for _, ec := range s.cfg.Components {
			domains = append(domains, ec.Domain)
		}
		cl.ServeComponents(ctx, domains)
		s.comps.SetCluster(func(ctx context.Context, domain string) error {
			if err := cl.Announce(ctx, domain); errors.Is(err, cluster.ErrComponentElsewhere) {
				return stream.Conflict("a component is already connected for " + domain + " to another node of this server")
			} else if err != nil {
				return err
			}
			return nil
		}, cl.Withdraw)
	}
	s.metrics.GaugeByLabel("parley_cluster_sessions", "Client sessions bound in the cluster, by node, as this node sees it.", "node", cl.SessionsPerNode)
	s.metrics.GaugeFunc("parley_cluster_nodes", "Nodes of the cluster this node sees alive, itself included.", func() float64 {
		return float64(len(cl.SessionsPerNode()))
	})
	s.log.Info("joined the cluster", "node", cl.Node(), "nodes", strconv.Itoa(len(cl.SessionsPerNode())))
	return nil
}

// clusterRouter is the router as the cluster sees it. A session of a
// dead node also leaves behind what its own end would have removed: the
// throwaway account of an anonymous login (c2s deletes it when the
// session ends, which a node killed never does).
type clusterRouter struct {
	*router.Router
	s *Server
}

func (r clusterRouter) EndRemote(ctx context.Context, sess session.Session) {
	r.Router.EndRemote(ctx, sess)
	bare := sess.JID().Bare()
	if !r.s.cfg.IsAnonymousHost(bare.Domain()) || len(r.Router.Sessions(bare)) > 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.s.accounts.Delete(ctx, bare); err != nil {
		r.s.log.Error("cluster: deleting an anonymous account of a lost node failed", "err", err)
	}
}
