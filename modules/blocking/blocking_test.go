package blocking

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
	"parley/modules/roster"
)

const (
	alice = "alice@example.org"
	bob   = "bob@example.org"
	carol = "carol@example.org"
)

func parse(t *testing.T, s string) *xmlstream.Element {
	t.Helper()
	el, err := xmlstream.ParseElement([]byte(s), "")
	if err != nil {
		t.Fatalf("parsing %s: %v", s, err)
	}
	return el
}

type env struct {
	h       *modtest.Host
	m       *Module
	kv      *modtest.KV
	asked   *modtest.Session // alice/asked retrieved the blocklist
	silent  *modtest.Session // alice/silent did not
	bobSess *modtest.Session
}

func newEnv(t *testing.T, stored ...string) *env {
	t.Helper()
	ctx := context.Background()
	h := modtest.NewHost("example.org")
	// Contacts come from the roster module, as in the server.
	if err := roster.New(func() int { return 0 }).Start(h); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{alice, bob, carol} {
		h.AddUser(u)
	}
	e := &env{h: h, m: New(), kv: h.Storage().FaultyKV()}
	for _, k := range stored {
		if err := e.kv.Put(ctx, alice, kvNS, k, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.m.Start(h); err != nil {
		t.Fatal(err)
	}
	e.asked = h.Connect(ctx, alice+"/asked")
	e.silent = h.Connect(ctx, alice+"/silent")
	e.bobSess = h.Connect(ctx, bob+"/phone")
	if _, err := h.IQ(ctx, alice+"/asked", "", "get", parse(t, `<blocklist xmlns="urn:xmpp:blocking"/>`)); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) stored(t *testing.T, owner string) []string {
	t.Helper()
	entries, err := e.kv.List(context.Background(), owner, kvNS)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, en := range entries {
		keys = append(keys, en.Key)
	}
	return keys
}

func TestCommands(t *testing.T) {
	full := make([]string, MaxItems)
	for i := range full {
		full[i] = fmt.Sprintf("u%04d@example.net", i)
	}
	tests := []struct {
		name       string
		stored     []string
		from, to   string
		typ        string
		payload    string
		want       string // result payload, "" for empty
		wantErr    string
		wantStored []string // nil: unchanged
		wantPush   string   // push payload to alice/asked, "" for none
	}{
		{name: "empty blocklist", from: alice + "/x", typ: "get", payload: `<blocklist xmlns="urn:xmpp:blocking"/>`,
			want: `<blocklist xmlns="urn:xmpp:blocking"/>`},
		{name: "blocklist", stored: []string{"romeo@montague.net", "evil.net"}, from: alice + "/x", typ: "get", payload: `<blocklist xmlns="urn:xmpp:blocking"/>`,
			want: `<blocklist xmlns="urn:xmpp:blocking"><item jid="evil.net"/><item jid="romeo@montague.net"/></blocklist>`},
		{name: "someone else's blocklist", stored: []string{"evil.net"}, from: bob + "/x", to: alice, typ: "get", payload: `<blocklist xmlns="urn:xmpp:blocking"/>`,
			wantErr: "forbidden"},
		{name: "block", from: alice + "/silent", typ: "set", payload: `<block xmlns="urn:xmpp:blocking"><item jid="romeo@montague.net"/></block>`,
			wantStored: []string{"romeo@montague.net"},
			wantPush:   `<block xmlns="urn:xmpp:blocking"><item jid="romeo@montague.net"/></block>`},
		{name: "block several, canonicalised and deduplicated", stored: []string{"evil.net"}, from: alice + "/asked", typ: "set",
			payload:    `<block xmlns="urn:xmpp:blocking"><item jid="Romeo@Montague.NET/Orchard"/><item jid="iago@shakespeare.lit"/><item jid="romeo@montague.net/Orchard"/><other/></block>`,
			wantStored: []string{"evil.net", "iago@shakespeare.lit", "romeo@montague.net/Orchard"},
			wantPush:   `<block xmlns="urn:xmpp:blocking"><item jid="romeo@montague.net/Orchard"/><item jid="iago@shakespeare.lit"/></block>`},
		{name: "block again", stored: []string{"evil.net"}, from: alice + "/x", typ: "set", payload: `<block xmlns="urn:xmpp:blocking"><item jid="evil.net"/></block>`,
			wantStored: []string{"evil.net"}, wantPush: `<block xmlns="urn:xmpp:blocking"><item jid="evil.net"/></block>`},
		{name: "block nothing", from: alice + "/x", typ: "set", payload: `<block xmlns="urn:xmpp:blocking"/>`, wantErr: "bad-request", wantStored: []string{}},
		{name: "item without jid", from: alice + "/x", typ: "set", payload: `<block xmlns="urn:xmpp:blocking"><item/></block>`, wantErr: "bad-request", wantStored: []string{}},
		{name: "malformed jid blocks nothing", from: alice + "/x", typ: "set",
			payload: `<block xmlns="urn:xmpp:blocking"><item jid="ok@example.net"/><item jid="a@@b"/></block>`, wantErr: "jid-malformed", wantStored: []string{}},
		{name: "jid too long", from: alice + "/x", typ: "set",
			payload: `<block xmlns="urn:xmpp:blocking"><item jid="a@example.net/` + strings.Repeat("r", 1020) + `"/></block>`, wantErr: "not-acceptable", wantStored: []string{}},
		{name: "block for someone else", from: bob + "/x", to: alice, typ: "set", payload: `<block xmlns="urn:xmpp:blocking"><item jid="evil.net"/></block>`,
			wantErr: "forbidden", wantStored: []string{}},
		{name: "blocklist full", stored: full, from: alice + "/x", typ: "set", payload: `<block xmlns="urn:xmpp:blocking"><item jid="one-more@example.net"/></block>`,
			wantErr: "not-allowed", wantStored: full},
		{name: "full blocklist takes what it has", stored: full, from: alice + "/x", typ: "set", payload: `<block xmlns="urn:xmpp:blocking"><item jid="u0001@example.net"/></block>`,
			wantStored: full, wantPush: `<block xmlns="urn:xmpp:blocking"><item jid="u0001@example.net"/></block>`},
		{name: "unblock", stored: []string{"evil.net", "romeo@montague.net"}, from: alice + "/x", typ: "set", payload: `<unblock xmlns="urn:xmpp:blocking"><item jid="ROMEO@montague.net"/></unblock>`,
			wantStored: []string{"evil.net"}, wantPush: `<unblock xmlns="urn:xmpp:blocking"><item jid="romeo@montague.net"/></unblock>`},
		{name: "unblock what is not blocked", stored: []string{"evil.net"}, from: alice + "/x", typ: "set", payload: `<unblock xmlns="urn:xmpp:blocking"><item jid="good.net"/></unblock>`,
			wantStored: []string{"evil.net"}, wantPush: `<unblock xmlns="urn:xmpp:blocking"><item jid="good.net"/></unblock>`},
		{name: "unblock all", stored: []string{"evil.net", "romeo@montague.net"}, from: alice + "/x", typ: "set", payload: `<unblock xmlns="urn:xmpp:blocking"/>`,
			wantStored: []string{}, wantPush: `<unblock xmlns="urn:xmpp:blocking"/>`},
		{name: "unblock malformed", stored: []string{"evil.net"}, from: alice + "/x", typ: "set", payload: `<unblock xmlns="urn:xmpp:blocking"><item jid="evil.net"/><item jid="@"/></unblock>`,
			wantErr: "jid-malformed", wantStored: []string{"evil.net"}},
		{name: "unblock for someone else", stored: []string{"evil.net"}, from: bob + "/x", to: alice, typ: "set", payload: `<unblock xmlns="urn:xmpp:blocking"/>`,
			wantErr: "forbidden", wantStored: []string{"evil.net"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.stored...)
			res, err := e.h.IQ(context.Background(), tt.from, tt.to, tt.typ, parse(t, tt.payload))
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
			if tt.wantStored != nil {
				got := e.stored(t, alice)
				want := slices.Sorted(slices.Values(tt.wantStored))
				if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
					t.Errorf("stored %v, want %v", got, want)
				}
			}
			pushes := e.asked.Take()
			if tt.wantPush == "" {
				if len(pushes) != 0 {
					t.Errorf("pushed %v, want nothing", pushes)
				}
			} else {
				if len(pushes) != 1 {
					t.Fatalf("pushed %v, want one push", pushes)
				}
				p := pushes[0]
				if p.Attr("type") != "set" || p.Attr("to") != alice+"/asked" || p.Attr("from") != alice || p.Attr("id") == "" {
					t.Errorf("push attributes wrong: %s", p)
				}
				if got := p.FirstElement(); got == nil || got.String() != parse(t, tt.wantPush).String() {
					t.Errorf("push payload\n got %v\nwant %s", got, tt.wantPush)
				}
			}
			if got := e.silent.Take(); len(got) != 0 {
				t.Errorf("a session that never asked for the blocklist got %v", got)
			}
		})
	}
}

func TestPushIDsDiffer(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, p := range []string{`<block xmlns="urn:xmpp:blocking"><item jid="a.net"/></block>`, `<unblock xmlns="urn:xmpp:blocking"/>`} {
		if _, err := e.h.IQ(ctx, alice+"/x", "", "set", parse(t, p)); err != nil {
			t.Fatal(err)
		}
	}
	got := e.asked.Take()
	if len(got) != 2 || got[0].Attr("id") == got[1].Attr("id") {
		t.Fatalf("pushes %v: want two with different ids", got)
	}
}

func msg(from, to, typ string) *xmlstream.Element {
	el := xmlstream.New(stanza.NSClient, "message", "from", from, "to", to)
	if typ != "" {
		el.SetAttr("type", typ)
	}
	return el
}

func TestFilter(t *testing.T) {
	stanzaOf := func(kind, typ string) *xmlstream.Element {
		el := xmlstream.New(stanza.NSClient, kind)
		if typ != "" {
			el.SetAttr("type", typ)
		}
		return el
	}
	tests := []struct {
		name     string
		list     []string // alice's blocklist
		from, to string
		kind     string
		typ      string
		stop     bool
		cond     string // error condition when stopped with an error
		blocked  bool   // the error carries <blocked/>
	}{
		{name: "outbound message", list: []string{bob}, from: alice + "/a", to: bob, kind: "message", typ: "chat", stop: true, cond: "not-acceptable", blocked: true},
		{name: "outbound message to a resource", list: []string{bob}, from: alice + "/a", to: bob + "/phone", kind: "message", stop: true, cond: "not-acceptable", blocked: true},
		{name: "outbound iq get", list: []string{bob}, from: alice + "/a", to: bob + "/phone", kind: "iq", typ: "get", stop: true, cond: "not-acceptable", blocked: true},
		{name: "outbound iq set", list: []string{bob}, from: alice + "/a", to: bob, kind: "iq", typ: "set", stop: true, cond: "not-acceptable", blocked: true},
		{name: "outbound iq result", list: []string{bob}, from: alice + "/a", to: bob + "/phone", kind: "iq", typ: "result", stop: true},
		{name: "outbound presence", list: []string{bob}, from: alice + "/a", to: bob, kind: "presence", stop: true},
		{name: "outbound subscription", list: []string{bob}, from: alice + "/a", to: bob, kind: "presence", typ: "subscribe", stop: true},
		{name: "inbound message", list: []string{bob}, from: bob + "/phone", to: alice, kind: "message", typ: "chat", stop: true, cond: "service-unavailable"},
		{name: "inbound message to a resource", list: []string{bob}, from: bob + "/phone", to: alice + "/a", kind: "message", stop: true, cond: "service-unavailable"},
		{name: "inbound iq get", list: []string{bob}, from: bob + "/phone", to: alice, kind: "iq", typ: "get", stop: true, cond: "service-unavailable"},
		{name: "inbound iq error", list: []string{bob}, from: bob + "/phone", to: alice + "/a", kind: "iq", typ: "error", stop: true},
		{name: "inbound presence", list: []string{bob}, from: bob + "/phone", to: alice, kind: "presence", stop: true},
		{name: "inbound probe", list: []string{bob}, from: bob, to: alice, kind: "presence", typ: "probe", stop: true},
		{name: "others pass", list: []string{bob}, from: carol + "/c", to: alice, kind: "message", stop: false},
		{name: "others pass outbound", list: []string{bob}, from: alice + "/a", to: carol, kind: "message", stop: false},
		{name: "a blocked resource", list: []string{bob + "/phone"}, from: bob + "/phone", to: alice, kind: "message", stop: true, cond: "service-unavailable"},
		{name: "another resource passes", list: []string{bob + "/phone"}, from: bob + "/laptop", to: alice, kind: "message", stop: false},
		{name: "a blocked remote domain", list: []string{"evil.net"}, from: "x@muc.evil.net/nick", to: alice, kind: "message", stop: true, cond: "service-unavailable"},
		{name: "to a blocked remote domain", list: []string{"evil.net"}, from: alice + "/a", to: "evil.net", kind: "iq", typ: "get", stop: true, cond: "not-acceptable", blocked: true},
		{name: "an address without an account blocks no one", list: []string{bob}, from: alice + "/a", to: "nobody@example.org", kind: "message", stop: false},
		{name: "bob's list does not bind alice", list: nil, from: alice + "/a", to: bob, kind: "message", stop: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.list...)
			el := stanzaOf(tt.kind, tt.typ)
			stop, se := e.h.Filter(context.Background(), jid.MustParse(tt.from), jid.MustParse(tt.to), el)
			if stop != tt.stop {
				t.Fatalf("stop = %v, want %v", stop, tt.stop)
			}
			switch {
			case tt.cond == "" && se != nil:
				t.Errorf("error %v, want a silent drop", se)
			case tt.cond != "" && (se == nil || se.Condition != tt.cond):
				t.Errorf("error %v, want %s", se, tt.cond)
			case tt.blocked && (se.Extra == nil || se.Extra.Name != xmlstream.Name{Space: NSErrors, Local: "blocked"}):
				t.Errorf("error %v lacks <blocked/>", se)
			case !tt.blocked && se != nil && se.Extra != nil:
				t.Errorf("inbound error %v reveals the block", se)
			}
		})
	}
}

func TestFilterCachesAndSeesChanges(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	from, to := jid.MustParse(bob+"/phone"), jid.MustParse(alice)
	check := func(wantStop bool) {
		t.Helper()
		if stop, _ := e.h.Filter(ctx, from, to, msg(from.String(), to.String(), "chat")); stop != wantStop {
			t.Fatalf("stop = %v, want %v", stop, wantStop)
		}
	}
	check(false)
	calls := e.kv.Calls()
	for range 10 {
		check(false)
	}
	if got := e.kv.Calls() - calls; got != 0 {
		t.Errorf("%d storage calls for 10 cached checks, want 0", got)
	}
	if _, err := e.h.IQ(ctx, alice+"/x", "", "set", parse(t, `<block xmlns="urn:xmpp:blocking"><item jid="bob@example.org"/></block>`)); err != nil {
		t.Fatal(err)
	}
	check(true)
	if _, err := e.h.IQ(ctx, alice+"/x", "", "set", parse(t, `<unblock xmlns="urn:xmpp:blocking"/>`)); err != nil {
		t.Fatal(err)
	}
	check(false)
}

func TestStorageFailure(t *testing.T) {
	ctx := context.Background()
	broken := errors.New("disk on fire")
	for _, p := range []string{
		`<block xmlns="urn:xmpp:blocking"><item jid="a.net"/></block>`,
		`<unblock xmlns="urn:xmpp:blocking"><item jid="a.net"/></unblock>`,
		`<unblock xmlns="urn:xmpp:blocking"/>`,
	} {
		e := newEnv(t)
		e.kv.SetFail(broken)
		if _, err := e.h.IQ(ctx, alice+"/x", "", "set", parse(t, p)); !errors.Is(err, broken) {
			t.Errorf("%s: error = %v, want the storage error", p, err)
		}
	}
	e := newEnv(t)
	e.kv.SetFail(broken)
	if _, err := e.h.IQ(ctx, alice+"/x", "", "get", parse(t, `<blocklist xmlns="urn:xmpp:blocking"/>`)); !errors.Is(err, broken) {
		t.Errorf("get: error = %v, want the storage error", err)
	}
	// The filter fails closed: nothing passes while lists cannot be read.
	from, to := jid.MustParse(carol+"/c"), jid.MustParse(alice)
	if stop, se := e.h.Filter(ctx, from, to, msg(from.String(), to.String(), "chat")); !stop || se == nil || se.Condition != "internal-server-error" {
		t.Errorf("message: stop %v, %v; want internal-server-error", stop, se)
	}
	if stop, se := e.h.Filter(ctx, from, to, xmlstream.New(stanza.NSClient, "presence")); !stop || se != nil {
		t.Errorf("presence: stop %v, %v; want a silent drop", stop, se)
	}
	if !strings.Contains(e.h.Logs(), "disk on fire") {
		t.Error("the failure was not logged")
	}
}

// TestPresenceOnBlock checks XEP-0191 §3.3 and §3.4: blocking sends
// unavailable presence, unblocking the current presence, to blocked
// contacts who are allowed to see the user's presence, and only to them.
func TestPresenceOnBlock(t *testing.T) {
	const dave = "dave@remote.net"
	tests := []struct {
		name        string
		stored      []string
		bobBlocks   bool // bob blocked alice
		payload     string
		wantBob     string // presence bob/phone gets: "", "unavailable" or "available"
		wantCarol   bool   // carol/c gets anything
		wantRemote  []string
		offlineUser bool // alice has no available session
	}{
		{name: "block a contact with a subscription", payload: `<block xmlns="urn:xmpp:blocking"><item jid="bob@example.org"/></block>`, wantBob: "unavailable"},
		{name: "block one resource", payload: `<block xmlns="urn:xmpp:blocking"><item jid="bob@example.org/phone"/></block>`, wantBob: "unavailable"},
		{name: "block another resource", payload: `<block xmlns="urn:xmpp:blocking"><item jid="bob@example.org/laptop"/></block>`},
		{name: "block a contact without a subscription from alice", payload: `<block xmlns="urn:xmpp:blocking"><item jid="carol@example.org"/></block>`},
		{name: "block a remote contact", payload: `<block xmlns="urn:xmpp:blocking"><item jid="dave@remote.net"/></block>`, wantRemote: []string{dave}},
		{name: "block a domain", payload: `<block xmlns="urn:xmpp:blocking"><item jid="example.org"/></block>`, wantBob: "unavailable"},
		{name: "block when offline", offlineUser: true, payload: `<block xmlns="urn:xmpp:blocking"><item jid="bob@example.org"/></block>`},
		{name: "block someone who blocked alice", bobBlocks: true, payload: `<block xmlns="urn:xmpp:blocking"><item jid="bob@example.org"/></block>`},
		{name: "unblock", stored: []string{bob, dave}, payload: `<unblock xmlns="urn:xmpp:blocking"><item jid="bob@example.org"/></unblock>`, wantBob: "available"},
		{name: "unblock all", stored: []string{bob, dave, carol}, payload: `<unblock xmlns="urn:xmpp:blocking"/>`, wantBob: "available", wantRemote: []string{dave}},
		{name: "unblock a domain, the contact stays blocked", stored: []string{bob, "example.org"}, payload: `<unblock xmlns="urn:xmpp:blocking"><item jid="example.org"/></unblock>`},
		{name: "unblock someone who blocked alice", stored: []string{bob}, bobBlocks: true, payload: `<unblock xmlns="urn:xmpp:blocking"/>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, tt.stored...)
			h := e.h
			r := h.Storage().Roster()
			for _, it := range []storage.RosterItem{
				{Contact: bob, Subscription: "from"},
				{Contact: carol, Subscription: "to"},
				{Contact: dave, Subscription: "both"},
			} {
				if _, err := r.Put(ctx, alice, it, 0); err != nil {
					t.Fatal(err)
				}
			}
			if tt.bobBlocks {
				if err := e.kv.Put(ctx, bob, kvNS, alice, nil); err != nil {
					t.Fatal(err)
				}
			}
			if !tt.offlineUser {
				p := parse(t, `<presence xmlns="jabber:client"><status>here</status></presence>`)
				e.asked.State().SetAvailable(p, 0)
			}
			e.bobSess.State().SetAvailable(xmlstream.New(stanza.NSClient, "presence"), 0)
			carolSess := h.Connect(ctx, carol+"/c")
			carolSess.State().SetAvailable(xmlstream.New(stanza.NSClient, "presence"), 0)

			if _, err := h.IQ(ctx, alice+"/asked", "", "set", parse(t, tt.payload)); err != nil {
				t.Fatal(err)
			}

			got := e.bobSess.Take()
			switch tt.wantBob {
			case "":
				if len(got) != 0 {
					t.Errorf("bob got %v, want nothing", got)
				}
			case "unavailable", "available":
				if len(got) != 1 {
					t.Fatalf("bob got %v, want one presence", got)
				}
				p := got[0]
				if p.Name.Local != "presence" || p.Attr("from") != alice+"/asked" || !strings.HasPrefix(p.Attr("to"), bob) {
					t.Errorf("bob got %s", p)
				}
				if tt.wantBob == "unavailable" && p.Attr("type") != "unavailable" {
					t.Errorf("bob got %s, want unavailable", p)
				}
				if tt.wantBob == "available" && (p.Attr("type") != "" || p.Child(stanza.NSClient, "status").Text() != "here") {
					t.Errorf("bob got %s, want alice's current presence", p)
				}
			}
			if got := carolSess.Take(); len(got) != 0 && !tt.wantCarol {
				t.Errorf("carol got %v, want nothing", got)
			}
			var remote []string
			for _, el := range h.TakeDelivered() {
				if el.Name.Local != "presence" || el.Attr("from") != alice+"/asked" {
					t.Errorf("delivered %s", el)
				}
				remote = append(remote, el.Attr("to"))
			}
			if !slices.Equal(remote, tt.wantRemote) {
				t.Errorf("routed presence to %v, want %v", remote, tt.wantRemote)
			}
		})
	}
}

// TestFeatures: XEP-0191 §3.1 has clients ask the user's server, not
// the account, whether it supports blocking; both say so.
func TestFeatures(t *testing.T) {
	e := newEnv(t)
	if got := e.h.Features(module.Account); len(got) != 1 || got[0] != NS {
		t.Errorf("account features = %v, want [%s]", got, NS)
	}
	if got := e.h.Features(module.Server); len(got) != 1 || got[0] != NS {
		t.Errorf("server features = %v, want [%s]", got, NS)
	}
}
