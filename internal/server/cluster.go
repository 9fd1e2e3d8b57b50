package server

import (
	"context"
	"encoding/hex"
	"strconv"

	"parley/internal/cluster"
)

// joinCluster connects this node to the others ([cluster] nats_url):
// from then on the router reaches their sessions.
func (s *Server) joinCluster(ctx context.Context, h *host) error {
	cl, err := cluster.Start(ctx, cluster.Config{
		URL:            s.cfg.Cluster.NATSURL,
		Node:           s.cfg.Cluster.Node,
		Router:         s.router,
		Log:            s.log.With("node", s.cfg.Cluster.Node),
		MaxStanzaBytes: s.cfg.Limits.MaxStanzaBytes,
		SecretID:       hex.EncodeToString(h.Key("cluster secret check")[:8]),
	})
	if err != nil {
		return err
	}
	s.cluster = cl
	s.router.SetPeers(cl)
	cl.EndStale(ctx)
	s.metrics.GaugeByLabel("parley_cluster_sessions", "Client sessions bound in the cluster, by node, as this node sees it.", "node", cl.SessionsPerNode)
	s.metrics.GaugeFunc("parley_cluster_nodes", "Nodes of the cluster this node sees alive, itself included.", func() float64 {
		return float64(len(cl.SessionsPerNode()))
	})
	s.log.Info("joined the cluster", "node", cl.Node(), "nodes", strconv.Itoa(len(cl.SessionsPerNode())))
	return nil
}
