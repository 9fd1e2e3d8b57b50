package modtest

import (
	"context"
	"errors"
	"testing"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

func TestIQDispatch(t *testing.T) {
	name := xmlstream.Name{Space: "urn:t", Local: "q"}
	tests := []struct {
		name       string
		from, to   string
		typ        string
		payload    bool
		wantTarget module.Target
		wantTo     string
		wantErr    string
	}{
		{name: "no to is the own account", from: "a@x.org/r", typ: "get", payload: true, wantTarget: module.Account, wantTo: "a@x.org"},
		{name: "own bare JID", from: "a@x.org/r", to: "a@x.org", typ: "get", payload: true, wantTarget: module.Account, wantTo: "a@x.org"},
		{name: "another account", from: "a@x.org/r", to: "b@x.org", typ: "set", payload: true, wantTarget: module.Account, wantTo: "b@x.org"},
		{name: "the server", from: "a@x.org/r", to: "x.org", typ: "get", payload: true, wantTarget: module.Server, wantTo: "x.org"},
		{name: "unknown account", from: "a@x.org/r", to: "nobody@x.org", typ: "get", payload: true, wantErr: "service-unavailable"},
		{name: "remote domain", from: "a@x.org/r", to: "y.org", typ: "get", payload: true, wantErr: "remote-server-not-found"},
		{name: "malformed to", from: "a@x.org/r", to: "a@@x.org", typ: "get", payload: true, wantErr: "jid-malformed"},
		{name: "no payload", from: "a@x.org/r", typ: "get", wantErr: "bad-request"},
		{name: "no handler", from: "a@x.org/r", to: "x.org", typ: "set", payload: true, wantErr: "service-unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHost("x.org")
			h.AddUser("a@x.org")
			h.AddUser("b@x.org")
			var got module.IQ
			var gotTarget module.Target
			for _, target := range []module.Target{module.Server, module.Account} {
				types := []string{"get", "set"}
				if target == module.Server {
					types = types[:1]
				}
				for _, typ := range types {
					h.HandleIQ(target, typ, name, func(_ context.Context, iq module.IQ) (*xmlstream.Element, error) {
						got, gotTarget = iq, target
						return xmlstream.New("urn:t", "ok"), nil
					})
				}
			}
			var p *xmlstream.Element
			if tt.payload {
				p = xmlstream.New(name.Space, name.Local)
			}
			res, err := h.IQ(context.Background(), tt.from, tt.to, tt.typ, p)
			if tt.wantErr != "" {
				if se := stanza.AsError(err); err == nil || se.Condition != tt.wantErr {
					t.Fatalf("error = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || res == nil || res.Name.Local != "ok" {
				t.Fatalf("IQ = %v, %v", res, err)
			}
			if gotTarget != tt.wantTarget || got.To.String() != tt.wantTo || got.From.String() != tt.from || got.Type != tt.typ || got.Payload != p {
				t.Errorf("handler got target %v, %+v", gotTarget, got)
			}
		})
	}
}

func TestRegistrationPanics(t *testing.T) {
	noop := func(context.Context, module.IQ) (*xmlstream.Element, error) { return nil, nil }
	tests := []struct {
		name string
		f    func(h *Host)
	}{
		{"duplicate IQ", func(h *Host) {
			h.HandleIQ(module.Server, "get", xmlstream.Name{Local: "q"}, noop)
			h.HandleIQ(module.Server, "get", xmlstream.Name{Local: "q"}, noop)
		}},
		{"bad IQ type", func(h *Host) { h.HandleIQ(module.Server, "result", xmlstream.Name{Local: "q"}, noop) }},
		{"two presence handlers", func(h *Host) {
			h.SetPresenceHandler(func(context.Context, jid.JID, jid.JID, *xmlstream.Element) {})
			h.SetPresenceHandler(func(context.Context, jid.JID, jid.JID, *xmlstream.Element) {})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tt.f(NewHost("x.org"))
		})
	}
}

func TestFilterDirections(t *testing.T) {
	type call struct {
		from, to string
		outbound bool
	}
	tests := []struct {
		name     string
		from, to string
		want     []call
	}{
		{"local to local", "a@x.org/r", "b@x.org", []call{{"a@x.org/r", "b@x.org", true}, {"a@x.org/r", "b@x.org", false}}},
		{"local to remote", "a@x.org/r", "c@y.org", []call{{"a@x.org/r", "c@y.org", true}}},
		{"remote to local", "c@y.org/r", "a@x.org", []call{{"c@y.org/r", "a@x.org", false}}},
		{"local to the server", "a@x.org/r", "x.org", []call{{"a@x.org/r", "x.org", true}}},
		{"between own resources", "a@x.org/r", "a@x.org/s", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHost("x.org")
			var got []call
			h.AddFilter(func(_ context.Context, from, to jid.JID, _ *xmlstream.Element, outbound bool) (bool, *stanza.Error) {
				got = append(got, call{from.String(), to.String(), outbound})
				return false, nil
			})
			stop, se := h.Filter(context.Background(), jid.MustParse(tt.from), jid.MustParse(tt.to), xmlstream.New(stanza.NSClient, "message"))
			if stop || se != nil {
				t.Fatalf("stop %v, %v", stop, se)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("calls %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("call %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestSessions(t *testing.T) {
	ctx := context.Background()
	h := NewHost("x.org")
	var events []string
	h.OnSessionBound(func(_ context.Context, s session.Session) { events = append(events, "bound "+s.JID().String()) })
	h.OnSessionEnded(func(_ context.Context, s session.Session) {
		events = append(events, "ended "+s.JID().String()+" leaving "+string(rune('0'+len(h.Sessions(s.JID().Bare())))))
	})
	a := h.Connect(ctx, "a@x.org/r")
	h.Connect(ctx, "a@x.org/s")
	a2 := h.Connect(ctx, "a@x.org/r")
	h.Disconnect(ctx, a) // already replaced: no hooks
	h.Disconnect(ctx, a2)
	want := []string{"bound a@x.org/r", "bound a@x.org/s", "ended a@x.org/r leaving 2", "bound a@x.org/r", "ended a@x.org/r leaving 1"}
	if len(events) != len(want) {
		t.Fatalf("events %q, want %q", events, want)
	}
	for i := range want {
		if events[i] != want[i] {
			t.Errorf("event %d = %q, want %q", i, events[i], want[i])
		}
	}
	if !a.Replaced() || a2.Replaced() {
		t.Error("replacement not recorded")
	}
	a2.Deliver(xmlstream.New(stanza.NSClient, "message"))
	if got := a2.Take(); len(got) != 1 || len(a2.Take()) != 0 {
		t.Errorf("Take returned %v", got)
	}
}

// The store is the real one, so only the faults are modtest's own: a
// failing repository returns the injected error and counts the call, and
// the data is untouched when the failure ends.
func TestStoreFaults(t *testing.T) {
	ctx := context.Background()
	h := NewHost("x.org")
	h.AddUser("a@x.org")
	const o = "a@x.org"
	kv := h.Store().KV()
	if err := kv.Put(ctx, o, "ns", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("disk on fire")
	f := h.Storage().FaultyKV()
	f.SetFail(broken)
	calls := f.Calls()
	if _, err := kv.Get(ctx, o, "ns", "k"); !errors.Is(err, broken) {
		t.Errorf("Get while failing: %v", err)
	}
	if err := kv.Put(ctx, o, "ns", "k", []byte("w")); !errors.Is(err, broken) {
		t.Errorf("Put while failing: %v", err)
	}
	if got := f.Calls() - calls; got != 2 {
		t.Errorf("%d calls counted, want 2", got)
	}
	f.SetFail(nil)
	if v, err := kv.Get(ctx, o, "ns", "k"); err != nil || string(v) != "v" {
		t.Errorf("Get after the failure = %q, %v; want the value from before", v, err)
	}
	// The real store's rules hold: no data without an account.
	if err := kv.Put(ctx, "b@x.org", "ns", "k", nil); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Put without an account: %v", err)
	}

	a := h.Storage().FaultyArchive()
	a.SetFail(broken)
	if err := h.Store().Archive().AppendBatch(ctx, []storage.ArchiveEntry{{Owner: o, Message: storage.ArchiveMessage{ID: "1", With: "b@x.org"}}}); !errors.Is(err, broken) {
		t.Errorf("AppendBatch while failing: %v", err)
	}
	a.SetFail(nil)
	if err := h.Store().Archive().AppendBatch(ctx, []storage.ArchiveEntry{{Owner: o, Message: storage.ArchiveMessage{ID: "1", With: "b@x.org", Data: []byte("x")}}}); err != nil {
		t.Fatal(err)
	}
	if !a.SetData(o, "1", []byte("y")) || a.SetData(o, "2", nil) {
		t.Error("SetData did not find exactly the stored message")
	}
	if got := a.Stored(o); len(got) != 1 || got[0].ID != "1" || string(got[0].Data) != "y" {
		t.Errorf("Stored = %+v", got)
	}
}
