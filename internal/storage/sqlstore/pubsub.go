package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"parley/internal/storage"
)

// pubsub implements storage.PubSub, once for both kinds of service: the
// personal ones (PEP), whose owner is an account and whose rows go with
// it, and the pubsub service domains (XEP-0060), whose owner is the
// service's domain. They differ only in their tables and in that check.
type pubsub struct {
	*Store
	personal bool // owners are accounts: tables pubsub_*, else pubsub_service_*
}

var _ storage.PubSub = pubsub{}

// q names the tables of p in a query written with {nodes} and {items}.
func (p pubsub) q(query string) string {
	if p.personal {
		return personalTables.Replace(query)
	}
	return serviceTables.Replace(query)
}

var (
	personalTables = strings.NewReplacer("{nodes}", "pubsub_nodes", "{items}", "pubsub_items")
	serviceTables  = strings.NewReplacer("{nodes}", "pubsub_service_nodes", "{items}", "pubsub_service_items")
)

func (p pubsub) validateOwner(owner string) error {
	if p.personal {
		return storage.ValidateOwner(owner)
	}
	return storage.ValidateService(owner)
}

func (p pubsub) validateNode(owner, node string) error {
	if err := p.validateOwner(owner); err != nil {
		return err
	}
	return storage.ValidateNodeName(node)
}

func (p pubsub) CreateNode(ctx context.Context, owner string, n storage.PubSubNode) error {
	if err := p.validateNode(owner, n.Name); err != nil {
		return err
	}
	if err := storage.ValidateBlob("pubsub node config", n.Config); err != nil {
		return err
	}
	res, err := p.w.ExecContext(ctx, p.q(`
		INSERT INTO {nodes} (owner, node, config, created) VALUES ($1, $2, $3, $4)
		ON CONFLICT (owner, node) DO NOTHING`),
		owner, n.Name, nonNil(n.Config), p.d.Time(storage.StoredTime()))
	if err != nil {
		return p.errorf("create pubsub node %q of %s: %w", n.Name, owner, p.ownerError(err))
	}
	if k, err := res.RowsAffected(); err != nil {
		return p.errorf("create pubsub node %q of %s: %w", n.Name, owner, err)
	} else if k == 0 {
		return p.errorf("create pubsub node %q of %s: %w", n.Name, owner, storage.ErrExists)
	}
	return nil
}

func (p pubsub) Node(ctx context.Context, owner, node string) (storage.PubSubNode, error) {
	if err := p.validateNode(owner, node); err != nil {
		return storage.PubSubNode{}, err
	}
	n := storage.PubSubNode{Name: node}
	switch err := p.r.QueryRowContext(ctx,
		p.q(`SELECT config, created FROM {nodes} WHERE owner = $1 AND node = $2`), owner, node).Scan(&n.Config, scanTime{&n.Created}); {
	case err == sql.ErrNoRows:
		return storage.PubSubNode{}, p.errorf("pubsub node %q of %s: %w", node, owner, storage.ErrNotFound)
	case err != nil:
		return storage.PubSubNode{}, p.errorf("pubsub node %q of %s: %w", node, owner, err)
	}
	n.Config = nonNil(n.Config)
	return n, nil
}

func (p pubsub) Nodes(ctx context.Context, owner string) ([]storage.PubSubNode, error) {
	if err := p.validateOwner(owner); err != nil {
		return nil, err
	}
	// A service domain has nodes or none; an account is looked up so
	// that a missing one reads as ErrNotFound, not as no nodes.
	query := `SELECT n.node, n.config, n.created FROM {nodes} n WHERE n.owner = $1 ORDER BY n.node`
	if p.personal {
		query = `
		SELECT n.node, n.config, n.created
		FROM accounts a LEFT JOIN {nodes} n ON n.owner = a.jid
		WHERE a.jid = $1
		ORDER BY n.node`
	}
	rows, err := p.r.QueryContext(ctx, p.q(query), owner)
	if err != nil {
		return nil, p.errorf("pubsub nodes of %s: %w", owner, err)
	}
	defer rows.Close()
	var (
		out   []storage.PubSubNode
		found bool
	)
	for rows.Next() {
		var (
			name    sql.NullString
			config  []byte
			created time.Time
		)
		if err := rows.Scan(&name, &config, scanTime{&created}); err != nil {
			return nil, p.errorf("pubsub nodes of %s: %w", owner, err)
		}
		found = true
		if name.Valid { // NULL: the account has no nodes
			out = append(out, storage.PubSubNode{Name: name.String, Config: nonNil(config), Created: created})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, p.errorf("pubsub nodes of %s: %w", owner, err)
	}
	if !found && p.personal {
		return nil, p.errorf("pubsub nodes of %s: %w", owner, storage.ErrNotFound)
	}
	return out, nil
}

// trim drops the oldest items of a node beyond max: everything at or below
// the seq of the item max places from the newest. With fewer items the
// subquery is NULL and nothing matches.
const trimQuery = `
	DELETE FROM {items} WHERE owner = $1 AND node = $2 AND seq <= (
		SELECT seq FROM {items} WHERE owner = $1 AND node = $2
		ORDER BY seq DESC LIMIT 1 OFFSET $3)`

func (p pubsub) Configure(ctx context.Context, owner, node string, config []byte, maxItems int) (err error) {
	if err := p.validateNode(owner, node); err != nil {
		return err
	}
	if err := storage.ValidateBlob("pubsub node config", config); err != nil {
		return err
	}
	if err := storage.ValidateMaxItems(maxItems); err != nil {
		return err
	}
	tx, err := p.w.BeginTx(ctx, nil)
	if err != nil {
		return p.errorf("configure pubsub node %q of %s: %w", node, owner, err)
	}
	defer rollbackOnError(tx, &err)
	res, err := tx.ExecContext(ctx, p.q(`UPDATE {nodes} SET config = $3 WHERE owner = $1 AND node = $2`), owner, node, nonNil(config))
	if err != nil {
		return p.errorf("configure pubsub node %q of %s: %w", node, owner, err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return p.errorf("configure pubsub node %q of %s: %w", node, owner, err)
	} else if k == 0 {
		return p.errorf("configure pubsub node %q of %s: %w", node, owner, storage.ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, p.q(trimQuery), owner, node, storage.EffectiveMaxItems(maxItems)); err != nil {
		return p.errorf("configure pubsub node %q of %s: trim: %w", node, owner, err)
	}
	if err := tx.Commit(); err != nil {
		return p.errorf("configure pubsub node %q of %s: %w", node, owner, err)
	}
	return nil
}

func (p pubsub) DeleteNode(ctx context.Context, owner, node string) error {
	if err := p.validateNode(owner, node); err != nil {
		return err
	}
	return p.deleteOne(ctx, fmt.Sprintf("delete pubsub node %q of %s", node, owner),
		p.q(`DELETE FROM {nodes} WHERE owner = $1 AND node = $2`), owner, node)
}

func (p pubsub) Retract(ctx context.Context, owner, node, id string) error {
	if err := p.validateNode(owner, node); err != nil {
		return err
	}
	return p.deleteOne(ctx, fmt.Sprintf("retract item %q from pubsub node %q of %s", id, node, owner),
		p.q(`DELETE FROM {items} WHERE owner = $1 AND node = $2 AND id = $3`), owner, node, id)
}

// deleteOne runs a DELETE that must remove a row, else ErrNotFound.
func (p pubsub) deleteOne(ctx context.Context, what, query string, args ...any) error {
	res, err := p.w.ExecContext(ctx, query, args...)
	if err != nil {
		return p.errorf("%s: %w", what, err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return p.errorf("%s: %w", what, err)
	} else if k == 0 {
		return p.errorf("%s: %w", what, storage.ErrNotFound)
	}
	return nil
}

func (p pubsub) Publish(ctx context.Context, owner, node string, it storage.PubSubItem, maxItems int) (_ storage.PubSubItem, err error) {
	if err := p.validateNode(owner, node); err != nil {
		return storage.PubSubItem{}, err
	}
	if err := storage.ValidatePubSubItem(it); err != nil {
		return storage.PubSubItem{}, err
	}
	if err := storage.ValidateMaxItems(maxItems); err != nil {
		return storage.PubSubItem{}, err
	}
	it.Payload = nonNil(it.Payload)
	it.Published = storage.StoredTime()
	what := fmt.Sprintf("publish item %q to pubsub node %q of %s", it.ID, node, owner)
	// The node row's lock (or SQLite's write lock) serialises publishes to
	// one node, so two of them cannot draw the same seq. Nothing here
	// locks the account row: an account deletion locks it, then the
	// nodes, then the items, and this transaction never waits for a lock
	// in the opposite order.
	tx, err := p.w.BeginTx(ctx, nil)
	if err != nil {
		return storage.PubSubItem{}, p.errorf("%s: %w", what, err)
	}
	defer rollbackOnError(tx, &err)
	var one int
	switch err := tx.QueryRowContext(ctx,
		p.q(`SELECT 1 FROM {nodes} WHERE owner = $1 AND node = $2 `+p.d.LockNoKeyUpdate), owner, node).Scan(&one); {
	case err == sql.ErrNoRows:
		return storage.PubSubItem{}, p.errorf("%s: %w", what, storage.ErrNotFound)
	case err != nil:
		return storage.PubSubItem{}, p.errorf("%s: %w", what, err)
	}
	var seq int64
	if err := tx.QueryRowContext(ctx,
		p.q(`SELECT COALESCE(MAX(seq), 0) + 1 FROM {items} WHERE owner = $1 AND node = $2`), owner, node).Scan(&seq); err != nil {
		return storage.PubSubItem{}, p.errorf("%s: %w", what, err)
	}
	if _, err := tx.ExecContext(ctx, p.q(`
		INSERT INTO {items} (owner, node, id, seq, publisher, published, payload)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (owner, node, id) DO UPDATE SET
			seq = excluded.seq, publisher = excluded.publisher,
			published = excluded.published, payload = excluded.payload`),
		owner, node, it.ID, seq, it.Publisher, p.d.Time(it.Published), it.Payload); err != nil {
		return storage.PubSubItem{}, p.errorf("%s: %w", what, err)
	}
	if _, err := tx.ExecContext(ctx, p.q(trimQuery), owner, node, storage.EffectiveMaxItems(maxItems)); err != nil {
		return storage.PubSubItem{}, p.errorf("%s: trim: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return storage.PubSubItem{}, p.errorf("%s: %w", what, err)
	}
	return it, nil
}

func (p pubsub) Items(ctx context.Context, owner, node string, q storage.PubSubQuery) ([]storage.PubSubItem, error) {
	if err := p.validateNode(owner, node); err != nil {
		return nil, err
	}
	if len(q.IDs) > storage.MaxPubSubItems {
		return nil, fmt.Errorf("%w: %d item ids asked for, more than %d", storage.ErrInvalid, len(q.IDs), storage.MaxPubSubItems)
	}
	// A LEFT JOIN from the node row tells a missing node (no row) from an
	// empty one (one row of NULLs) in a single statement.
	var b strings.Builder
	b.WriteString(`
		SELECT i.id, i.publisher, i.published, i.payload
		FROM {nodes} n LEFT JOIN {items} i ON i.owner = n.owner AND i.node = n.node`)
	args := []any{owner, node}
	if len(q.IDs) > 0 {
		b.WriteString(` AND i.id IN (`)
		for k, id := range q.IDs {
			if k > 0 {
				b.WriteString(", ")
			}
			args = append(args, id)
			b.WriteString("$" + strconv.Itoa(len(args)))
		}
		b.WriteString(`)`)
	}
	b.WriteString(` WHERE n.owner = $1 AND n.node = $2 ORDER BY i.seq DESC`)
	if q.Last > 0 {
		args = append(args, q.Last)
		b.WriteString(` LIMIT $` + strconv.Itoa(len(args)))
	}
	what := fmt.Sprintf("items of pubsub node %q of %s", node, owner)
	rows, err := p.r.QueryContext(ctx, p.q(b.String()), args...)
	if err != nil {
		return nil, p.errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var (
		out   []storage.PubSubItem
		found bool
	)
	for rows.Next() {
		var (
			id, publisher sql.NullString
			published     time.Time
			payload       []byte
		)
		if err := rows.Scan(&id, &publisher, scanTime{&published}, &payload); err != nil {
			return nil, p.errorf("%s: %w", what, err)
		}
		found = true
		if id.Valid {
			out = append(out, storage.PubSubItem{ID: id.String, Publisher: publisher.String, Published: published, Payload: nonNil(payload)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, p.errorf("%s: %w", what, err)
	}
	if !found {
		return nil, p.errorf("%s: %w", what, storage.ErrNotFound)
	}
	slices.Reverse(out) // newest first from the query, oldest first out
	return out, nil
}

func (p pubsub) LastItems(ctx context.Context, owner string) ([]storage.PubSubLast, error) {
	if err := p.validateOwner(owner); err != nil {
		return nil, err
	}
	rows, err := p.r.QueryContext(ctx, p.q(`
		SELECT i.node, i.id, i.publisher, i.published, i.payload
		FROM {items} i
		WHERE i.owner = $1 AND i.seq = (
			SELECT MAX(j.seq) FROM {items} j WHERE j.owner = i.owner AND j.node = i.node)
		ORDER BY i.node`), owner)
	if err != nil {
		return nil, p.errorf("last pubsub items of %s: %w", owner, err)
	}
	defer rows.Close()
	var out []storage.PubSubLast
	for rows.Next() {
		var l storage.PubSubLast
		if err := rows.Scan(&l.Node, &l.Item.ID, &l.Item.Publisher, scanTime{&l.Item.Published}, &l.Item.Payload); err != nil {
			return nil, p.errorf("last pubsub items of %s: %w", owner, err)
		}
		l.Item.Payload = nonNil(l.Item.Payload)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, p.errorf("last pubsub items of %s: %w", owner, err)
	}
	return out, nil
}

// PayloadBytes counts bytes, not characters: octet_length exists in
// both databases.
func (p pubsub) PayloadBytes(ctx context.Context, owner string) (int64, error) {
	if err := p.validateOwner(owner); err != nil {
		return 0, err
	}
	var n int64
	if err := p.r.QueryRowContext(ctx,
		p.q(`SELECT COALESCE(SUM(octet_length(payload)), 0) FROM {items} WHERE owner = $1`), owner).Scan(&n); err != nil {
		return 0, p.errorf("pubsub payload bytes of %s: %w", owner, err)
	}
	return n, nil
}

func (p pubsub) NodesBytes(ctx context.Context, owner string, nodes []string) (int64, error) {
	if err := p.validateOwner(owner); err != nil {
		return 0, err
	}
	if len(nodes) == 0 {
		return 0, nil
	}
	if len(nodes) > storage.MaxPubSubItems {
		return 0, fmt.Errorf("%w: %d nodes asked for, more than %d", storage.ErrInvalid, len(nodes), storage.MaxPubSubItems)
	}
	var b strings.Builder
	b.WriteString(`SELECT COALESCE(SUM(octet_length(payload)), 0) FROM {items} WHERE owner = $1 AND node IN (`)
	args := []any{owner}
	for k, n := range nodes {
		if k > 0 {
			b.WriteString(", ")
		}
		args = append(args, n)
		b.WriteString("$" + strconv.Itoa(len(args)))
	}
	b.WriteString(`)`)
	var n int64
	if err := p.r.QueryRowContext(ctx, p.q(b.String()), args...).Scan(&n); err != nil {
		return 0, p.errorf("pubsub payload bytes of %d nodes of %s: %w", len(nodes), owner, err)
	}
	return n, nil
}
