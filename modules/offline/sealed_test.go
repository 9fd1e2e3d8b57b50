package offline

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"parley/internal/jid"
	"parley/internal/seal"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/vault"
	"parley/modules/internal/modtest"
)

const alice = "alice@example.org"

func startSealed(t *testing.T) (*modtest.Host, *Module) {
	t.Helper()
	h := modtest.NewHost("example.org")
	h.AddUser(alice)
	m := New(100, 0)
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop(context.Background()) })
	return h, m
}

func stored(t *testing.T, h *modtest.Host) []storage.OfflineMessage {
	t.Helper()
	msgs, err := h.Store().Offline().List(t.Context(), alice)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func deliver(t *testing.T, h *modtest.Host, m *Module) []string {
	t.Helper()
	s := h.Connect(t.Context(), alice+"/phone")
	m.flush(t.Context(), s)
	var bodies []string
	for _, el := range s.Take() {
		bodies = append(bodies, el.Child(stanza.NSClient, "body").Text())
	}
	return bodies
}

// While alice is away her messages are sealed to her mail-drop: neither
// the server's keys nor anything in the database open them. Once she
// logs in they are sealed again under her data key, and delivered.
func TestSealedToMailDropUntilLogin(t *testing.T) {
	h, m := startSealed(t)
	h.Unlock(alice) // she has logged in once: she has keys
	h.Lock(alice)
	if ok, err := m.keep(t.Context(), jid.MustParse(alice), chat("marker-while-away")); !ok || err != nil {
		t.Fatalf("keep: %v, %v", ok, err)
	}
	msgs := stored(t, h)
	if len(msgs) != 1 || !vault.IsMailDrop(msgs[0].Data) || bytes.Contains(msgs[0].Data, []byte("marker")) {
		t.Fatalf("stored %d rows, first not a mail-drop blob or in clear: %x", len(msgs), msgs[0].Data)
	}
	if _, err := m.sealer.Open(msgs[0].Data, additionalData(jid.MustParse(alice), msgs[0].Stored)); err == nil {
		t.Fatal("the server's key opens a mail-drop message")
	}
	// Logged in without her key (a mechanism it has no wrap for): the
	// message waits, and is not reported as damaged.
	if got := deliver(t, h, m); len(got) != 0 {
		t.Fatalf("delivered while locked: %v", got)
	}
	if strings.Contains(h.Logs(), "could not be verified") {
		t.Fatal("a locked message was reported as damaged")
	}

	h.Unlock(alice) // runs the resealing job and waits for it
	msgs = stored(t, h)
	if len(msgs) != 1 || !vault.IsVault(msgs[0].Data) || vault.IsMailDrop(msgs[0].Data) {
		t.Fatalf("after login the row is not under the data key: %x", msgs[0].Data)
	}
	if got := deliver(t, h, m); !slices.Equal(got, []string{"marker-while-away"}) {
		t.Fatalf("delivered %v", got)
	}
}

// Rows from before sealing (under the server's key) stay readable and are
// sealed under the data key at the owner's next login; an account without
// keys gets the server's key, as before.
func TestServerKeyRowsResealedAtLogin(t *testing.T) {
	h, m := startSealed(t)
	if ok, err := m.keep(t.Context(), jid.MustParse(alice), chat("before keys")); !ok || err != nil {
		t.Fatalf("keep: %v, %v", ok, err)
	}
	msgs := stored(t, h)
	if len(msgs) != 1 || seal.Format(msgs[0].Data) != seal.Version {
		t.Fatalf("an account without keys got %x, want the server-key format", msgs[0].Data)
	}
	h.Unlock(alice)
	msgs = stored(t, h)
	if vault.IsMailDrop(msgs[0].Data) || !vault.IsVault(msgs[0].Data) {
		t.Fatalf("not resealed under the data key: %x", msgs[0].Data)
	}
	// While her key is held, new messages go under it directly.
	if ok, err := m.keep(t.Context(), jid.MustParse(alice), chat("while online")); !ok || err != nil {
		t.Fatalf("keep: %v, %v", ok, err)
	}
	if msgs = stored(t, h); vault.IsMailDrop(msgs[1].Data) || !vault.IsVault(msgs[1].Data) {
		t.Fatalf("a message stored while held is %x", msgs[1].Data)
	}
	if got := deliver(t, h, m); !slices.Equal(got, []string{"before keys", "while online"}) {
		t.Fatalf("delivered %v", got)
	}
}
