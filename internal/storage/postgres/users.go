package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"parley/internal/storage"
)

// users implements storage.Users.
type users struct {
	db *sql.DB
}

var _ storage.Users = (*users)(nil)

func (u *users) Create(ctx context.Context, a storage.Account) (err error) {
	domain, err := storage.DomainOf(a.JID)
	if err != nil {
		return err
	}
	if err := storage.ValidateCredentials(a.Credentials); err != nil {
		return err
	}
	created := storage.CreatedTime(a.Created)
	tx, err := u.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: create %s: %w", a.JID, err)
	}
	defer rollbackOnError(tx, &err)
	// ON CONFLICT DO NOTHING reports a duplicate as zero rows affected,
	// which is clearer than decoding SQLSTATE 23505; a concurrent insert of
	// the same JID waits for the other transaction and then reports zero.
	res, err := tx.ExecContext(ctx,
		`INSERT INTO accounts (jid, domain, created) VALUES ($1, $2, $3) ON CONFLICT (jid) DO NOTHING`,
		a.JID, domain, created)
	if err != nil {
		return fmt.Errorf("postgres: create %s: %w", a.JID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("postgres: create %s: %w", a.JID, err)
	} else if n == 0 {
		return fmt.Errorf("postgres: create %s: %w", a.JID, storage.ErrExists)
	}
	if err := insertCredentials(ctx, tx, a.JID, a.Credentials); err != nil {
		return fmt.Errorf("postgres: create %s: %w", a.JID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("postgres: create %s: commit: %w", a.JID, err)
	}
	return nil
}

func (u *users) Get(ctx context.Context, bareJID string) (storage.Account, error) {
	// One statement sees one snapshot, so the account and its credentials
	// cannot come from either side of a concurrent change.
	rows, err := u.db.QueryContext(ctx, `
		SELECT a.created, c.hash, c.salt, c.iterations, c.stored_key, c.server_key
		FROM accounts a LEFT JOIN credentials c ON c.jid = a.jid
		WHERE a.jid = $1
		ORDER BY c.hash`, bareJID)
	if err != nil {
		return storage.Account{}, fmt.Errorf("postgres: get %s: %w", bareJID, err)
	}
	defer rows.Close()
	a := storage.Account{JID: bareJID}
	found := false
	for rows.Next() {
		var (
			created    time.Time
			hash       sql.NullString
			iterations sql.NullInt64
			c          storage.Credential
		)
		if err := rows.Scan(&created, &hash, &c.Salt, &iterations, &c.StoredKey, &c.ServerKey); err != nil {
			return storage.Account{}, fmt.Errorf("postgres: get %s: %w", bareJID, err)
		}
		found = true
		a.Created = created.UTC()
		if hash.Valid { // NULL: the account has no credentials
			c.Hash = hash.String
			c.Iterations = int(iterations.Int64)
			a.Credentials = append(a.Credentials, c)
		}
	}
	if err := rows.Err(); err != nil {
		return storage.Account{}, fmt.Errorf("postgres: get %s: %w", bareJID, err)
	}
	if !found {
		return storage.Account{}, fmt.Errorf("postgres: get %s: %w", bareJID, storage.ErrNotFound)
	}
	return a, nil
}

func (u *users) SetCredentials(ctx context.Context, bareJID string, creds []storage.Credential) (err error) {
	if err := storage.ValidateCredentials(creds); err != nil {
		return err
	}
	tx, err := u.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: set credentials of %s: %w", bareJID, err)
	}
	defer rollbackOnError(tx, &err)
	// FOR UPDATE locks the account row: a concurrent Delete cannot remove it
	// between this check and the inserts, and concurrent SetCredentials
	// calls on one account run one after the other instead of colliding on
	// the credentials primary key.
	var one int
	switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE jid = $1 FOR UPDATE`, bareJID).Scan(&one); {
	case err == sql.ErrNoRows:
		return fmt.Errorf("postgres: set credentials of %s: %w", bareJID, storage.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: set credentials of %s: %w", bareJID, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM credentials WHERE jid = $1`, bareJID); err != nil {
		return fmt.Errorf("postgres: set credentials of %s: %w", bareJID, err)
	}
	if err := insertCredentials(ctx, tx, bareJID, creds); err != nil {
		return fmt.Errorf("postgres: set credentials of %s: %w", bareJID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("postgres: set credentials of %s: commit: %w", bareJID, err)
	}
	return nil
}

func (u *users) Delete(ctx context.Context, bareJID string) error {
	// ON DELETE CASCADE removes the credentials and, later, every other
	// per-user table.
	res, err := u.db.ExecContext(ctx, `DELETE FROM accounts WHERE jid = $1`, bareJID)
	if err != nil {
		return fmt.Errorf("postgres: delete %s: %w", bareJID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("postgres: delete %s: %w", bareJID, err)
	}
	if n == 0 {
		return fmt.Errorf("postgres: delete %s: %w", bareJID, storage.ErrNotFound)
	}
	return nil
}

func (u *users) List(ctx context.Context, domain string) ([]string, error) {
	// The jid column's "C" collation orders by bytes, like Go's string
	// comparison and SQLite.
	q, args := `SELECT jid FROM accounts ORDER BY jid`, []any(nil)
	if domain != "" {
		q, args = `SELECT jid FROM accounts WHERE domain = $1 ORDER BY jid`, []any{domain}
	}
	rows, err := u.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list %q: %w", domain, err)
	}
	defer rows.Close()
	var jids []string
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, fmt.Errorf("postgres: list %q: %w", domain, err)
		}
		jids = append(jids, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list %q: %w", domain, err)
	}
	return jids, nil
}

func (u *users) Count(ctx context.Context, domain string) (int, error) {
	q, args := `SELECT COUNT(*) FROM accounts`, []any(nil)
	if domain != "" {
		q, args = `SELECT COUNT(*) FROM accounts WHERE domain = $1`, []any{domain}
	}
	var n int
	if err := u.db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count %q: %w", domain, err)
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

// nonNil maps a nil slice to an empty one: pgx encodes nil as NULL,
// which the NOT NULL columns reject.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func rollbackOnError(tx *sql.Tx, err *error) {
	if *err != nil {
		_ = tx.Rollback() // the original error is the one worth reporting
	}
}
