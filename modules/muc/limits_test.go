package muc

import (
	"fmt"
	"testing"

	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
)

func startLimited(t *testing.T, h *modtest.Host, l Limits) *fixture {
	t.Helper()
	m := New([]string{service}, 0).WithLimits(l)
	if err := m.Start(h); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return &fixture{t: t, h: h, m: m}
}

// enter joins room@service as full and returns the error condition of
// the answer, "" when it was a self-presence.
func (f *fixture) enter(full, room string) (cond string, errEl *xmlstream.Element) {
	f.t.Helper()
	rj := room + "@" + service
	out := f.send(full, rj+"/nick", presence(mucX()))
	for _, el := range out {
		if el.Attr("to") != full || el.Attr("from") != rj+"/nick" {
			continue
		}
		if el.Attr("type") == "error" {
			return errorCondition(el), el.Child(stanza.NSClient, "error")
		}
		return "", nil
	}
	f.t.Fatalf("no answer to %s entering %s: %v", full, rj, out)
	return "", nil
}

func (f *fixture) leaveRoom(full, room string) {
	f.t.Helper()
	f.send(full, room+"@"+service+"/nick", xmlstream.New(stanza.NSClient, "presence", "type", "unavailable"))
}

func TestRoomCreationRatePerUser(t *testing.T) {
	f := startLimited(t, modtest.NewHost("example.org"), Limits{CreationsPerHour: 3})
	for i := range 3 {
		if cond, _ := f.enter(alice, fmt.Sprintf("r%d", i)); cond != "" {
			t.Fatalf("creation %d refused: %s", i, cond)
		}
	}
	cond, e := f.enter(alice, "r3")
	if cond != "policy-violation" || e.Attr("type") != "wait" || e.Child(stanza.NSStanzas, "text") == nil {
		t.Fatalf("fourth creation in an hour: %s %v, want wait/policy-violation with a text", cond, e)
	}
	// Joining rooms that exist is not creating: still allowed.
	if cond, _ := f.enter(alice+"2", "r0"); cond != "" {
		t.Errorf("joining an existing room refused: %s", cond)
	}
	// Another user has an allowance of their own.
	if cond, _ := f.enter(bob, "b0"); cond != "" {
		t.Errorf("another user's creation refused: %s", cond)
	}
	// Rooms that went away do not give the allowance back.
	f.leaveRoom(alice, "r1")
	if cond, _ := f.enter(alice, "r4"); cond != "policy-violation" {
		t.Errorf("creation after a room went away: %q, want policy-violation", cond)
	}
}

func TestMaxRoomsPerService(t *testing.T) {
	h := modtest.NewHost("example.org")
	f := startLimited(t, h, Limits{MaxRooms: 3})
	// One persistent room, which survives a restart, and two temporary.
	f.createRoom(map[string]string{"persistentroom": "1"})
	if cond, _ := f.enter(bob, "t1"); cond != "" {
		t.Fatalf("second room refused: %s", cond)
	}
	if cond, _ := f.enter(carol, "t2"); cond != "" {
		t.Fatalf("third room refused: %s", cond)
	}
	cond, e := f.enter(carol, "t3")
	if cond != "resource-constraint" || e.Child(stanza.NSStanzas, "text") == nil {
		t.Fatalf("fourth room: %q %v, want resource-constraint with a text", cond, e)
	}
	// A temporary room emptied is gone, and frees its place.
	f.leaveRoom(bob, "t1")
	if cond, _ := f.enter(carol, "t3"); cond != "" {
		t.Fatalf("room refused after another went away: %s", cond)
	}
	// A persistent room emptied still exists and still counts.
	f.send(alice, roomJID+"/Alice", xmlstream.New(stanza.NSClient, "presence", "type", "unavailable"))
	if cond, _ := f.enter(bob, "t4"); cond != "resource-constraint" {
		t.Fatalf("the emptied persistent room stopped counting: %q", cond)
	}

	// After a restart the stored room counts from the start: with a
	// limit of 1 nothing more can be created.
	g := startLimited(t, h.Restart(), Limits{MaxRooms: 1})
	if cond, _ := g.enter(bob, "t5"); cond != "resource-constraint" {
		t.Fatalf("after a restart: %q, want resource-constraint", cond)
	}
	// Destroying the stored room frees its place.
	g.send(alice, roomJID+"/Alice", presence(mucX()))
	d := xmlstream.New(NSOwner, "query")
	sub(d, xmlstream.New(NSOwner, "destroy"))
	if out := g.iq(alice, roomJID, "set", d); typeOf(out, alice) != "result" {
		t.Fatalf("destroy: %v", out)
	}
	if cond, _ := g.enter(bob, "t5"); cond != "" {
		t.Fatalf("room refused after the stored one was destroyed: %s", cond)
	}
}
