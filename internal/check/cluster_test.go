package check

import (
	"context"
	"net"
	"strings"
	"testing"

	"parley/internal/config"
)

// TestClusterLinksFail: unreachable NATS and PostgreSQL each fail their
// line; a single node has no such lines.
func TestClusterLinksFail(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	cfg := config.Default()
	if got := clusterLinks(context.Background(), cfg); len(got) != 0 {
		t.Fatalf("single node: %v", got)
	}
	cfg.Cluster.NATSURL = "nats://" + closed
	cfg.Cluster.Node = "n1"
	cfg.Storage.Driver = "postgres"
	cfg.Storage.DSN = "postgres://parley:s3cret@" + closed + "/parley?sslmode=disable&connect_timeout=2"
	got := clusterLinks(context.Background(), cfg)
	if len(got) != 2 || got[0].Level != Fail || got[0].What != "cluster nats" || got[1].Level != Fail || got[1].What != "cluster postgres" {
		t.Fatalf("got %+v", got)
	}
	if strings.Contains(got[1].Msg, "s3cret") {
		t.Fatalf("the password shows: %s", got[1].Msg)
	}
}
