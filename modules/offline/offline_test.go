package offline

import (
	"crypto/aes"
	"crypto/cipher"
	"testing"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

func testModule(t *testing.T, key byte) *Module {
	t.Helper()
	k := make([]byte, 32)
	for i := range k {
		k[i] = key
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	m := New(10, 0)
	if m.aead, err = cipher.NewGCM(block); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSealOpen(t *testing.T) {
	m := testModule(t, 1)
	alice := jid.MustParse("alice@example.org")
	plain := []byte("<message><body>Please send the money</body></message>")
	sealed, err := m.seal(alice, plain)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m.open(alice, sealed); err != nil || string(got) != string(plain) {
		t.Fatalf("open: %q, %v", got, err)
	}
	// Every single-byte change anywhere is detected.
	for i := range sealed {
		bad := append([]byte(nil), sealed...)
		bad[i] ^= 0x20
		if _, err := m.open(alice, bad); err == nil {
			t.Fatalf("a change at byte %d went unnoticed", i)
		}
	}
	// A row moved to another user does not open.
	if _, err := m.open(jid.MustParse("mallory@example.org"), sealed); err == nil {
		t.Fatal("a message moved to another account opened")
	}
	// Nor under another server's key.
	if _, err := testModule(t, 2).open(alice, sealed); err == nil {
		t.Fatal("a message opened under another key")
	}
	if _, err := m.open(alice, sealed[:5]); err == nil {
		t.Fatal("a truncated record opened")
	}
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
