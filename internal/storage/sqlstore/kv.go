package sqlstore

import (
	"context"
	"database/sql"

	"parley/internal/storage"
)

// kv implements storage.KV.
type kv struct{ *Store }

var _ storage.KV = kv{}

const kvGetQuery = `SELECT value FROM kv WHERE owner = $1 AND ns = $2 AND key = $3`

func validateKV(owner, ns, key string) error {
	if err := storage.ValidateOwner(owner); err != nil {
		return err
	}
	if err := storage.ValidateNamespace(ns); err != nil {
		return err
	}
	return storage.ValidateKey(key)
}

func (s kv) Get(ctx context.Context, owner, ns, key string) ([]byte, error) {
	if err := validateKV(owner, ns, key); err != nil {
		return nil, err
	}
	var v []byte
	switch err := s.kvGet.QueryRowContext(ctx, owner, ns, key).Scan(&v); {
	case err == sql.ErrNoRows:
		return nil, s.errorf("get %s %q of %s: %w", ns, key, owner, storage.ErrNotFound)
	case err != nil:
		return nil, s.errorf("get %s %q of %s: %w", ns, key, owner, err)
	}
	return nonNil(v), nil
}

func (s kv) Put(ctx context.Context, owner, ns, key string, value []byte) error {
	if err := validateKV(owner, ns, key); err != nil {
		return err
	}
	if err := storage.ValidateBlob("KV value", value); err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `
		INSERT INTO kv (owner, ns, key, value) VALUES ($1, $2, $3, $4)
		ON CONFLICT (owner, ns, key) DO UPDATE SET value = excluded.value`,
		owner, ns, key, nonNil(value)); err != nil {
		return s.errorf("put %s %q of %s: %w", ns, key, owner, s.ownerError(err))
	}
	return nil
}

func (s kv) Delete(ctx context.Context, owner, ns, key string) error {
	if err := validateKV(owner, ns, key); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `DELETE FROM kv WHERE owner = $1 AND ns = $2 AND key = $3`, owner, ns, key)
	if err != nil {
		return s.errorf("delete %s %q of %s: %w", ns, key, owner, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.errorf("delete %s %q of %s: %w", ns, key, owner, err)
	} else if n == 0 {
		return s.errorf("delete %s %q of %s: %w", ns, key, owner, storage.ErrNotFound)
	}
	return nil
}

func (s kv) List(ctx context.Context, owner, ns string) ([]storage.KVEntry, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return nil, err
	}
	if err := storage.ValidateNamespace(ns); err != nil {
		return nil, err
	}
	// Keys come back in byte order (BINARY or "C" collation).
	rows, err := s.r.QueryContext(ctx, `
		SELECT kv.key, kv.value
		FROM accounts a LEFT JOIN kv ON kv.owner = a.jid AND kv.ns = $2
		WHERE a.jid = $1
		ORDER BY kv.key`, owner, ns)
	if err != nil {
		return nil, s.errorf("list %s of %s: %w", ns, owner, err)
	}
	defer rows.Close()
	var (
		out   []storage.KVEntry
		found bool
	)
	for rows.Next() {
		var (
			key   sql.NullString
			value []byte
		)
		if err := rows.Scan(&key, &value); err != nil {
			return nil, s.errorf("list %s of %s: %w", ns, owner, err)
		}
		found = true
		if key.Valid { // NULL: nothing in the namespace
			out = append(out, storage.KVEntry{Key: key.String, Value: nonNil(value)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.errorf("list %s of %s: %w", ns, owner, err)
	}
	if !found {
		return nil, s.errorf("list %s of %s: %w", ns, owner, storage.ErrNotFound)
	}
	return out, nil
}

func (s kv) DeleteAll(ctx context.Context, owner, ns string) error {
	if err := storage.ValidateOwner(owner); err != nil {
		return err
	}
	if err := storage.ValidateNamespace(ns); err != nil {
		return err
	}
	if _, err := deleteOwned(ctx, s.w, owner, `DELETE FROM kv WHERE owner = $1 AND ns = $2`, owner, ns); err != nil {
		return s.errorf("delete all %s of %s: %w", ns, owner, err)
	}
	return nil
}
