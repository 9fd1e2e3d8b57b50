package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
)

// A server that checks a dialback key (XEP-0220) connects to whichever
// node its DNS gives for the domain, and a node confirms a key only
// while one of its outgoing streams waits for it. The node asked passes
// the question on to the others: whoever waits answers.

type dialbackQuery struct {
	Receiving   string `json:"r"`
	Originating string `json:"o"`
	StreamID    string `json:"i"`
}

// AnswerDialback lets the other nodes ask this node's s2s service
// whether it waits for a dialback key.
func (c *Cluster) AnswerDialback(pending func(receiving, originating, streamID string) bool) error {
	sub, err := c.nc.Subscribe(c.cfg.Prefix+".dialback", func(m *nats.Msg) {
		var q dialbackQuery
		if json.Unmarshal(m.Data, &q) == nil && pending(q.Receiving, q.Originating, q.StreamID) {
			_ = m.Respond([]byte(ackOK))
		}
	})
	if err != nil {
		return fmt.Errorf("cluster: answering dialback checks: %w", err)
	}
	c.mu.Lock()
	c.subs = append(c.subs, sub)
	c.mu.Unlock()
	return nil
}

// DialbackPending asks every node whether one of its outgoing streams
// waits for the key of streamID; only a node that does answers, so no
// answer within RequestTimeout is a no.
func (c *Cluster) DialbackPending(ctx context.Context, receiving, originating, streamID string) bool {
	b, _ := json.Marshal(dialbackQuery{receiving, originating, streamID})
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	m, err := c.nc.RequestWithContext(ctx, c.cfg.Prefix+".dialback", b)
	return err == nil && string(m.Data) == ackOK
}
