package stanza

import (
	"testing"

	"parley/internal/xmlstream"
)

func TestErrorReply(t *testing.T) {
	iq := xmlstream.New(NSClient, "iq", "from", "a@x/r", "to", "x", "type", "get", "id", "7")
	iq.AddChild(xmlstream.New("urn:q", "query"))
	r := ErrorReply(iq, ServiceUnavailable())
	if r.Attr("to") != "a@x/r" || r.Attr("from") != "x" || r.Attr("type") != "error" || r.Attr("id") != "7" {
		t.Fatalf("reply attributes: %s", r)
	}
	e := r.Child(NSClient, "error")
	if e == nil || e.Attr("type") != "cancel" || e.Child(NSStanzas, "service-unavailable") == nil {
		t.Fatalf("error element: %s", r)
	}
	if r.Child("urn:q", "query") == nil {
		t.Error("the request payload was not kept")
	}
	for _, typ := range []string{"error", "result"} {
		x := iq.Copy()
		x.SetAttr("type", typ)
		if ErrorReply(x, BadRequest("")) != nil {
			t.Errorf("an IQ %s was answered with an error", typ)
		}
	}
	m := xmlstream.New(NSClient, "message", "type", "error")
	if ErrorReply(m, BadRequest("")) != nil {
		t.Error("an error message was answered with an error")
	}
}

func TestAsError(t *testing.T) {
	if AsError(Forbidden("x")).Condition != "forbidden" {
		t.Error("stanza error not passed through")
	}
	if AsError(errorString("db down")).Condition != "internal-server-error" {
		t.Error("plain error not mapped to internal-server-error")
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestCheckIQ(t *testing.T) {
	for _, tc := range []struct {
		xml  string
		want string // condition, "" for none
	}{
		{`<message xmlns='jabber:client'/>`, ""},
		{`<iq xmlns='jabber:client' type='get' id='a'><ping xmlns='urn:xmpp:ping'/></iq>`, ""},
		{`<iq xmlns='jabber:client' type='result' id='a'/>`, ""},
		{`<iq xmlns='jabber:client' type='error' id='a'><error/></iq>`, ""},
		{`<iq xmlns='jabber:client' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`, "bad-request"},
		{`<iq xmlns='jabber:client' type='set' id='a'/>`, "bad-request"},
		{`<iq xmlns='jabber:client' type='get' id='a'><a xmlns='x'/><b xmlns='y'/></iq>`, "bad-request"},
		{`<iq xmlns='jabber:client' type='poke' id='a'/>`, "bad-request"},
	} {
		el, err := xmlstream.ParseElement([]byte(tc.xml), NSClient)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if se := CheckIQ(el); se != nil {
			got = se.Condition
		}
		if got != tc.want {
			t.Errorf("CheckIQ(%s) = %q, want %q", tc.xml, got, tc.want)
		}
	}
}
