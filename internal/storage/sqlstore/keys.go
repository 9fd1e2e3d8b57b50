package sqlstore

import (
	"context"
	"database/sql"

	"parley/internal/storage"
)

// keys implements storage.Keys.
type keys struct{ *Store }

var _ storage.Keys = keys{}

// keysGetQuery runs at every login (prepared once). One statement, one
// snapshot: a concurrent Put cannot mix an old public key with new wraps.
const keysGetQuery = `
	SELECT k.public, k.private, w.hash, w.wrapped
	FROM user_keys k LEFT JOIN user_key_wraps w ON w.owner = k.owner
	WHERE k.owner = $1`

func (k keys) Get(ctx context.Context, owner string) (storage.UserKeys, error) {
	rows, err := k.keysGet.QueryContext(ctx, owner)
	if err != nil {
		return storage.UserKeys{}, k.errorf("get keys of %s: %w", owner, err)
	}
	defer rows.Close()
	var (
		out   storage.UserKeys
		found bool
	)
	for rows.Next() {
		var (
			hash    sql.NullString
			wrapped []byte
		)
		if err := rows.Scan(&out.Public, &out.Private, &hash, &wrapped); err != nil {
			return storage.UserKeys{}, k.errorf("get keys of %s: %w", owner, err)
		}
		found = true
		if hash.Valid {
			if out.Wraps == nil {
				out.Wraps = map[string][]byte{}
			}
			out.Wraps[hash.String] = wrapped
		}
	}
	if err := rows.Err(); err != nil {
		return storage.UserKeys{}, k.errorf("get keys of %s: %w", owner, err)
	}
	if !found {
		return storage.UserKeys{}, k.errorf("get keys of %s: %w", owner, storage.ErrNotFound)
	}
	return out, nil
}

func (k keys) Put(ctx context.Context, owner string, uk storage.UserKeys) (err error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return err
	}
	tx, err := k.w.BeginTx(ctx, nil)
	if err != nil {
		return k.errorf("put keys of %s: %w", owner, err)
	}
	defer rollbackOnError(tx, &err)
	if err := lockAccount(ctx, tx, owner, k.d.LockUpdate); err != nil {
		return k.errorf("put keys of %s: %w", owner, err)
	}
	// The wraps hang off user_keys and would go with the old row; they
	// are deleted by name so that none survives a key it does not wrap
	// whatever a foreign key did.
	for _, q := range []string{`DELETE FROM user_key_wraps WHERE owner = $1`, `DELETE FROM user_keys WHERE owner = $1`} {
		if _, err := tx.ExecContext(ctx, q, owner); err != nil {
			return k.errorf("put keys of %s: %w", owner, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO user_keys (owner, public, private) VALUES ($1, $2, $3)`,
		owner, nonNil(uk.Public), nonNil(uk.Private)); err != nil {
		return k.errorf("put keys of %s: %w", owner, err)
	}
	for hash, w := range uk.Wraps {
		if _, err := tx.ExecContext(ctx, `INSERT INTO user_key_wraps (owner, hash, wrapped) VALUES ($1, $2, $3)`,
			owner, hash, nonNil(w)); err != nil {
			return k.errorf("put keys of %s: %w", owner, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return k.errorf("put keys of %s: commit: %w", owner, err)
	}
	return nil
}

func (k keys) PutWrap(ctx context.Context, owner, hash string, wrapped []byte) error {
	// The foreign key to user_keys makes a wrap for an account without
	// keys fail; that is the only foreign key of the table.
	_, err := k.w.ExecContext(ctx, `
		INSERT INTO user_key_wraps (owner, hash, wrapped) VALUES ($1, $2, $3)
		ON CONFLICT (owner, hash) DO UPDATE SET wrapped = excluded.wrapped`, owner, hash, nonNil(wrapped))
	if err != nil {
		if k.d.IsForeignKey(err) {
			return k.errorf("put a key wrap of %s: %w", owner, storage.ErrNotFound)
		}
		return k.errorf("put a key wrap of %s: %w", owner, err)
	}
	return nil
}
