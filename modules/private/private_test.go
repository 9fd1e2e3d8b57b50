package private

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

const (
	alice = "alice@example.org"
	bob   = "bob@example.org"
	q     = `<query xmlns="jabber:iq:private">`
	prefs = `<exodus xmlns="exodus:prefs"><defaultnick>Hamlet &amp; co</defaultnick></exodus>`
	bmark = `<storage xmlns="storage:bookmarks"><conference jid="room@muc.example.org" autojoin="true"/></storage>`
)

func parse(t *testing.T, s string) *xmlstream.Element {
	t.Helper()
	el, err := xmlstream.ParseElement([]byte(s), "")
	if err != nil {
		t.Fatalf("parsing %s: %v", s, err)
	}
	return el
}

type request struct {
	from, to, typ, payload string
}

func TestPrivate(t *testing.T) {
	big := q + `<big xmlns="urn:big">` + strings.Repeat("x", MaxBytes) + `</big></query>`
	tests := []struct {
		name    string
		setup   []request // must all succeed
		req     request
		want    string // result payload; "" for an empty result
		wantErr string
		after   []request // gets whose results are listed in afterWant
		want2   []string
	}{
		{name: "get never stored echoes the empty element",
			req:  request{alice + "/a", "", "get", q + `<exodus xmlns="exodus:prefs"/></query>`},
			want: q + `<exodus xmlns="exodus:prefs"/></query>`},
		{name: "set then get",
			setup: []request{{alice + "/a", "", "set", q + prefs + `</query>`}},
			req:   request{alice + "/b", "", "get", q + `<exodus xmlns="exodus:prefs"/></query>`},
			want:  q + prefs + `</query>`},
		{name: "get by namespace, whatever the element name",
			setup: []request{{alice + "/a", "", "set", q + prefs + `</query>`}},
			req:   request{alice + "/a", alice, "get", q + `<other xmlns="exodus:prefs"/></query>`},
			want:  q + prefs + `</query>`},
		{name: "set replaces",
			setup: []request{{alice + "/a", "", "set", q + prefs + `</query>`}},
			req:   request{alice + "/a", "", "set", q + `<exodus xmlns="exodus:prefs"><v>2</v></exodus></query>`},
			after: []request{{alice + "/a", "", "get", q + `<exodus xmlns="exodus:prefs"/></query>`}},
			want2: []string{q + `<exodus xmlns="exodus:prefs"><v>2</v></exodus></query>`}},
		{name: "several namespaces in one set are stored apart",
			req:   request{alice + "/a", "", "set", q + prefs + bmark + `</query>`},
			after: []request{{alice + "/a", "", "get", q + `<exodus xmlns="exodus:prefs"/></query>`}, {alice + "/a", "", "get", q + `<storage xmlns="storage:bookmarks"/></query>`}},
			want2: []string{q + prefs + `</query>`, q + bmark + `</query>`}},
		{name: "several elements of one namespace are kept together",
			req:   request{alice + "/a", "", "set", q + `<a xmlns="urn:x">1</a><b xmlns="urn:x">2</b></query>`},
			after: []request{{alice + "/a", "", "get", q + `<a xmlns="urn:x"/></query>`}},
			want2: []string{q + `<a xmlns="urn:x">1</a><b xmlns="urn:x">2</b></query>`}},
		{name: "data is per account",
			setup: []request{{bob + "/b", "", "set", q + prefs + `</query>`}},
			req:   request{alice + "/a", "", "get", q + `<exodus xmlns="exodus:prefs"/></query>`},
			want:  q + `<exodus xmlns="exodus:prefs"/></query>`},
		{name: "get of another account is forbidden",
			setup:   []request{{bob + "/b", "", "set", q + prefs + `</query>`}},
			req:     request{alice + "/a", bob, "get", q + `<exodus xmlns="exodus:prefs"/></query>`},
			wantErr: "forbidden"},
		{name: "set of another account is forbidden",
			req:     request{alice + "/a", bob, "set", q + prefs + `</query>`},
			wantErr: "forbidden",
			after:   []request{{bob + "/b", "", "get", q + `<exodus xmlns="exodus:prefs"/></query>`}},
			want2:   []string{q + `<exodus xmlns="exodus:prefs"/></query>`}},
		{name: "empty get", req: request{alice + "/a", "", "get", q + `</query>`}, wantErr: "not-acceptable"},
		{name: "empty set", req: request{alice + "/a", "", "set", q + `</query>`}, wantErr: "not-acceptable"},
		{name: "get of two namespaces", req: request{alice + "/a", "", "get", q + `<a xmlns="urn:a"/><b xmlns="urn:b"/></query>`}, wantErr: "bad-request"},
		{name: "unqualified child is in the reserved namespace", req: request{alice + "/a", "", "set", q + `<prefs/></query>`}, wantErr: "not-acceptable"},
		{name: "no namespace at all", req: request{alice + "/a", "", "set", q + `<prefs xmlns=""/></query>`}, wantErr: "not-acceptable"},
		{name: "jabber:client is reserved", req: request{alice + "/a", "", "get", q + `<message xmlns="jabber:client"/></query>`}, wantErr: "not-acceptable"},
		{name: "jabber:server is reserved", req: request{alice + "/a", "", "set", q + `<message xmlns="jabber:server"/></query>`}, wantErr: "not-acceptable"},
		{name: "a reserved namespace refuses the whole set",
			req:     request{alice + "/a", "", "set", q + prefs + `<x xmlns="jabber:client"/></query>`},
			wantErr: "not-acceptable",
			after:   []request{{alice + "/a", "", "get", q + `<exodus xmlns="exodus:prefs"/></query>`}},
			want2:   []string{q + `<exodus xmlns="exodus:prefs"/></query>`}},
		{name: "namespace too long", req: request{alice + "/a", "", "set", q + `<x xmlns="urn:` + strings.Repeat("n", 1100) + `"/></query>`}, wantErr: "not-acceptable"},
		{name: "too large", req: request{alice + "/a", "", "set", big}, wantErr: "not-acceptable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHost(t)
			for _, r := range tt.setup {
				if _, err := h.IQ(ctx, r.from, r.to, r.typ, parse(t, r.payload)); err != nil {
					t.Fatalf("setup %v: %v", r, err)
				}
			}
			res, err := h.IQ(ctx, tt.req.from, tt.req.to, tt.req.typ, parse(t, tt.req.payload))
			checkResult(t, res, err, tt.want, tt.wantErr)
			for i, r := range tt.after {
				res, err := h.IQ(ctx, r.from, r.to, r.typ, parse(t, r.payload))
				checkResult(t, res, err, tt.want2[i], "")
			}
		})
	}
}

func newHost(t *testing.T) *modtest.Host {
	t.Helper()
	h := modtest.NewHost("example.org")
	h.AddUser(alice)
	h.AddUser(bob)
	if err := New().Start(h); err != nil {
		t.Fatal(err)
	}
	return h
}

func checkResult(t *testing.T, res *xmlstream.Element, err error, want, wantErr string) {
	t.Helper()
	switch {
	case wantErr != "":
		if se := stanza.AsError(err); err == nil || se.Condition != wantErr {
			t.Errorf("error = %v, want %s", err, wantErr)
		}
	case err != nil:
		t.Errorf("unexpected error %v", err)
	case want == "" && res != nil:
		t.Errorf("result = %s, want empty", res)
	case want != "" && (res == nil || res.String() != parse(t, want).String()):
		t.Errorf("result\n got %v\nwant %s", res, want)
	}
}

func TestPrivateNamespaceLimit(t *testing.T) {
	ctx := context.Background()
	h := newHost(t)
	for i := range MaxNamespaces {
		p := fmt.Sprintf(`%s<x xmlns="urn:n%d"/></query>`, q, i)
		if _, err := h.IQ(ctx, alice+"/a", "", "set", parse(t, p)); err != nil {
			t.Fatalf("namespace %d: %v", i, err)
		}
	}
	// Replacing a stored namespace still works at the limit; a new one
	// does not.
	_, err := h.IQ(ctx, alice+"/a", "", "set", parse(t, q+`<y xmlns="urn:n0">again</y></query>`))
	checkResult(t, nil, err, "", "")
	_, err = h.IQ(ctx, alice+"/a", "", "set", parse(t, q+`<x xmlns="urn:one-too-many"/></query>`))
	checkResult(t, nil, err, "", "not-acceptable")
}

func TestPrivateStorageFailure(t *testing.T) {
	broken := errors.New("disk on fire")
	for _, typ := range []string{"get", "set"} {
		t.Run(typ, func(t *testing.T) {
			h := newHost(t)
			h.Storage().FaultyKV().SetFail(broken)
			_, err := h.IQ(context.Background(), alice+"/a", "", typ, parse(t, q+prefs+`</query>`))
			if !errors.Is(err, broken) || stanza.AsError(err).Condition != "internal-server-error" {
				t.Fatalf("error = %v, want the storage error as internal-server-error", err)
			}
		})
	}
}

func TestPrivateDamagedData(t *testing.T) {
	ctx := context.Background()
	h := newHost(t)
	if err := h.Storage().FaultyKV().Put(ctx, alice, kvNS, "exodus:prefs", []byte("<query")); err != nil {
		t.Fatal(err)
	}
	_, err := h.IQ(ctx, alice+"/a", "", "get", parse(t, q+`<exodus xmlns="exodus:prefs"/></query>`))
	if err == nil || stanza.AsError(err).Condition != "internal-server-error" {
		t.Fatalf("error = %v, want internal-server-error", err)
	}
}

func TestPrivateFeatures(t *testing.T) {
	h := newHost(t)
	if got := h.Features(module.Account); len(got) != 1 || got[0] != NS {
		t.Errorf("account features = %v, want [%s]", got, NS)
	}
	if got := h.Features(module.Server); len(got) != 0 {
		t.Errorf("server features = %v, want none", got)
	}
}
