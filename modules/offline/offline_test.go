package offline

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/internal/durable"
	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/storage/sqlite"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

// sqlHost is a test host whose store is a real SQLite database.
type sqlHost struct {
	*modtest.Host
	store storage.Store
	key   string // the server secret, as far as Key is concerned
}

func (h *sqlHost) Store() storage.Store { return h.store }

func (h *sqlHost) Key(purpose string) []byte {
	k := sha256.Sum256([]byte(h.key + "/" + purpose))
	return k[:]
}

// fixture is the module on a SQLite file, and a raw connection to that
// file to play the attacker with.
type fixture struct {
	h   *sqlHost
	m   *Module
	raw *sql.DB
}

func newFixture(t *testing.T, path, key string) *fixture {
	return newFixtureWith(t, path, key, nil)
}

// newFixtureWith lets wrap put something between the module and SQLite.
func newFixtureWith(t *testing.T, path, key string, wrap func(storage.Store) storage.Store) *fixture {
	t.Helper()
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var st storage.Store = db
	if wrap != nil {
		st = wrap(db)
	}
	h := &sqlHost{Host: modtest.NewHost("example.org"), store: st, key: key}
	for _, u := range []string{"alice@example.org", "bob@example.org"} {
		if err := st.Users().Create(t.Context(), storage.Account{JID: u}); err != nil && !errors.Is(err, storage.ErrExists) {
			t.Fatal(err)
		}
	}
	m := New(100, 0)
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop(context.Background()) })
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return &fixture{h: h, m: m, raw: raw}
}

func chat(body string) *xmlstream.Element {
	return xmlstream.New(stanza.NSClient, "message", "type", "chat", "from", "carol@example.net/x", "to", "alice@example.org").
		AddChild(xmlstream.New(stanza.NSClient, "body").AddText(body))
}

func (f *fixture) keep(t *testing.T, to string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if ok, err := f.m.keep(t.Context(), jid.MustParse(to), chat(b)); !ok || err != nil {
			t.Fatalf("keep %q: %v, %v", b, ok, err)
		}
	}
}

func (f *fixture) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := f.raw.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// login flushes a user's messages to a new session and returns the
// bodies delivered and the server's notices.
func (f *fixture) login(t *testing.T, full string) (bodies, notices []string) {
	t.Helper()
	s := f.h.Connect(t.Context(), full)
	f.m.flush(t.Context(), s)
	for _, el := range s.Take() {
		text := el.Child(stanza.NSClient, "body").Text()
		if el.Attr("from") == "example.org" {
			notices = append(notices, text)
		} else {
			bodies = append(bodies, text)
		}
	}
	return bodies, notices
}

// TestCopiedRowsDetected: a sealed row copied over another, replayed as
// a new row or moved to another user is withheld, and its owner is told.
func TestCopiedRowsDetected(t *testing.T) {
	f := newFixture(t, filepath.Join(t.TempDir(), "db.sqlite"), "secret")
	f.keep(t, "alice@example.org", "one", "two", "three", "four")
	f.keep(t, "bob@example.org", "for bob")
	var ids []int64
	rows, err := f.raw.Query(`SELECT id FROM offline_messages WHERE owner = 'alice@example.org' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	// "one" copied over "two": "one" would be delivered twice.
	f.exec(t, `UPDATE offline_messages SET data = (SELECT data FROM offline_messages WHERE id = $1) WHERE id = $2`, ids[0], ids[1])
	// "three" replayed as a new row.
	f.exec(t, `INSERT INTO offline_messages (owner, stored, data) SELECT owner, stored + 1, data FROM offline_messages WHERE id = $1`, ids[2])
	// bob's message moved to alice.
	f.exec(t, `UPDATE offline_messages SET owner = 'alice@example.org' WHERE owner = 'bob@example.org'`)

	bodies, notices := f.login(t, "alice@example.org/phone")
	if strings.Join(bodies, ",") != "one,three,four" {
		t.Errorf("delivered %q, want one, three, four", bodies)
	}
	if len(notices) != 1 || !strings.Contains(notices[0], "3 of your stored offline messages could not be verified") {
		t.Errorf("notices %q", notices)
	}
	if logs := f.h.Logs(); !strings.Contains(logs, "altered or damaged") || strings.Contains(logs, "one") {
		t.Errorf("logs: %s", logs)
	}
	// The withheld rows stay; the owner is not told again.
	if _, notices := f.login(t, "alice@example.org/laptop"); len(notices) != 0 {
		t.Errorf("told again: %q", notices)
	}
}

// TestWrongKeyIsNotTampering: rows sealed under another server secret
// are reported as a key problem, once, not as tampering.
func TestWrongKeyIsNotTampering(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.sqlite")
	old := newFixture(t, path, "old secret")
	old.keep(t, "alice@example.org", "one", "two")
	f := newFixture(t, path, "new secret")
	f.keep(t, "alice@example.org", "three")
	bodies, notices := f.login(t, "alice@example.org/phone")
	if strings.Join(bodies, ",") != "three" {
		t.Errorf("delivered %q", bodies)
	}
	if len(notices) != 1 || !strings.Contains(notices[0], "2 of your stored offline messages could not be read because the server's key changed") {
		t.Errorf("notices %q", notices)
	}
	logs := f.h.Logs()
	if strings.Count(logs, "the server key") != 1 || strings.Contains(logs, "altered") {
		t.Errorf("logs: %s", logs)
	}
}

// flakyOffline fails every push while down is set.
type flakyOffline struct {
	storage.Offline
	mu   sync.Mutex
	down bool
}

func (o *flakyOffline) set(down bool) {
	o.mu.Lock()
	o.down = down
	o.mu.Unlock()
}

func (o *flakyOffline) PushAt(ctx context.Context, owner string, stored time.Time, data []byte, max int) (storage.OfflineMessage, error) {
	o.mu.Lock()
	down := o.down
	o.mu.Unlock()
	if down {
		return storage.OfflineMessage{}, errors.New("connection refused")
	}
	return o.Offline.PushAt(ctx, owner, stored, data, max)
}

type flakyStore struct {
	storage.Store
	off *flakyOffline
}

func (s flakyStore) Offline() storage.Offline { return s.off }

// TestHeldWhileStorageFails: a message for an offline user that the
// database refuses for a while is kept in memory, the sender's
// acknowledgement waits until it is stored, and a full queue answers
// with a 'wait' error, never a permanent one.
func TestHeldWhileStorageFails(t *testing.T) {
	var off *flakyOffline
	f := newFixtureWith(t, filepath.Join(t.TempDir(), "db.sqlite"), "secret", func(s storage.Store) storage.Store {
		off = &flakyOffline{Offline: s.Offline(), down: true}
		return flakyStore{Store: s, off: off}
	})

	acked := make(chan struct{})
	g := durable.NewGroup(func() { close(acked) })
	ok, err := f.m.keep(durable.With(t.Context(), g), jid.MustParse("alice@example.org"), chat("during the outage"))
	g.Release()
	if !ok || err != nil {
		t.Fatalf("keep during an outage: %v, %v", ok, err)
	}
	// A later message queues behind it, in order.
	f.keep(t, "alice@example.org", "after it")
	select {
	case <-acked:
		t.Fatal("acknowledged before it was stored")
	case <-time.After(300 * time.Millisecond):
	}
	if !strings.Contains(f.h.Logs(), "storage failure") || !strings.Contains(f.h.Logs(), "connection refused") {
		t.Errorf("the failure was not logged: %s", f.h.Logs())
	}
	off.set(false)
	select {
	case <-acked:
	case <-time.After(20 * time.Second):
		t.Fatal("never acknowledged after the database came back")
	}
	deadline := time.Now().Add(20 * time.Second)
	for f.m.held.busy() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	bodies, _ := f.login(t, "alice@example.org/phone")
	if strings.Join(bodies, ",") != "during the outage,after it" {
		t.Errorf("delivered %q", bodies)
	}

	// A full queue: the sender is told to wait.
	off.set(true)
	f.m.held.mu.Lock()
	for range holdMessages {
		f.m.held.items = append(f.m.held.items, pendingPush{owner: jid.MustParse("bob@example.org"), orig: chat("x"), release: func() {}})
	}
	f.m.held.mu.Unlock()
	_, err = f.m.keep(t.Context(), jid.MustParse("alice@example.org"), chat("too many"))
	var se *stanza.Error
	if !errors.As(err, &se) || se.Type != stanza.Wait || se.Condition != "resource-constraint" {
		t.Errorf("keep with a full queue: %v, want wait/resource-constraint", err)
	}
	f.m.held.drop()
}

func TestWorthKeeping(t *testing.T) {
	msg := func(children ...*xmlstream.Element) *xmlstream.Element {
		m := xmlstream.New("jabber:client", "message", "type", "chat")
		for _, c := range children {
			m.AddChild(c)
		}
		return m
	}
	body := xmlstream.New("jabber:client", "body").AddText("hi")
	composing := xmlstream.New(nsChatStates, "composing")
	for _, c := range []struct {
		name string
		el   *xmlstream.Element
		want bool
	}{
		{"body", msg(body), true},
		{"chat state only", msg(composing), false},
		{"chat state and thread", msg(composing, xmlstream.New("jabber:client", "thread").AddText("t")), false},
		{"body and chat state", msg(body.Copy(), composing.Copy()), true},
		{"no-store hint", msg(body.Copy(), xmlstream.New(stanza.NSHints, "no-store")), false},
		{"encrypted payload", msg(xmlstream.New("eu.siacs.conversations.axolotl", "encrypted")), true},
	} {
		if got := worthKeeping(c.el); got != c.want {
			t.Errorf("%s: %v", c.name, got)
		}
	}
}
