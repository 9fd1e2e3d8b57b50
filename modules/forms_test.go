// Package modules_test holds the tests that span modules.
package modules_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
	"parley/modules/mam"
	"parley/modules/muc"
	"parley/modules/pep"
	"parley/modules/pubsubsvc"
	"parley/modules/push"
	"parley/modules/upload"
)

// formsIn collects every data form inside el.
func formsIn(el *xmlstream.Element, out *[]*xmlstream.Element) {
	if el == nil {
		return
	}
	if el.Name.Space == dataform.NS && el.Name.Local == "x" {
		*out = append(*out, el)
		return
	}
	for c := range el.Elements() {
		formsIn(c, out)
	}
}

// TestEveryFormParleySends builds each data form parley can send the
// way a client makes the server send it, and checks each against
// XEP-0004 and the registry of its FORM_TYPE, as typed clients do: a
// client library that validates forms rejects the whole form for one
// wrong field type.
func TestEveryFormParleySends(t *testing.T) {
	ctx := context.Background()
	const (
		alice   = "alice@example.org/phone"
		bob     = "bob@example.org/pc"
		service = "conference.example.org"
		room    = "room@conference.example.org"
	)
	h := modtest.NewHost("example.org")
	h.AddUser("alice@example.org")
	h.AddUser("bob@example.org")
	mods := []module.Module{
		muc.New([]string{service}, 0),
		pep.New(),
		mam.New(0),
		upload.New(upload.Options{Domain: "upload.example.org", Dir: filepath.Join(t.TempDir(), "up"), MaxFileSize: 1 << 20}),
		push.New(push.Options{IncludeSender: true, IncludeBody: true}),
		pubsubsvc.New(pubsubsvc.Options{Domains: []string{"pubsub.example.org"}}),
	}
	for _, m := range mods {
		if err := m.Start(h); err != nil {
			t.Fatalf("starting %s: %v", m.Name(), err)
		}
		if s, ok := m.(module.Stopper); ok {
			t.Cleanup(func() { s.Stop(ctx) })
		}
	}
	var forms []*xmlstream.Element
	parse := func(s string) *xmlstream.Element {
		t.Helper()
		el, err := xmlstream.ParseElement([]byte(s), stanza.NSClient)
		if err != nil {
			t.Fatal(err)
		}
		return el
	}
	// toService sends a stanza to a component and keeps the forms of
	// what comes back.
	toService := func(from, to, s string) {
		t.Helper()
		el := parse(s)
		el.SetAttr("from", from)
		el.SetAttr("to", to)
		if !h.ToComponent(ctx, jid.MustParse(from), jid.MustParse(to), el) {
			t.Fatalf("no component for %s", to)
		}
		for _, d := range append(h.TakeDelivered(), h.TakeRouted()...) {
			formsIn(d, &forms)
		}
	}
	iq := func(from, to, typ, payload string) {
		t.Helper()
		res, err := h.IQ(ctx, from, to, typ, parse(payload))
		if err != nil {
			t.Fatalf("%s %s: %v", typ, payload, err)
		}
		formsIn(res, &forms)
	}

	// Group chat: the configuration form (§10.1), the room's disco#info
	// (§6.4) and a voice request passed to moderators (§8.6).
	toService(alice, room+"/Alice", `<presence><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	toService(alice, room, `<iq type='get' id='c1'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>`)
	toService(alice, room, `<iq type='set' id='c2'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>`+
		`<field var='muc#roomconfig_moderatedroom'><value>1</value></field>`+
		`<field var='muc#roomconfig_maxusers'><value>30</value></field></x></query></iq>`)
	toService(alice, room, `<iq type='get' id='c3'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>`)
	toService(bob, room+"/Bob", `<presence><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	// With an avatar, the room's disco#info carries its hash (XEP-0486).
	toService(alice, room, `<iq type='set' id='v1'><vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=</BINVAL></PHOTO></vCard></iq>`)
	toService(bob, room, `<iq type='get' id='i1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	toService(bob, room, `<message><x xmlns='jabber:x:data' type='submit'>`+
		`<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>`+
		`<field var='muc#role'><value>participant</value></field></x></message>`)
	// The room archive's search form (XEP-0313 §5.1.1).
	toService(alice, room, `<iq type='get' id='m1'><query xmlns='urn:xmpp:mam:2'/></iq>`)
	// Upload: the size limit in disco#info (XEP-0363 §3).
	toService(alice, "upload.example.org", `<iq type='get' id='u1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	// The personal archive's search form.
	iq(alice, "", "get", `<query xmlns='urn:xmpp:mam:2'/>`)
	// PEP: a node's configuration form (XEP-0060 §8.2).
	iq(alice, "", "set", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:example'><item id='1'><x xmlns='urn:xmpp:example'/></item></publish></pubsub>`)
	iq(alice, "", "get", `<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:xmpp:example'/></pubsub>`)
	// The pubsub service: node configuration, default options, a
	// subscription's options, a node's meta-data and the approval asked
	// of an owner (XEP-0060 §8.2, §6.4, §6.3, §5.4, §8.6).
	const ps = "pubsub.example.org"
	toService(alice, ps, `<iq type='set' id='p1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='n'/><configure><x xmlns='jabber:x:data' type='submit'>`+
		`<field var='pubsub#access_model'><value>authorize</value></field><field var='pubsub#title'><value>T</value></field></x></configure></pubsub></iq>`)
	toService(alice, ps, `<iq type='get' id='p2'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'/></pubsub></iq>`)
	toService(alice, ps, `<iq type='get' id='p3'><pubsub xmlns='http://jabber.org/protocol/pubsub'><default/></pubsub></iq>`)
	toService(alice, ps, `<iq type='get' id='p4'><query xmlns='http://jabber.org/protocol/disco#info' node='n'/></iq>`)
	toService(bob, ps, `<iq type='set' id='p5'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='n' jid='bob@example.org'/></pubsub></iq>`)
	toService(bob, ps, `<iq type='get' id='p6'><pubsub xmlns='http://jabber.org/protocol/pubsub'><options node='n' jid='bob@example.org'/></pubsub></iq>`)
	// Push: the summary and publish-options sent to an app server
	// (XEP-0357 §5, §7).
	iq(alice, "", "set", `<enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n1'><x xmlns='jabber:x:data' type='submit'>`+
		`<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>`+
		`<field var='secret'><value>s3cret</value></field></x></enable>`)
	h.Message(ctx, module.MessageEvent{From: jid.MustParse(bob), To: jid.MustParse("alice@example.org"),
		Stanza: parse(`<message type='chat'><body>hi</body></message>`)})
	for _, d := range h.TakeDelivered() {
		formsIn(d, &forms)
	}

	seen := map[string]int{}
	avatar := false
	for _, x := range forms {
		avatar = avatar || strings.Contains(x.String(), "muc#roominfo_avatarhash")
		f, err := dataform.Parse(x)
		if err != nil {
			t.Errorf("unreadable form: %v\n%s", err, x)
			continue
		}
		seen[f.FormType]++
		if err := dataform.Validate(x); err != nil {
			t.Errorf("%v\n%s", err, x)
		}
	}
	for _, ft := range []string{dataform.MUCRoomConfig, dataform.MUCRoomInfo, dataform.MUCRequest, dataform.MAM2,
		dataform.HTTPUpload, dataform.PubSubNodeConfig, dataform.PushSummary, dataform.PubSubPublishOpts,
		dataform.PubSubSubOptions, dataform.PubSubMetaData, dataform.PubSubSubAuth} {
		if seen[ft] == 0 {
			t.Errorf("no %s form was sent; seen %v", ft, seen)
		}
	}
	if !avatar {
		t.Error("no room information with an avatar hash was sent")
	}
	if !slices.Contains(h.Features(module.Account), mam.NS) {
		t.Error("the archive is not advertised")
	}
}
