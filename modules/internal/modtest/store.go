package modtest

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"parley/internal/storage"
	"parley/internal/storage/sqlite"
)

// Store is the real store (SQLite in memory, the same SQL as the drivers)
// with the two things module tests need beyond it: a way to make the
// repositories that modules read on every request fail (to test that an
// error reaches the client and nothing is lost), and a look at what is
// stored below the repository interfaces.
type Store struct {
	*sqlite.Store
	kv      *KV
	pubsub  *PubSub
	archive *Archive
}

// newStore opens an empty store. The database is closed when the Store is
// garbage collected (when no host uses it any more), so that a test need
// not close it and NewHost need not take a *testing.T.
func newStore() (*Store, error) {
	st, err := sqlite.OpenMemory(context.Background())
	if err != nil {
		return nil, fmt.Errorf("modtest: %w", err)
	}
	s := &Store{
		Store:   st,
		kv:      &KV{KV: st.KV()},
		pubsub:  &PubSub{PubSub: st.PubSub()},
		archive: &Archive{Archive: st.Archive(), db: st},
	}
	runtime.AddCleanup(s, func(st *sqlite.Store) { _ = st.Close() }, st)
	return s, nil
}

func (s *Store) KV() storage.KV           { return s.kv }
func (s *Store) PubSub() storage.PubSub   { return s.pubsub }
func (s *Store) Archive() storage.Archive { return s.archive }

// FaultyKV, FaultyPubSub and FaultyArchive are the repositories that
// tests can make fail.
func (s *Store) FaultyKV() *KV           { return s.kv }
func (s *Store) FaultyPubSub() *PubSub   { return s.pubsub }
func (s *Store) FaultyArchive() *Archive { return s.archive }

// fault is the error every call returns while it is set, and the count of
// calls (failed ones included).
type fault struct {
	err   atomic.Pointer[error]
	calls atomic.Int64
}

// SetFail makes every later call fail with err; nil ends the failure.
func (f *fault) SetFail(err error) {
	if err == nil {
		f.err.Store(nil)
		return
	}
	f.err.Store(&err)
}

// Calls reports how many calls reached the repository so far.
func (f *fault) Calls() int { return int(f.calls.Load()) }

func (f *fault) check() error {
	f.calls.Add(1)
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

// KV is the real key-value repository, which SetFail can make fail.
type KV struct {
	storage.KV
	fault
}

func (k *KV) Get(ctx context.Context, owner, ns, key string) ([]byte, error) {
	if err := k.check(); err != nil {
		return nil, err
	}
	return k.KV.Get(ctx, owner, ns, key)
}

func (k *KV) Put(ctx context.Context, owner, ns, key string, value []byte) error {
	if err := k.check(); err != nil {
		return err
	}
	return k.KV.Put(ctx, owner, ns, key, value)
}

func (k *KV) Delete(ctx context.Context, owner, ns, key string) error {
	if err := k.check(); err != nil {
		return err
	}
	return k.KV.Delete(ctx, owner, ns, key)
}

func (k *KV) List(ctx context.Context, owner, ns string) ([]storage.KVEntry, error) {
	if err := k.check(); err != nil {
		return nil, err
	}
	return k.KV.List(ctx, owner, ns)
}

func (k *KV) DeleteAll(ctx context.Context, owner, ns string) error {
	if err := k.check(); err != nil {
		return err
	}
	return k.KV.DeleteAll(ctx, owner, ns)
}

// PubSub is the real pubsub repository, which SetFail can make fail.
type PubSub struct {
	storage.PubSub
	fault
}

func (p *PubSub) CreateNode(ctx context.Context, owner string, node storage.PubSubNode) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.PubSub.CreateNode(ctx, owner, node)
}

func (p *PubSub) Node(ctx context.Context, owner, node string) (storage.PubSubNode, error) {
	if err := p.check(); err != nil {
		return storage.PubSubNode{}, err
	}
	return p.PubSub.Node(ctx, owner, node)
}

func (p *PubSub) Nodes(ctx context.Context, owner string) ([]storage.PubSubNode, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	return p.PubSub.Nodes(ctx, owner)
}

func (p *PubSub) Configure(ctx context.Context, owner, node string, config []byte, maxItems int) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.PubSub.Configure(ctx, owner, node, config, maxItems)
}

func (p *PubSub) DeleteNode(ctx context.Context, owner, node string) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.PubSub.DeleteNode(ctx, owner, node)
}

func (p *PubSub) Publish(ctx context.Context, owner, node string, item storage.PubSubItem, maxItems int) (storage.PubSubItem, error) {
	if err := p.check(); err != nil {
		return storage.PubSubItem{}, err
	}
	return p.PubSub.Publish(ctx, owner, node, item, maxItems)
}

func (p *PubSub) Retract(ctx context.Context, owner, node, id string) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.PubSub.Retract(ctx, owner, node, id)
}

func (p *PubSub) Items(ctx context.Context, owner, node string, q storage.PubSubQuery) ([]storage.PubSubItem, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	return p.PubSub.Items(ctx, owner, node, q)
}

func (p *PubSub) LastItems(ctx context.Context, owner string) ([]storage.PubSubLast, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	return p.PubSub.LastItems(ctx, owner)
}

// Archive is the real message archive, which SetFail can make fail, with
// a look at what it holds.
type Archive struct {
	storage.Archive
	fault
	db interface{ DB() *sql.DB }
}

func (a *Archive) Append(ctx context.Context, owner string, m storage.ArchiveMessage) (storage.ArchiveMessage, error) {
	if err := a.check(); err != nil {
		return storage.ArchiveMessage{}, err
	}
	return a.Archive.Append(ctx, owner, m)
}

func (a *Archive) Query(ctx context.Context, owner string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	if err := a.check(); err != nil {
		return storage.ArchivePage{}, err
	}
	return a.Archive.Query(ctx, owner, q)
}

func (a *Archive) DeleteBefore(ctx context.Context, t time.Time) (int, error) {
	if err := a.check(); err != nil {
		return 0, err
	}
	return a.Archive.DeleteBefore(ctx, t)
}

func (a *Archive) AppendBatch(ctx context.Context, entries []storage.ArchiveEntry) error {
	if err := a.check(); err != nil {
		return err
	}
	return a.Archive.AppendBatch(ctx, entries)
}

// Stored returns everything archived for owner, in archive order, whatever
// SetFail says; nil for an owner without messages or account.
func (a *Archive) Stored(owner string) []storage.ArchiveMessage {
	var out []storage.ArchiveMessage
	q := storage.ArchiveQuery{Max: storage.MaxArchivePage}
	for {
		page, err := a.Archive.Query(context.Background(), owner, q)
		if err != nil {
			return out
		}
		out = append(out, page.Messages...)
		if page.Complete || len(page.Messages) == 0 {
			return out
		}
		q.After = page.Messages[len(page.Messages)-1].ID
	}
}

// SetData replaces the stored data of one archived message below the
// repository, as damage or tampering on disk would, and reports whether
// the message exists.
func (a *Archive) SetData(owner, id string, data []byte) bool {
	if data == nil {
		data = []byte{}
	}
	res, err := a.db.DB().ExecContext(context.Background(),
		`UPDATE archive SET data = $3 WHERE owner = $1 AND stanza_id = $2`, owner, id, data)
	if err != nil {
		panic(fmt.Sprintf("modtest: set archived data: %v", err))
	}
	n, err := res.RowsAffected()
	return err == nil && n == 1
}
