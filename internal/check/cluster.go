package check

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"parley/internal/cluster"
	"parley/internal/config"
)

// clusterLinks checks, in cluster mode, that NATS (with JetStream) and
// the shared PostgreSQL database answer.
func clusterLinks(ctx context.Context, cfg config.Config) []Result {
	if cfg.Cluster.NATSURL == "" {
		return nil
	}
	var out []Result
	if err := cluster.Probe(ctx, cfg.Cluster.NATSURL); err != nil {
		out = append(out, Result{Fail, "cluster nats", cfg.Cluster.NATSURL + ": " + err.Error()})
	} else {
		out = append(out, Result{OK, "cluster nats", cfg.Cluster.NATSURL + " answers, with JetStream; this node is " + cfg.Cluster.Node})
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, cfg.Storage.DSN)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(context.Background())
	}
	if err != nil {
		// pgx names host, user and database, never the password.
		out = append(out, Result{Fail, "cluster postgres", "the database of storage.dsn does not answer: " + err.Error()})
	} else {
		out = append(out, Result{OK, "cluster postgres", "the database of storage.dsn answers"})
	}
	return out
}
