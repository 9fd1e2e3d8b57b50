package vcard

import (
	"context"
	"errors"
	"strings"
	"testing"

	"parley/internal/module"
	"parley/internal/seal"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

const (
	alice = "alice@example.org"
	bob   = "bob@example.org"
	// full has nested elements, a namespaced attribute, a foreign child
	// and characters that need escaping: it must come back unchanged.
	full = `<vCard xmlns="vcard-temp" version="3.0"><FN>Alice &amp; &lt;Co&gt;</FN><N><FAMILY>Liddell</FAMILY><GIVEN>Alice</GIVEN></N>` +
		`<X xmlns="urn:example:x" xmlns:p1="urn:example:a" p1:k="v"/><DESC>a &quot;quote&quot;</DESC></vCard>`
	short = `<vCard xmlns="vcard-temp"><FN>Bob</FN></vCard>`
	empty = `<vCard xmlns="vcard-temp"/>`
)

func parse(t *testing.T, s string) *xmlstream.Element {
	t.Helper()
	el, err := xmlstream.ParseElement([]byte(s), "")
	if err != nil {
		t.Fatalf("parsing %s: %v", s, err)
	}
	return el
}

func TestVCard(t *testing.T) {
	big := `<vCard xmlns="vcard-temp"><DESC>` + strings.Repeat("x", MaxBytes) + `</DESC></vCard>`
	tests := []struct {
		name      string
		stored    map[string]string // owner -> raw stored value
		from, to  string
		typ       string
		payload   string
		want      string // result payload, "" for an empty result
		wantErr   string // stanza error condition
		wantStore map[string]string
	}{
		{name: "own vCard, none stored", from: alice + "/a", typ: "get", payload: empty, want: empty},
		{name: "own vCard", stored: map[string]string{alice: full}, from: alice + "/a", typ: "get", payload: empty, want: full},
		{name: "own vCard addressed explicitly", stored: map[string]string{alice: full}, from: alice + "/a", to: alice, typ: "get", payload: empty, want: full},
		{name: "someone else's vCard", stored: map[string]string{bob: short}, from: alice + "/a", to: bob, typ: "get", payload: empty, want: short},
		{name: "someone else's vCard, none stored", from: alice + "/a", to: bob, typ: "get", payload: empty, wantErr: "service-unavailable"},
		{name: "unknown account", from: alice + "/a", to: "carol@example.org", typ: "get", payload: empty, wantErr: "service-unavailable"},
		{name: "damaged vCard", stored: map[string]string{alice: "<vCard"}, from: alice + "/a", typ: "get", payload: empty, wantErr: "internal-server-error"},
		{name: "stored element is not a vCard", stored: map[string]string{alice: `<x xmlns="y"/>`}, from: alice + "/a", typ: "get", payload: empty, wantErr: "internal-server-error"},
		{name: "store own", from: alice + "/a", typ: "set", payload: full, wantStore: map[string]string{alice: full}},
		{name: "replace own", stored: map[string]string{alice: short}, from: alice + "/a", typ: "set", payload: full, wantStore: map[string]string{alice: full}},
		{name: "clear own deletes it", stored: map[string]string{alice: full, bob: short}, from: alice + "/a", typ: "set",
			payload: "<vCard xmlns='vcard-temp'>\n </vCard>", wantStore: map[string]string{bob: short}},
		{name: "clear when none stored", from: alice + "/a", typ: "set", payload: empty, wantStore: map[string]string{}},
		{name: "someone else's vCard cannot be set", stored: map[string]string{bob: short}, from: alice + "/a", to: bob, typ: "set", payload: full,
			wantErr: "forbidden", wantStore: map[string]string{bob: short}},
		{name: "too large", stored: map[string]string{alice: short}, from: alice + "/a", typ: "set", payload: big,
			wantErr: "not-acceptable", wantStore: map[string]string{alice: short}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			h := modtest.NewHost("example.org")
			h.AddUser(alice)
			h.AddUser(bob)
			kv := h.Storage().FaultyKV()
			for owner, v := range tt.stored {
				if err := kv.Put(ctx, owner, kvNS, kvKey, []byte(v)); err != nil {
					t.Fatal(err)
				}
			}
			if err := New().Start(h); err != nil {
				t.Fatal(err)
			}
			res, err := h.IQ(ctx, tt.from, tt.to, tt.typ, parse(t, tt.payload))
			switch {
			case tt.wantErr != "":
				if se := stanza.AsError(err); err == nil || se.Condition != tt.wantErr {
					t.Fatalf("error = %v, want %s", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case tt.want == "" && res != nil:
				t.Errorf("result = %s, want empty", res)
			case tt.want != "" && (res == nil || res.String() != parse(t, tt.want).String()):
				t.Errorf("result\n got %v\nwant %s", res, tt.want)
			}
			if tt.wantStore == nil {
				return
			}
			for _, owner := range []string{alice, bob} {
				v, err := kv.Get(ctx, owner, kvNS, kvKey)
				if err == nil {
					v = opened(t, h, owner, v)
				}
				want, ok := tt.wantStore[owner]
				switch {
				case !ok && !errors.Is(err, storage.ErrNotFound):
					t.Errorf("%s: stored %q, %v; want nothing", owner, v, err)
				case ok && err != nil:
					t.Errorf("%s: %v", owner, err)
				case ok && string(v) != parse(t, want).String():
					t.Errorf("%s: stored\n got %s\nwant %s", owner, v, want)
				}
			}
		})
	}
}

// opened is a stored vCard as the module reads it: sealed ones opened
// with the host's key, clear ones (earlier versions) as they are.
func opened(t *testing.T, h *modtest.Host, owner string, v []byte) []byte {
	t.Helper()
	if len(v) > 0 && v[0] == '<' {
		return v
	}
	s, err := seal.New(h.Key("vcard"))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := s.Open(v, ad(owner))
	if err != nil {
		t.Fatalf("%s: the stored vCard does not open: %v", owner, err)
	}
	return plain
}

// TestVCardSealed: a vCard set over the wire is stored sealed, nothing
// of it readable in the database; a sealed vCard moved to another
// account does not open; a vCard stored in clear by an earlier version
// is served, then sealed by the job at start.
func TestVCardSealed(t *testing.T) {
	ctx := context.Background()
	h := modtest.NewHost("example.org")
	h.AddUser(alice)
	h.AddUser(bob)
	kv := h.Storage().FaultyKV()
	const legacy = `<vCard xmlns="vcard-temp"><FN>Bob Legacy Marker</FN></vCard>`
	if err := kv.Put(ctx, bob, kvNS, kvKey, []byte(legacy)); err != nil {
		t.Fatal(err)
	}
	m := New()
	m.sealed.Store(true) // the job is run by hand below
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	if _, err := h.IQ(ctx, alice+"/a", "", "set", parse(t, full)); err != nil {
		t.Fatal(err)
	}
	raw, err := kv.Get(ctx, alice, kvNS, kvKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{"Alice", "Liddell", "vCard", "vcard-temp"} {
		if strings.Contains(string(raw), clear) {
			t.Errorf("the stored vCard shows %q in clear", clear)
		}
	}
	if seal.Format(raw) != seal.Version {
		t.Errorf("stored format %d, want sealed (%d)", seal.Format(raw), seal.Version)
	}
	if res, err := h.IQ(ctx, bob+"/b", alice, "get", parse(t, empty)); err != nil || res.String() != parse(t, full).String() {
		t.Fatalf("bob reads alice's vCard: %v, %v", res, err)
	}

	// The legacy clear vCard is served, then sealed by the job.
	if res, err := h.IQ(ctx, alice+"/a", bob, "get", parse(t, empty)); err != nil || res.String() != parse(t, legacy).String() {
		t.Fatalf("a clear vCard from an earlier version: %v, %v", res, err)
	}
	m.sealed.Store(false)
	m.sealClear(ctx)
	if !m.sealed.Load() {
		t.Fatal("the job did not finish")
	}
	raw, err = kv.Get(ctx, bob, kvNS, kvKey)
	if err != nil || strings.Contains(string(raw), "Legacy Marker") || seal.Format(raw) != seal.Version {
		t.Fatalf("after the job bob's vCard is stored as %q, %v", raw, err)
	}
	if res, err := h.IQ(ctx, alice+"/a", bob, "get", parse(t, empty)); err != nil || res.String() != parse(t, legacy).String() {
		t.Fatalf("bob's vCard once sealed: %v, %v", res, err)
	}

	// Alice's sealed vCard copied into bob's row does not open there.
	aliceRaw, _ := kv.Get(ctx, alice, kvNS, kvKey)
	if err := kv.Put(ctx, bob, kvNS, kvKey, aliceRaw); err != nil {
		t.Fatal(err)
	}
	if _, err := h.IQ(ctx, alice+"/a", bob, "get", parse(t, empty)); stanza.AsError(err).Condition != "internal-server-error" {
		t.Fatalf("a vCard moved to another account: %v, want internal-server-error", err)
	}
}

func TestVCardStorageFailure(t *testing.T) {
	ctx := context.Background()
	broken := errors.New("disk on fire")
	for _, typ := range []string{"get", "set"} {
		t.Run(typ, func(t *testing.T) {
			h := modtest.NewHost("example.org")
			h.AddUser(alice)
			if err := New().Start(h); err != nil {
				t.Fatal(err)
			}
			h.Storage().FaultyKV().SetFail(broken)
			_, err := h.IQ(ctx, alice+"/a", "", typ, parse(t, short))
			if !errors.Is(err, broken) {
				t.Fatalf("error = %v, want the storage error wrapped", err)
			}
			if se := stanza.AsError(err); se.Condition != "internal-server-error" {
				t.Errorf("sent as %s, want internal-server-error", se.Condition)
			}
		})
	}
}

func TestVCardFeatures(t *testing.T) {
	h := modtest.NewHost("example.org")
	if err := New().Start(h); err != nil {
		t.Fatal(err)
	}
	if got := h.Features(module.Account); len(got) != 1 || got[0] != NS {
		t.Errorf("account features = %v, want [%s]", got, NS)
	}
	if got := h.Features(module.Server); len(got) != 0 {
		t.Errorf("server features = %v, want none", got)
	}
}
