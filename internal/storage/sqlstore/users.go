package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"parley/internal/storage"
)

// users implements storage.Users.
type users struct{ *Store }

var _ storage.Users = users{}

// One statement sees one snapshot, so the account and its credentials cannot
// come from either side of a concurrent change.
const userGetQuery = `
	SELECT a.created, c.hash, c.salt, c.iterations, c.stored_key, c.server_key
	FROM accounts a LEFT JOIN credentials c ON c.jid = a.jid
	WHERE a.jid = $1
	ORDER BY c.hash`

func (u users) Create(ctx context.Context, a storage.Account) (err error) {
	domain, err := storage.DomainOf(a.JID)
	if err != nil {
		return err
	}
	if err := storage.ValidateCredentials(a.Credentials); err != nil {
		return err
	}
	created := storage.CreatedTime(a.Created)
	tx, err := u.w.BeginTx(ctx, nil)
	if err != nil {
		return u.errorf("create %s: %w", a.JID, err)
	}
	defer rollbackOnError(tx, &err)
	// ON CONFLICT DO NOTHING reports a duplicate as zero rows affected,
	// which is clearer than decoding constraint errors; a concurrent
	// insert of the same JID waits for the other transaction and then
	// reports zero.
	res, err := tx.ExecContext(ctx,
		`INSERT INTO accounts (jid, domain, created) VALUES ($1, $2, $3) ON CONFLICT (jid) DO NOTHING`,
		a.JID, domain, u.d.Time(created))
	if err != nil {
		return u.errorf("create %s: %w", a.JID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return u.errorf("create %s: %w", a.JID, err)
	} else if n == 0 {
		return u.errorf("create %s: %w", a.JID, storage.ErrExists)
	}
	if err := insertCredentials(ctx, tx, a.JID, a.Credentials); err != nil {
		return u.errorf("create %s: %w", a.JID, err)
	}
	if err := tx.Commit(); err != nil {
		return u.errorf("create %s: commit: %w", a.JID, err)
	}
	return nil
}

func (u users) Get(ctx context.Context, bareJID string) (storage.Account, error) {
	rows, err := u.userGet.QueryContext(ctx, bareJID)
	if err != nil {
		return storage.Account{}, u.errorf("get %s: %w", bareJID, err)
	}
	defer rows.Close()
	a := storage.Account{JID: bareJID}
	found := false
	for rows.Next() {
		var (
			hash       sql.NullString
			iterations sql.NullInt64
			c          storage.Credential
		)
		if err := rows.Scan(scanTime{&a.Created}, &hash, &c.Salt, &iterations, &c.StoredKey, &c.ServerKey); err != nil {
			return storage.Account{}, u.errorf("get %s: %w", bareJID, err)
		}
		found = true
		if hash.Valid { // NULL: the account has no credentials
			c.Hash = hash.String
			c.Iterations = int(iterations.Int64)
			a.Credentials = append(a.Credentials, c)
		}
	}
	if err := rows.Err(); err != nil {
		return storage.Account{}, u.errorf("get %s: %w", bareJID, err)
	}
	if !found {
		return storage.Account{}, u.errorf("get %s: %w", bareJID, storage.ErrNotFound)
	}
	return a, nil
}

func (u users) SetCredentials(ctx context.Context, bareJID string, creds []storage.Credential) (err error) {
	if err := storage.ValidateCredentials(creds); err != nil {
		return err
	}
	tx, err := u.w.BeginTx(ctx, nil)
	if err != nil {
		return u.errorf("set credentials of %s: %w", bareJID, err)
	}
	defer rollbackOnError(tx, &err)
	// Locking the account row for update keeps a concurrent Delete from
	// removing it between this check and the inserts, and makes
	// concurrent SetCredentials calls on one account run one after the
	// other instead of colliding on the credentials primary key.
	if err := lockAccount(ctx, tx, bareJID, u.d.LockUpdate); err != nil {
		return u.errorf("set credentials of %s: %w", bareJID, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM credentials WHERE jid = $1`, bareJID); err != nil {
		return u.errorf("set credentials of %s: %w", bareJID, err)
	}
	if err := insertCredentials(ctx, tx, bareJID, creds); err != nil {
		return u.errorf("set credentials of %s: %w", bareJID, err)
	}
	if err := tx.Commit(); err != nil {
		return u.errorf("set credentials of %s: commit: %w", bareJID, err)
	}
	return nil
}

func (u users) Delete(ctx context.Context, bareJID string) error {
	// ON DELETE CASCADE removes the credentials and every other per-user
	// table (SQLite: foreign_keys(1) on every connection).
	res, err := u.w.ExecContext(ctx, `DELETE FROM accounts WHERE jid = $1`, bareJID)
	if err != nil {
		return u.errorf("delete %s: %w", bareJID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return u.errorf("delete %s: %w", bareJID, err)
	}
	if n == 0 {
		return u.errorf("delete %s: %w", bareJID, storage.ErrNotFound)
	}
	return nil
}

func (u users) List(ctx context.Context, domain string) ([]string, error) {
	// Both schemas order JIDs by bytes, like Go's string comparison:
	// SQLite's default BINARY collation, PostgreSQL's "C".
	q, args := `SELECT jid FROM accounts ORDER BY jid`, []any(nil)
	if domain != "" {
		q, args = `SELECT jid FROM accounts WHERE domain = $1 ORDER BY jid`, []any{domain}
	}
	rows, err := u.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, u.errorf("list %q: %w", domain, err)
	}
	defer rows.Close()
	var jids []string
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, u.errorf("list %q: %w", domain, err)
		}
		jids = append(jids, j)
	}
	if err := rows.Err(); err != nil {
		return nil, u.errorf("list %q: %w", domain, err)
	}
	return jids, nil
}

func (u users) Count(ctx context.Context, domain string) (int, error) {
	q, args := `SELECT COUNT(*) FROM accounts`, []any(nil)
	if domain != "" {
		q, args = `SELECT COUNT(*) FROM accounts WHERE domain = $1`, []any{domain}
	}
	var n int
	if err := u.r.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, u.errorf("count %q: %w", domain, err)
	}
	return n, nil
}

func insertCredentials(ctx context.Context, tx *sql.Tx, jid string, creds []storage.Credential) error {
	for _, c := range creds {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO credentials (jid, hash, salt, iterations, stored_key, server_key) VALUES ($1, $2, $3, $4, $5, $6)`,
			jid, c.Hash, nonNil(c.Salt), c.Iterations, nonNil(c.StoredKey), nonNil(c.ServerKey)); err != nil {
			return fmt.Errorf("insert %s credential: %w", c.Hash, err)
		}
	}
	return nil
}
