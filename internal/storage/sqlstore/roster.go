package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"parley/internal/storage"
)

// roster implements storage.Roster.
//
// Every write transaction locks in the same order (account row, then the
// owner's roster_versions row, then items), so concurrent writers of one
// roster queue on the version row instead of deadlocking, and a count
// check and the insert it guards cannot interleave with another Put. (On
// SQLite the transaction's write lock already orders everything.)
type roster struct{ *Store }

var _ storage.Roster = roster{}

func (ro roster) Items(ctx context.Context, owner string) ([]storage.RosterItem, int64, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return nil, 0, err
	}
	// One statement, one snapshot: the version always matches the items,
	// and the join on accounts tells a missing owner from an empty roster.
	rows, err := ro.r.QueryContext(ctx, `
		SELECT COALESCE(v.version, 0), i.contact, i.name, i.groups, i.subscription, i.ask, i.approved
		FROM accounts a
		LEFT JOIN roster_versions v ON v.owner = a.jid
		LEFT JOIN roster_items i ON i.owner = a.jid
		WHERE a.jid = $1
		ORDER BY i.contact`, owner)
	if err != nil {
		return nil, 0, ro.errorf("roster of %s: %w", owner, err)
	}
	defer rows.Close()
	var (
		items   []storage.RosterItem
		version int64
		found   bool
	)
	for rows.Next() {
		var (
			contact, name, groups, sub sql.NullString
			ask, approved              sql.NullBool
		)
		if err := rows.Scan(&version, &contact, &name, &groups, &sub, &ask, &approved); err != nil {
			return nil, 0, ro.errorf("roster of %s: %w", owner, err)
		}
		found = true
		if !contact.Valid { // the owner has no items
			continue
		}
		it, err := rosterItem(contact.String, name.String, groups.String, sub.String, ask.Bool, approved.Bool)
		if err != nil {
			return nil, 0, ro.errorf("roster of %s: %w", owner, err)
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, ro.errorf("roster of %s: %w", owner, err)
	}
	if !found {
		return nil, 0, ro.errorf("roster of %s: %w", owner, storage.ErrNotFound)
	}
	return items, version, nil
}

func (ro roster) Item(ctx context.Context, owner, contact string) (storage.RosterItem, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return storage.RosterItem{}, err
	}
	var (
		name, groups, sub string
		ask, approved     bool
	)
	err := ro.r.QueryRowContext(ctx,
		`SELECT name, groups, subscription, ask, approved FROM roster_items WHERE owner = $1 AND contact = $2`,
		owner, contact).Scan(&name, &groups, &sub, &ask, &approved)
	switch {
	case err == sql.ErrNoRows:
		return storage.RosterItem{}, ro.errorf("roster item %s of %s: %w", contact, owner, storage.ErrNotFound)
	case err != nil:
		return storage.RosterItem{}, ro.errorf("roster item %s of %s: %w", contact, owner, err)
	}
	it, err := rosterItem(contact, name, groups, sub, ask, approved)
	if err != nil {
		return storage.RosterItem{}, ro.errorf("roster item %s of %s: %w", contact, owner, err)
	}
	return it, nil
}

func rosterItem(contact, name, groups, sub string, ask, approved bool) (storage.RosterItem, error) {
	g, err := storage.DecodeGroups(groups)
	if err != nil {
		return storage.RosterItem{}, err
	}
	return storage.RosterItem{Contact: contact, Name: name, Groups: g, Subscription: sub, Ask: ask, Approved: approved}, nil
}

func (ro roster) Put(ctx context.Context, owner string, item storage.RosterItem, max int) (version int64, err error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return 0, err
	}
	item, err = storage.NormaliseRosterItem(item)
	if err != nil {
		return 0, err
	}
	tx, err := ro.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, ro.errorf("put roster item %s of %s: %w", item.Contact, owner, err)
	}
	defer rollbackOnError(tx, &err)
	if err := lockAccount(ctx, tx, owner, ro.d.LockKeyShare); err != nil {
		return 0, ro.errorf("put roster item %s of %s: %w", item.Contact, owner, err)
	}
	// Bumping first takes the version row's lock before the count: under
	// READ COMMITTED the count, a new statement, then sees every item a
	// previous holder committed.
	version, err = ro.bumpVersion(ctx, tx, owner)
	if err != nil {
		return 0, ro.errorf("put roster item %s of %s: %w", item.Contact, owner, err)
	}
	if max > 0 {
		n, exists, err := rosterCount(ctx, tx, owner, item.Contact, nil)
		if err != nil {
			return 0, ro.errorf("put roster item %s of %s: %w", item.Contact, owner, err)
		}
		if !exists && n >= max {
			return 0, ro.errorf("put roster item %s of %s: %d items: %w", item.Contact, owner, n, storage.ErrLimit)
		}
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO roster_items (owner, contact, name, groups, subscription, ask, approved)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (owner, contact) DO UPDATE SET
			name = excluded.name, groups = excluded.groups, subscription = excluded.subscription,
			ask = excluded.ask, approved = excluded.approved`,
		owner, item.Contact, item.Name, storage.EncodeGroups(item.Groups), item.Subscription, item.Ask, item.Approved); err != nil {
		return 0, ro.errorf("put roster item %s of %s: %w", item.Contact, owner, ro.ownerError(err))
	}
	if err := tx.Commit(); err != nil {
		return 0, ro.errorf("put roster item %s of %s: commit: %w", item.Contact, owner, err)
	}
	return version, nil
}

func (ro roster) Delete(ctx context.Context, owner, contact string) (version int64, err error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return 0, err
	}
	tx, err := ro.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, ro.errorf("delete roster item %s of %s: %w", contact, owner, err)
	}
	defer rollbackOnError(tx, &err)
	if err := lockAccount(ctx, tx, owner, ro.d.LockKeyShare); err != nil {
		return 0, ro.errorf("delete roster item %s of %s: %w", contact, owner, err)
	}
	// The version first, in the same lock order as Put; rolled back below
	// if there was nothing to delete.
	version, err = ro.bumpVersion(ctx, tx, owner)
	if err != nil {
		return 0, ro.errorf("delete roster item %s of %s: %w", contact, owner, err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM roster_items WHERE owner = $1 AND contact = $2`, owner, contact)
	if err != nil {
		return 0, ro.errorf("delete roster item %s of %s: %w", contact, owner, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, ro.errorf("delete roster item %s of %s: %w", contact, owner, err)
	} else if n == 0 {
		return 0, ro.errorf("delete roster item %s of %s: %w", contact, owner, storage.ErrNotFound)
	}
	if err := tx.Commit(); err != nil {
		return 0, ro.errorf("delete roster item %s of %s: commit: %w", contact, owner, err)
	}
	return version, nil
}

// bumpVersion increments owner's roster version inside tx and returns the
// new value; the first change of a roster makes it 1.
func (ro roster) bumpVersion(ctx context.Context, tx *sql.Tx, owner string) (int64, error) {
	var v int64
	if err := tx.QueryRowContext(ctx, `
		INSERT INTO roster_versions (owner, version) VALUES ($1, 1)
		ON CONFLICT (owner) DO UPDATE SET version = roster_versions.version + 1
		RETURNING version`, owner).Scan(&v); err != nil {
		return 0, fmt.Errorf("bump roster version: %w", ro.ownerError(err))
	}
	return v, nil
}

func (ro roster) Count(ctx context.Context, owner string) (int, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return 0, err
	}
	n, err := countOwned(ctx, ro.r, "roster_items", owner)
	if err != nil {
		return 0, ro.errorf("count roster of %s: %w", owner, err)
	}
	sealed, err := countOwned(ctx, ro.r, "roster_sealed", owner)
	if err != nil {
		return 0, ro.errorf("count roster of %s: %w", owner, err)
	}
	return n + sealed, nil
}

func (ro roster) AddPendingIn(ctx context.Context, owner string, p storage.Pending) error {
	if err := storage.ValidateOwner(owner); err != nil {
		return err
	}
	if err := storage.ValidatePending(p); err != nil {
		return err
	}
	// The renewed row takes the new seq too, so a repeated request moves
	// to the end: it is the newer one that the owner will be shown.
	if _, err := ro.w.ExecContext(ctx, `
		INSERT INTO pending_in (owner, contact, stanza, seq) VALUES ($1, $2, $3, `+ro.d.PendingSeq+`)
		ON CONFLICT (owner, contact) DO UPDATE SET stanza = excluded.stanza, seq = excluded.seq`,
		owner, p.Contact, nonNil(p.Stanza)); err != nil {
		return ro.errorf("add pending request from %s to %s: %w", p.Contact, owner, ro.ownerError(err))
	}
	return nil
}

func (ro roster) PendingIn(ctx context.Context, owner string) ([]storage.Pending, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return nil, err
	}
	rows, err := ro.r.QueryContext(ctx, `
		SELECT p.contact, p.stanza
		FROM accounts a LEFT JOIN pending_in p ON p.owner = a.jid
		WHERE a.jid = $1
		ORDER BY p.seq`, owner)
	if err != nil {
		return nil, ro.errorf("pending requests of %s: %w", owner, err)
	}
	defer rows.Close()
	var (
		out   []storage.Pending
		found bool
	)
	for rows.Next() {
		var (
			contact sql.NullString
			stanza  []byte
		)
		if err := rows.Scan(&contact, &stanza); err != nil {
			return nil, ro.errorf("pending requests of %s: %w", owner, err)
		}
		found = true
		if contact.Valid {
			out = append(out, storage.Pending{Contact: contact.String, Stanza: nonNil(stanza)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, ro.errorf("pending requests of %s: %w", owner, err)
	}
	if !found {
		return nil, ro.errorf("pending requests of %s: %w", owner, storage.ErrNotFound)
	}
	return out, nil
}

func (ro roster) DeletePendingIn(ctx context.Context, owner, contact string) error {
	if err := storage.ValidateOwner(owner); err != nil {
		return err
	}
	if _, err := deleteOwned(ctx, ro.w, owner, `DELETE FROM pending_in WHERE owner = $1 AND contact = $2`, owner, contact); err != nil {
		return ro.errorf("delete pending request from %s to %s: %w", contact, owner, err)
	}
	return nil
}
