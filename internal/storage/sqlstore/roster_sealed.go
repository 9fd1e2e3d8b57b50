package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"parley/internal/storage"
)

// Sealed roster rows (issue 16). They follow the clear rows' locking
// order (account, version row, items), and every change of an item bumps
// the same roster version.

func (ro roster) SealedItems(ctx context.Context, owner string) ([]storage.SealedItem, int64, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return nil, 0, err
	}
	rows, err := ro.r.QueryContext(ctx, `
		SELECT COALESCE(v.version, 0), i.blind, i.sealed, i.subscription, i.ask, i.approved
		FROM accounts a
		LEFT JOIN roster_versions v ON v.owner = a.jid
		LEFT JOIN roster_sealed i ON i.owner = a.jid
		WHERE a.jid = $1
		ORDER BY i.blind`, owner)
	if err != nil {
		return nil, 0, ro.errorf("sealed roster of %s: %w", owner, err)
	}
	defer rows.Close()
	var (
		items   []storage.SealedItem
		version int64
		found   bool
	)
	for rows.Next() {
		var (
			blind, sealed []byte
			sub           sql.NullString
			ask, approved sql.NullBool
		)
		if err := rows.Scan(&version, &blind, &sealed, &sub, &ask, &approved); err != nil {
			return nil, 0, ro.errorf("sealed roster of %s: %w", owner, err)
		}
		found = true
		if !sub.Valid { // the owner has no sealed items
			continue
		}
		items = append(items, storage.SealedItem{Blind: blind, Sealed: nonNil(sealed),
			Subscription: sub.String, Ask: ask.Bool, Approved: approved.Bool})
	}
	if err := rows.Err(); err != nil {
		return nil, 0, ro.errorf("sealed roster of %s: %w", owner, err)
	}
	if !found {
		return nil, 0, ro.errorf("sealed roster of %s: %w", owner, storage.ErrNotFound)
	}
	return items, version, nil
}

func (ro roster) SealedItem(ctx context.Context, owner string, blind []byte) (storage.SealedItem, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return storage.SealedItem{}, err
	}
	if err := storage.ValidateBlind(blind); err != nil {
		return storage.SealedItem{}, err
	}
	it := storage.SealedItem{Blind: blind}
	err := ro.r.QueryRowContext(ctx,
		`SELECT sealed, subscription, ask, approved FROM roster_sealed WHERE owner = $1 AND blind = $2`,
		owner, blind).Scan(&it.Sealed, &it.Subscription, &it.Ask, &it.Approved)
	switch {
	case err == sql.ErrNoRows:
		return storage.SealedItem{}, ro.errorf("sealed roster item of %s: %w", owner, storage.ErrNotFound)
	case err != nil:
		return storage.SealedItem{}, ro.errorf("sealed roster item of %s: %w", owner, err)
	}
	it.Sealed = nonNil(it.Sealed)
	return it, nil
}

// rosterWrite runs f in a write transaction that has locked owner's
// account and bumped the roster version, and returns the new version.
func (ro roster) rosterWrite(ctx context.Context, owner, what string, f func(tx *sql.Tx) error) (version int64, err error) {
	tx, err := ro.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, ro.errorf("%s of %s: %w", what, owner, err)
	}
	defer rollbackOnError(tx, &err)
	if err := lockAccount(ctx, tx, owner, ro.d.LockKeyShare); err != nil {
		return 0, ro.errorf("%s of %s: %w", what, owner, err)
	}
	if version, err = ro.bumpVersion(ctx, tx, owner); err != nil {
		return 0, ro.errorf("%s of %s: %w", what, owner, err)
	}
	if err := f(tx); err != nil {
		return 0, ro.errorf("%s of %s: %w", what, owner, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, ro.errorf("%s of %s: commit: %w", what, owner, err)
	}
	return version, nil
}

// rosterCount counts owner's clear and sealed items inside tx, and
// whether the item to be written (by contact or by blind) is among them.
func rosterCount(ctx context.Context, tx *sql.Tx, owner, contact string, blind []byte) (n int, exists bool, err error) {
	if err := tx.QueryRowContext(ctx, `
		SELECT (SELECT COUNT(*) FROM roster_items WHERE owner = $1) + (SELECT COUNT(*) FROM roster_sealed WHERE owner = $1),
			EXISTS (SELECT 1 FROM roster_items WHERE owner = $1 AND contact = $2)
			OR EXISTS (SELECT 1 FROM roster_sealed WHERE owner = $1 AND blind = $3)`,
		owner, contact, nonNil(blind)).Scan(&n, &exists); err != nil {
		return 0, false, fmt.Errorf("count: %w", err)
	}
	return n, exists, nil
}

func (ro roster) PutSealed(ctx context.Context, owner string, it storage.SealedItem, replaces string, max int) (int64, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return 0, err
	}
	if err := storage.ValidateSealedItem(it); err != nil {
		return 0, err
	}
	return ro.rosterWrite(ctx, owner, "put sealed roster item", func(tx *sql.Tx) error {
		if max > 0 {
			n, exists, err := rosterCount(ctx, tx, owner, replaces, it.Blind)
			if err != nil {
				return err
			}
			if !exists && n >= max {
				return fmt.Errorf("%d items: %w", n, storage.ErrLimit)
			}
		}
		if replaces != "" {
			if _, err := tx.ExecContext(ctx, `DELETE FROM roster_items WHERE owner = $1 AND contact = $2`, owner, replaces); err != nil {
				return fmt.Errorf("delete the clear item: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO roster_sealed (owner, blind, sealed, subscription, ask, approved)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (owner, blind) DO UPDATE SET
				sealed = excluded.sealed, subscription = excluded.subscription,
				ask = excluded.ask, approved = excluded.approved`,
			owner, it.Blind, nonNil(it.Sealed), it.Subscription, it.Ask, it.Approved); err != nil {
			return ro.ownerError(err)
		}
		return nil
	})
}

func (ro roster) SetSealedState(ctx context.Context, owner string, blind []byte, sub string, ask, approved bool) (int64, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return 0, err
	}
	if err := storage.ValidateBlind(blind); err != nil {
		return 0, err
	}
	if err := storage.ValidateSubscription(sub); err != nil {
		return 0, err
	}
	return ro.rosterWrite(ctx, owner, "set sealed roster item state", func(tx *sql.Tx) error {
		return mustAffect(tx.ExecContext(ctx, `
			UPDATE roster_sealed SET subscription = $3, ask = $4, approved = $5
			WHERE owner = $1 AND blind = $2`, owner, blind, sub, ask, approved))
	})
}

func (ro roster) Reseal(ctx context.Context, owner string, blind, sealed []byte) error {
	if err := storage.ValidateOwner(owner); err != nil {
		return err
	}
	if err := storage.ValidateSealedPending(storage.SealedPending{Blind: blind, Sealed: sealed}); err != nil {
		return err
	}
	if err := mustAffect(ro.w.ExecContext(ctx, `UPDATE roster_sealed SET sealed = $3 WHERE owner = $1 AND blind = $2`,
		owner, blind, nonNil(sealed))); err != nil {
		return ro.errorf("reseal a roster item of %s: %w", owner, err)
	}
	return nil
}

func (ro roster) DeleteSealed(ctx context.Context, owner string, blind []byte) (int64, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return 0, err
	}
	if err := storage.ValidateBlind(blind); err != nil {
		return 0, err
	}
	// The version is bumped first, in Put's lock order, and rolled back
	// with the rest when there was nothing to delete.
	return ro.rosterWrite(ctx, owner, "delete sealed roster item", func(tx *sql.Tx) error {
		return mustAffect(tx.ExecContext(ctx, `DELETE FROM roster_sealed WHERE owner = $1 AND blind = $2`, owner, blind))
	})
}

// mustAffect turns an update or delete that matched no row into
// ErrNotFound.
func mustAffect(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

func (ro roster) AddPendingSealed(ctx context.Context, owner string, p storage.SealedPending, replaces string) (err error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return err
	}
	if err := storage.ValidateSealedPending(p); err != nil {
		return err
	}
	tx, err := ro.w.BeginTx(ctx, nil)
	if err != nil {
		return ro.errorf("add sealed pending request to %s: %w", owner, err)
	}
	defer rollbackOnError(tx, &err)
	if replaces != "" {
		if _, err := tx.ExecContext(ctx, `DELETE FROM pending_in WHERE owner = $1 AND contact = $2`, owner, replaces); err != nil {
			return ro.errorf("add sealed pending request to %s: delete the clear one: %w", owner, err)
		}
	}
	// A renewed request takes a new seq, as in AddPendingIn.
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO pending_sealed (owner, blind, sealed, seq) VALUES ($1, $2, $3, `+ro.d.PendingSealedSeq+`)
		ON CONFLICT (owner, blind) DO UPDATE SET sealed = excluded.sealed, seq = excluded.seq`,
		owner, p.Blind, nonNil(p.Sealed)); err != nil {
		return ro.errorf("add sealed pending request to %s: %w", owner, ro.ownerError(err))
	}
	if err := tx.Commit(); err != nil {
		return ro.errorf("add sealed pending request to %s: commit: %w", owner, err)
	}
	return nil
}

func (ro roster) PendingSealed(ctx context.Context, owner string) ([]storage.SealedPending, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return nil, err
	}
	rows, err := ro.r.QueryContext(ctx, `
		SELECT p.blind, p.sealed
		FROM accounts a LEFT JOIN pending_sealed p ON p.owner = a.jid
		WHERE a.jid = $1
		ORDER BY p.seq`, owner)
	if err != nil {
		return nil, ro.errorf("sealed pending requests of %s: %w", owner, err)
	}
	defer rows.Close()
	var (
		out   []storage.SealedPending
		found bool
	)
	for rows.Next() {
		var blind, sealed []byte
		if err := rows.Scan(&blind, &sealed); err != nil {
			return nil, ro.errorf("sealed pending requests of %s: %w", owner, err)
		}
		found = true
		if blind != nil {
			out = append(out, storage.SealedPending{Blind: blind, Sealed: nonNil(sealed)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, ro.errorf("sealed pending requests of %s: %w", owner, err)
	}
	if !found {
		return nil, ro.errorf("sealed pending requests of %s: %w", owner, storage.ErrNotFound)
	}
	return out, nil
}

func (ro roster) ResealPending(ctx context.Context, owner string, blind, sealed []byte) error {
	if err := storage.ValidateOwner(owner); err != nil {
		return err
	}
	if err := storage.ValidateSealedPending(storage.SealedPending{Blind: blind, Sealed: sealed}); err != nil {
		return err
	}
	if err := mustAffect(ro.w.ExecContext(ctx, `UPDATE pending_sealed SET sealed = $3 WHERE owner = $1 AND blind = $2`,
		owner, blind, nonNil(sealed))); err != nil {
		return ro.errorf("reseal a pending request to %s: %w", owner, err)
	}
	return nil
}

func (ro roster) DeletePendingSealed(ctx context.Context, owner string, blind []byte) error {
	if err := storage.ValidateOwner(owner); err != nil {
		return err
	}
	if err := storage.ValidateBlind(blind); err != nil {
		return err
	}
	if _, err := deleteOwned(ctx, ro.w, owner, `DELETE FROM pending_sealed WHERE owner = $1 AND blind = $2`, owner, blind); err != nil {
		return ro.errorf("delete a sealed pending request to %s: %w", owner, err)
	}
	return nil
}
