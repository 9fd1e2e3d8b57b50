package mam

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"parley/internal/jid"
	"parley/internal/seal"
	"parley/internal/vault"
	"parley/internal/xmlstream"
)

const bobLap = "bob@example.com/laptop"

// rawRows reads owner's rows below the repository, as someone holding the
// database file would: every column that names the peer.
func (f *fixture) rawRows(t *testing.T, owner string) string {
	t.Helper()
	f.m.writer.sync(context.Background())
	rows, err := f.h.Storage().DB().QueryContext(t.Context(),
		`SELECT with_full, with_bare, COALESCE(with_full_index, x''), COALESCE(with_bare_index, x''), data FROM archive WHERE owner = $1`, owner)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var full, bare string
		var fi, bi, data []byte
		if err := rows.Scan(&full, &bare, &fi, &bi, &data); err != nil {
			t.Fatal(err)
		}
		b.WriteString(full + "|" + bare + "|" + string(fi) + "|" + string(bi) + "|" + string(data) + "\n")
	}
	return b.String()
}

func withQuery(with string) *xmlstream.Element {
	return mamQuery([]*xmlstream.Element{field("with", with)})
}

// Both copies of a message are sealed, each for its owner: the sender's
// under her data key (she is logged in), the recipient's to his mail-drop
// (he is away). No JID of the peer, and no resource, is in the rows.
func TestArchiveSealedPerOwner(t *testing.T) {
	f := newFixture(t)
	f.h.Unlock(alice)
	f.h.Unlock(bob)
	f.h.Lock(bob)
	f.send(t, alicePh, bobLap, chat("marker-sealed-body"))

	a, b := f.stored(alice), f.stored(bob)
	if len(a) != 1 || len(b) != 1 {
		t.Fatalf("archived %d for alice, %d for bob", len(a), len(b))
	}
	if !vault.IsVault(a[0].Data) || vault.IsMailDrop(a[0].Data) || a[0].Reseal || a[0].With != "" {
		t.Fatalf("alice's copy is not under her data key: %+v", a[0])
	}
	if !vault.IsMailDrop(b[0].Data) || !b[0].Reseal || b[0].With != "" {
		t.Fatalf("bob's copy is not in his mail-drop: %+v", b[0])
	}
	for _, owner := range []string{alice, bob} {
		raw := f.rawRows(t, owner)
		for _, marker := range []string{"marker-sealed-body", "bob@", "alice@", "laptop", "phone"} {
			if strings.Contains(raw, marker) {
				t.Errorf("%s's rows hold %q in clear", owner, marker)
			}
		}
	}

	// The with filter works through the blind indexes, bare and full.
	for _, c := range []struct {
		with string
		n    int
	}{{bob, 1}, {bobLap, 1}, {bobPh, 0}, {"carol@remote.example", 0}} {
		got, err := f.ask(t, withQuery(c.with))
		if err != nil {
			t.Fatal(err)
		}
		if len(got.bodies) != c.n || (c.n == 1 && got.bodies[0] != "marker-sealed-body") {
			t.Errorf("with=%s: %v, want %d", c.with, got.bodies, c.n)
		}
	}

	// Bob logs in: his copy is sealed again under his data key and
	// opens, peer included.
	f.h.Unlock(bob)
	b = f.stored(bob)
	if vault.IsMailDrop(b[0].Data) || b[0].Reseal {
		t.Fatalf("bob's copy not resealed at login: %+v", b[0])
	}
	peer, plain, err := f.m.openEntry(t.Context(), jid.MustParse(bob), b[0])
	if err != nil || peer != alicePh || !bytes.Contains(plain, []byte("marker-sealed-body")) {
		t.Fatalf("bob's copy opens as %q %q, %v", peer, plain, err)
	}
}

// A row from before sealing (server key, peer in clear) stays readable
// and is sealed, peer included, at the owner's next login; the with filter
// finds it before and after.
func TestArchiveServerKeyRowsResealed(t *testing.T) {
	f := newFixture(t)
	f.send(t, bobPh, alicePh, chat("from before"))
	a := f.stored(alice)
	if len(a) != 1 || vault.IsVault(a[0].Data) || seal.Format(a[0].Data) != seal.Version || a[0].With != bobPh || !a[0].Reseal {
		t.Fatalf("an account without keys got %+v, want the server-key format", a[0])
	}
	if got, err := f.ask(t, withQuery(bob)); err != nil || !slices.Equal(got.bodies, []string{"from before"}) {
		t.Fatalf("before login: %v, %v", got.bodies, err)
	}
	f.h.Unlock(alice)
	a = f.stored(alice)
	if !vault.IsVault(a[0].Data) || a[0].With != "" || a[0].Reseal {
		t.Fatalf("not resealed at login: %+v", a[0])
	}
	if strings.Contains(f.rawRows(t, alice), "bob@") {
		t.Fatal("the peer is still in clear")
	}
	for _, with := range []string{bob, bobPh} {
		if got, err := f.ask(t, withQuery(with)); err != nil || !slices.Equal(got.bodies, []string{"from before"}) {
			t.Fatalf("with=%s after login: %v, %v", with, got.bodies, err)
		}
	}
	// Locked again (logged in through a hash without a wrap): the
	// sealed rows are left out, not reported as damaged.
	f.h.Lock(alice)
	got, err := f.ask(t, withQuery(bob))
	if err != nil || len(got.bodies) != 0 || len(got.notices) != 0 || got.count != "0" {
		t.Fatalf("while locked: %+v, %v", got, err)
	}
}

// A password change while logged in keeps the archive readable.
func TestArchiveReadableAfterPasswordChange(t *testing.T) {
	f := newFixture(t)
	f.h.Unlock(alice)
	f.send(t, bobPh, alicePh, chat("kept across passwords"))
	if lost, err := f.h.Accounts().ChangePassword(t.Context(), jid.MustParse(alice), "a new password"); err != nil || lost {
		t.Fatalf("ChangePassword = %v, %v", lost, err)
	}
	f.h.Lock(alice)
	acct, err := f.h.Store().Users().Get(t.Context(), alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.h.Vault().UnlockPassword(t.Context(), alice, "a new password", acct.Credentials); err != nil {
		t.Fatal(err)
	}
	if got, err := f.ask(t, withQuery(bob)); err != nil || !slices.Equal(got.bodies, []string{"kept across passwords"}) {
		t.Fatalf("after a password change: %v, %v", got.bodies, err)
	}
}

func TestEnvelope(t *testing.T) {
	with, st, err := unpackEnvelope(envelope("romeo@example.net/orchard", []byte("<message/>")))
	if err != nil || with != "romeo@example.net/orchard" || string(st) != "<message/>" {
		t.Fatalf("round trip: %q %q %v", with, st, err)
	}
	if !bytes.Equal(envelope("a", []byte("b")), seal.AD("a", "b")) {
		t.Fatal("envelope differs from seal.AD's encoding")
	}
	for _, bad := range [][]byte{nil, {0, 0, 0}, {0, 0, 0, 9, 'x'}, append(envelope("a", []byte("b")), 0)} {
		if _, _, err := unpackEnvelope(bad); err == nil {
			t.Errorf("unpackEnvelope(%x) accepted", bad)
		}
	}
}
