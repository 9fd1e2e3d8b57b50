package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"parley/internal/xmlstream"
)

// xmlClient is a raw client that reads whole stanzas: it logs in as
// rawClient does, then parses what comes with parley's own decoder.
type xmlClient struct {
	t    *testing.T
	raw  *rawClient
	dec  *xmlstream.Decoder
	kept []*xmlstream.Element // read while waiting for something else
}

func loginXML(t *testing.T, s *server, bare, resource string) *xmlClient {
	t.Helper()
	raw := dialRaw(t, s.starttls)
	raw.login(bare, "pw", resource)
	src := io.MultiReader(strings.NewReader(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`),
		strings.NewReader(raw.buf.String()), raw.conn)
	raw.buf.Reset()
	c := &xmlClient{t: t, raw: raw, dec: xmlstream.NewDecoder(src, xmlstream.Limits{MaxStanzaBytes: 1 << 20})}
	if _, err := c.dec.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	c.raw.send("<presence/>")
	c.next("own presence", func(el *xmlstream.Element) bool { return el.Name.Local == "presence" })
	return c
}

// next returns the first stanza (kept or new) that match accepts; it
// fails after 10 s.
func (c *xmlClient) next(what string, match func(*xmlstream.Element) bool) *xmlstream.Element {
	c.t.Helper()
	for i, el := range c.kept {
		if match(el) {
			c.kept = append(c.kept[:i], c.kept[i+1:]...)
			return el
		}
	}
	c.raw.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		el, err := c.dec.Next()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v; kept %v", what, err, c.kept)
		}
		if match(el) {
			return el
		}
		c.kept = append(c.kept, el)
	}
}

// quiet reports whether no stanza matching match arrives within d.
func (c *xmlClient) quiet(d time.Duration, match func(*xmlstream.Element) bool) bool {
	for _, el := range c.kept {
		if match(el) {
			return false
		}
	}
	c.raw.conn.SetReadDeadline(time.Now().Add(d))
	for {
		el, err := c.dec.Next()
		if err != nil {
			// The deadline: the decoder is done for; nothing more is read.
			return true
		}
		if match(el) {
			return false
		}
		c.kept = append(c.kept, el)
	}
}

// matches reports whether got has everything want has: its name, its
// attributes (a value "*" matches any), its text when want has some, and
// a matching child for each of want's children. It says what differs.
func matches(got, want *xmlstream.Element) (bool, string) {
	if got.Name != want.Name {
		return false, fmt.Sprintf("<%s xmlns=%q> where <%s xmlns=%q> was expected", got.Name.Local, got.Name.Space, want.Name.Local, want.Name.Space)
	}
	for _, a := range want.Attrs {
		if a.Name.Local == "xmlns" || a.Name.Space == "xmlns" {
			continue
		}
		v, ok := got.AttrNS(a.Name.Space, a.Name.Local)
		if !ok || (a.Value != "*" && v != a.Value) {
			return false, fmt.Sprintf("<%s> has %s=%q, want %q", got.Name.Local, a.Name.Local, v, a.Value)
		}
	}
	if t := strings.TrimSpace(want.Text()); t != "" && strings.TrimSpace(got.Text()) != t {
		return false, fmt.Sprintf("<%s> has text %q, want %q", got.Name.Local, got.Text(), t)
	}
	for wc := range want.Elements() {
		found, why := false, fmt.Sprintf("no <%s> in <%s>", wc.Name.Local, got.Name.Local)
		for gc := range got.Elements() {
			if ok, w := matches(gc, wc); ok {
				found = true
				break
			} else if gc.Name == wc.Name {
				why = w
			}
		}
		if !found {
			return false, why
		}
	}
	return true, ""
}

func mustParse(t *testing.T, s string) *xmlstream.Element {
	t.Helper()
	el, err := xmlstream.ParseElement([]byte(s), "jabber:client")
	if err != nil {
		t.Fatalf("bad XML in the test: %v\n%s", err, s)
	}
	return el
}

// xepExample is one example of XEP-0060 with its JIDs adapted:
// hamlet@denmark.lit is alice@localhost (the owner), francisco is bob,
// bernardo is carol, and pubsub.shakespeare.lit is pubsub.localhost.
// Each request gets the response the XEP shows, and the notifications
// it shows arrive (who: the client that gets one).
type xepExample struct {
	name, from, request, response string
	events                        []event
}

type event struct{ who, want string }

const (
	psNS    = "http://jabber.org/protocol/pubsub"
	psOwner = "http://jabber.org/protocol/pubsub#owner"
	psEvent = "http://jabber.org/protocol/pubsub#event"
	entry   = `<entry xmlns='http://www.w3.org/2005/Atom'><title>Soliloquy</title><summary>To be, or not to be: that is the question</summary><id>tag:denmark.lit,2003:entry-32397</id></entry>`
)

func nodeConfigForm(fields string) string {
	return `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>` + fields + `</x>`
}

var xep0060Examples = []xepExample{
	{name: "ex 9 disco#info of the service", from: "alice",
		request:  `<iq type='get' to='pubsub.localhost' id='feature1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='feature1'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='pubsub' type='service'/><feature var='http://jabber.org/protocol/pubsub'/><feature var='http://jabber.org/protocol/pubsub#subscribe'/><feature var='http://jabber.org/protocol/pubsub#access-authorize'/></query></iq>`},
	{name: "ex 131 create and configure a node", from: "alice",
		request: `<iq type='set' to='pubsub.localhost' id='create2'><pubsub xmlns='` + psNS + `'><create node='princely_musings'/><configure>` +
			nodeConfigForm(`<field var='pubsub#title'><value>Princely Musings (Atom)</value></field><field var='pubsub#max_items'><value>10</value></field><field var='pubsub#access_model'><value>open</value></field><field var='pubsub#notify_retract'><value>1</value></field><field var='pubsub#notify_delete'><value>1</value></field>`) +
			`</configure></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='create2'/>`},
	{name: "ex 144 create an existing node", from: "bob",
		request:  `<iq type='set' to='pubsub.localhost' id='create1'><pubsub xmlns='` + psNS + `'><create node='princely_musings'/></pubsub></iq>`,
		response: `<iq type='error' from='pubsub.localhost' id='create1'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
	{name: "ex 122 instant node", from: "alice",
		request:  `<iq type='set' to='pubsub.localhost' id='create3'><pubsub xmlns='` + psNS + `'><create/></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='create3'><pubsub xmlns='` + psNS + `'><create node='*'/></pubsub></iq>`},
	{name: "ex 12 disco#items of the service", from: "bob",
		request:  `<iq type='get' to='pubsub.localhost' id='nodes1'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='nodes1'><query xmlns='http://jabber.org/protocol/disco#items'><item jid='pubsub.localhost' node='princely_musings' name='Princely Musings (Atom)'/></query></iq>`},
	{name: "ex 17 disco#info of a node with meta-data", from: "bob",
		request:  `<iq type='get' to='pubsub.localhost' id='meta1'><query xmlns='http://jabber.org/protocol/disco#info' node='princely_musings'/></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='meta1'><query xmlns='http://jabber.org/protocol/disco#info' node='princely_musings'><identity category='pubsub' type='leaf'/><feature var='http://jabber.org/protocol/pubsub'/><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#meta-data</value></field><field var='pubsub#owner'><value>alice@localhost</value></field><field var='pubsub#num_subscribers'><value>0</value></field><field var='pubsub#creation_date'/><field var='pubsub#title'><value>Princely Musings (Atom)</value></field></x></query></iq>`},
	{name: "ex 32 subscribe", from: "bob",
		request:  `<iq type='set' to='pubsub.localhost' id='sub1'><pubsub xmlns='` + psNS + `'><subscribe node='princely_musings' jid='bob@localhost'/></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='sub1'><pubsub xmlns='` + psNS + `'><subscription node='princely_musings' jid='bob@localhost' subid='*' subscription='subscribed'/></pubsub></iq>`},
	{name: "ex 35 subscribe another JID", from: "carol",
		request:  `<iq type='set' to='pubsub.localhost' id='sub1'><pubsub xmlns='` + psNS + `'><subscribe node='princely_musings' jid='bob@localhost'/></pubsub></iq>`,
		response: `<iq type='error' from='pubsub.localhost' id='sub1'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><invalid-jid xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>`},
	{name: "ex 41 subscribe to a missing node", from: "bob",
		request:  `<iq type='set' to='pubsub.localhost' id='sub1'><pubsub xmlns='` + psNS + `'><subscribe node='no_such_node' jid='bob@localhost'/></pubsub></iq>`,
		response: `<iq type='error' from='pubsub.localhost' id='sub1'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
	{name: "ex 99 publish an item, ex 101 its notification", from: "alice",
		request:  `<iq type='set' to='pubsub.localhost' id='publish1'><pubsub xmlns='` + psNS + `'><publish node='princely_musings'><item id='ae890ac52d0df67ed7cfdf51b644e901'>` + entry + `</item></publish></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='publish1'><pubsub xmlns='` + psNS + `'><publish node='princely_musings'><item id='ae890ac52d0df67ed7cfdf51b644e901'/></publish></pubsub></iq>`,
		events:   []event{{"bob", `<message from='pubsub.localhost' to='bob@localhost'><event xmlns='` + psEvent + `'><items node='princely_musings'><item id='ae890ac52d0df67ed7cfdf51b644e901'>` + entry + `</item></items></event></message>`}}},
	{name: "ex 103 publish without permission", from: "carol",
		request:  `<iq type='set' to='pubsub.localhost' id='publish1'><pubsub xmlns='` + psNS + `'><publish node='princely_musings'><item id='x'>` + entry + `</item></publish></pubsub></iq>`,
		response: `<iq type='error' from='pubsub.localhost' id='publish1'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
	{name: "ex 111 publish-options precondition not met", from: "alice",
		request:  `<iq type='set' to='pubsub.localhost' id='pub2'><pubsub xmlns='` + psNS + `'><publish node='princely_musings'><item id='y'>` + entry + `</item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#access_model'><value>presence</value></field></x></publish-options></pubsub></iq>`,
		response: `<iq type='error' from='pubsub.localhost' id='pub2'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>`},
	{name: "ex 78 retrieve all items", from: "bob",
		request:  `<iq type='get' to='pubsub.localhost' id='items1'><pubsub xmlns='` + psNS + `'><items node='princely_musings'/></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='items1'><pubsub xmlns='` + psNS + `'><items node='princely_musings'><item id='ae890ac52d0df67ed7cfdf51b644e901'>` + entry + `</item></items></pubsub></iq>`},
	{name: "ex 89 retrieve one item", from: "bob",
		request:  `<iq type='get' to='pubsub.localhost' id='items3'><pubsub xmlns='` + psNS + `'><items node='princely_musings'><item id='ae890ac52d0df67ed7cfdf51b644e901'/></items></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='items3'><pubsub xmlns='` + psNS + `'><items node='princely_musings'><item id='ae890ac52d0df67ed7cfdf51b644e901'>` + entry + `</item></items></pubsub></iq>`},
	{name: "ex 57 subscription options form", from: "bob",
		request:  `<iq type='get' to='pubsub.localhost' id='options1'><pubsub xmlns='` + psNS + `'><options node='princely_musings' jid='bob@localhost'/></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='options1'><pubsub xmlns='` + psNS + `'><options node='princely_musings' jid='bob@localhost'><x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#subscribe_options</value></field><field var='pubsub#deliver' type='boolean'><value>1</value></field></x></options></pubsub></iq>`},
	{name: "ex 64 submit subscription options", from: "bob",
		request:  `<iq type='set' to='pubsub.localhost' id='options2'><pubsub xmlns='` + psNS + `'><options node='princely_musings' jid='bob@localhost'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#subscribe_options</value></field><field var='pubsub#deliver'><value>1</value></field><field var='pubsub#digest'><value>0</value></field><field var='pubsub#include_body'><value>false</value></field></x></options></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='options2'/>`},
	{name: "ex 19 own subscriptions", from: "bob",
		request:  `<iq type='get' to='pubsub.localhost' id='subscriptions1'><pubsub xmlns='` + psNS + `'><subscriptions/></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='subscriptions1'><pubsub xmlns='` + psNS + `'><subscriptions><subscription node='princely_musings' jid='bob@localhost' subscription='subscribed' subid='*'/></subscriptions></pubsub></iq>`},
	{name: "ex 23 own affiliations", from: "alice",
		request:  `<iq type='get' to='pubsub.localhost' id='affil1'><pubsub xmlns='` + psNS + `'><affiliations/></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='affil1'><pubsub xmlns='` + psNS + `'><affiliations><affiliation node='princely_musings' affiliation='owner'/></affiliations></pubsub></iq>`},
	{name: "ex 115 retract with notify, ex 117 its notification", from: "alice",
		request:  `<iq type='set' to='pubsub.localhost' id='retract1'><pubsub xmlns='` + psNS + `'><retract node='princely_musings' notify='true'><item id='ae890ac52d0df67ed7cfdf51b644e901'/></retract></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='retract1'/>`,
		events:   []event{{"bob", `<message from='pubsub.localhost' to='bob@localhost'><event xmlns='` + psEvent + `'><items node='princely_musings'><retract id='ae890ac52d0df67ed7cfdf51b644e901'/></items></event></message>`}}},
	{name: "ex 119 retract a missing item", from: "alice",
		request:  `<iq type='set' to='pubsub.localhost' id='retract1'><pubsub xmlns='` + psNS + `'><retract node='princely_musings'><item id='ae890ac52d0df67ed7cfdf51b644e901'/></retract></pubsub></iq>`,
		response: `<iq type='error' from='pubsub.localhost' id='retract1'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
	{name: "ex 125 configuration form", from: "alice",
		request:  `<iq type='get' to='pubsub.localhost' id='config1'><pubsub xmlns='` + psOwner + `'><configure node='princely_musings'/></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='config1'><pubsub xmlns='` + psOwner + `'><configure node='princely_musings'><x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#title'><value>Princely Musings (Atom)</value></field><field var='pubsub#deliver_notifications' type='boolean'/><field var='pubsub#deliver_payloads' type='boolean'/><field var='pubsub#notify_config' type='boolean'/><field var='pubsub#notify_delete' type='boolean'/><field var='pubsub#notify_retract' type='boolean'/><field var='pubsub#persist_items' type='boolean'/><field var='pubsub#max_items'><value>10</value></field><field var='pubsub#access_model' type='list-single'><value>open</value></field><field var='pubsub#publish_model' type='list-single'/><field var='pubsub#send_last_published_item' type='list-single'/></x></configure></pubsub></iq>`},
	{name: "ex 126 configure as a non-owner", from: "bob",
		request:  `<iq type='get' to='pubsub.localhost' id='config1'><pubsub xmlns='` + psOwner + `'><configure node='princely_musings'/></pubsub></iq>`,
		response: `<iq type='error' from='pubsub.localhost' id='config1'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
	{name: "ex 130 submit a configuration with notify_config, ex 135 its notification", from: "alice",
		request:  `<iq type='set' to='pubsub.localhost' id='config2'><pubsub xmlns='` + psOwner + `'><configure node='princely_musings'>` + nodeConfigForm(`<field var='pubsub#notify_config'><value>1</value></field><field var='pubsub#deliver_payloads'><value>0</value></field>`) + `</configure></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='config2'/>`,
		events:   []event{{"bob", `<message from='pubsub.localhost' to='bob@localhost'><event xmlns='` + psEvent + `'><configuration node='princely_musings'/></event></message>`}}},
	{name: "ex 101 (deliver_payloads 0) a notification without payload", from: "alice",
		request:  `<iq type='set' to='pubsub.localhost' id='publish2'><pubsub xmlns='` + psNS + `'><publish node='princely_musings'><item id='second'>` + entry + `</item></publish></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='publish2'><pubsub xmlns='` + psNS + `'><publish node='princely_musings'><item id='second'/></publish></pubsub></iq>`,
		events:   []event{{"bob", `<message from='pubsub.localhost' to='bob@localhost'><event xmlns='` + psEvent + `'><items node='princely_musings'><item id='second'/></items></event></message>`}}},
	{name: "ex 145 default configuration", from: "alice",
		request:  `<iq type='get' to='pubsub.localhost' id='def1'><pubsub xmlns='` + psOwner + `'><default/></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='def1'><pubsub xmlns='` + psOwner + `'><default><x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field></x></default></pubsub></iq>`},
	{name: "ex 182 the node's subscriptions", from: "alice",
		request:  `<iq type='get' to='pubsub.localhost' id='subman1'><pubsub xmlns='` + psOwner + `'><subscriptions node='princely_musings'/></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='subman1'><pubsub xmlns='` + psOwner + `'><subscriptions node='princely_musings'><subscription jid='bob@localhost' subscription='subscribed'/></subscriptions></pubsub></iq>`},
	{name: "ex 197 modify affiliations", from: "alice",
		request:  `<iq type='set' to='pubsub.localhost' id='ent2'><pubsub xmlns='` + psOwner + `'><affiliations node='princely_musings'><affiliation jid='carol@localhost' affiliation='publisher'/></affiliations></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='ent2'/>`},
	{name: "ex 194 the node's affiliations", from: "alice",
		request:  `<iq type='get' to='pubsub.localhost' id='ent1'><pubsub xmlns='` + psOwner + `'><affiliations node='princely_musings'/></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='ent1'><pubsub xmlns='` + psOwner + `'><affiliations node='princely_musings'><affiliation jid='alice@localhost' affiliation='owner'/><affiliation jid='carol@localhost' affiliation='publisher'/></affiliations></pubsub></iq>`},
	{name: "ex 99 a publisher publishes", from: "carol",
		request:  `<iq type='set' to='pubsub.localhost' id='publish3'><pubsub xmlns='` + psNS + `'><publish node='princely_musings'><item id='third'>` + entry + `</item></publish></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='publish3'><pubsub xmlns='` + psNS + `'><publish node='princely_musings'><item id='third'/></publish></pubsub></iq>`,
		events:   []event{{"bob", `<message from='pubsub.localhost' to='bob@localhost'><event xmlns='` + psEvent + `'><items node='princely_musings'><item id='third' publisher='carol@localhost'/></items></event></message>`}}},
	{name: "ex 160 purge, ex 162 its notification", from: "alice",
		request:  `<iq type='set' to='pubsub.localhost' id='purge1'><pubsub xmlns='` + psOwner + `'><purge node='princely_musings'/></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='purge1'/>`,
		events:   []event{{"bob", `<message from='pubsub.localhost' to='bob@localhost'><event xmlns='` + psEvent + `'><purge node='princely_musings'/></event></message>`}}},
	{name: "ex 48 unsubscribe", from: "bob",
		request:  `<iq type='set' to='pubsub.localhost' id='unsub1'><pubsub xmlns='` + psNS + `'><unsubscribe node='princely_musings' jid='bob@localhost'/></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='unsub1'/>`},
	{name: "ex 53 unsubscribe when not subscribed", from: "bob",
		request:  `<iq type='set' to='pubsub.localhost' id='unsub1'><pubsub xmlns='` + psNS + `'><unsubscribe node='princely_musings' jid='bob@localhost'/></pubsub></iq>`,
		response: `<iq type='error' from='pubsub.localhost' id='unsub1'><error type='cancel'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><not-subscribed xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>`},
	{name: "ex 73 subscribe and configure", from: "bob",
		request:  `<iq type='set' to='pubsub.localhost' id='sub3'><pubsub xmlns='` + psNS + `'><subscribe node='princely_musings' jid='bob@localhost'/><options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#subscribe_options</value></field><field var='pubsub#deliver'><value>1</value></field></x></options></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='sub3'><pubsub xmlns='` + psNS + `'><subscription node='princely_musings' jid='bob@localhost' subscription='subscribed' subid='*'/></pubsub></iq>`},
	{name: "ex 153 delete with a redirect, ex 157 its notification", from: "alice",
		request:  `<iq type='set' to='pubsub.localhost' id='delete1'><pubsub xmlns='` + psOwner + `'><delete node='princely_musings'><redirect uri='xmpp:pubsub.localhost?;node=blog'/></delete></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='delete1'/>`,
		events:   []event{{"bob", `<message from='pubsub.localhost' to='bob@localhost'><event xmlns='` + psEvent + `'><delete node='princely_musings'><redirect uri='xmpp:pubsub.localhost?;node=blog'/></delete></event></message>`}}},
	// The authorize model (§6.1.4, §8.6).
	{name: "ex 131 create an authorize node", from: "alice",
		request:  `<iq type='set' to='pubsub.localhost' id='create4'><pubsub xmlns='` + psNS + `'><create node='elsinore'/><configure>` + nodeConfigForm(`<field var='pubsub#access_model'><value>authorize</value></field>`) + `</configure></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='create4'/>`},
	{name: "ex 37 subscription pending, ex 150 the owner's form", from: "bob",
		request:  `<iq type='set' to='pubsub.localhost' id='sub4'><pubsub xmlns='` + psNS + `'><subscribe node='elsinore' jid='bob@localhost'/></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='sub4'><pubsub xmlns='` + psNS + `'><subscription node='elsinore' jid='bob@localhost' subscription='pending'/></pubsub></iq>`,
		events:   []event{{"alice", `<message from='pubsub.localhost' to='alice@localhost'><x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#subscribe_authorization</value></field><field var='pubsub#node'><value>elsinore</value></field><field var='pubsub#subscriber_jid'><value>bob@localhost</value></field><field var='pubsub#allow' type='boolean'><value>0</value></field></x></message>`}}},
	{name: "ex 81 items of an authorize node before approval", from: "bob",
		request:  `<iq type='get' to='pubsub.localhost' id='items2'><pubsub xmlns='` + psNS + `'><items node='elsinore'/></pubsub></iq>`,
		response: `<iq type='error' from='pubsub.localhost' id='items2'><error type='auth'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><not-subscribed xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>`},
	{name: "ex 184 the owner approves through the subscriptions list", from: "alice",
		request:  `<iq type='set' to='pubsub.localhost' id='subman2'><pubsub xmlns='` + psOwner + `'><subscriptions node='elsinore'><subscription jid='bob@localhost' subscription='subscribed'/></subscriptions></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='subman2'/>`},
	{name: "ex 78 items after approval", from: "bob",
		request:  `<iq type='get' to='pubsub.localhost' id='items4'><pubsub xmlns='` + psNS + `'><items node='elsinore'/></pubsub></iq>`,
		response: `<iq type='result' from='pubsub.localhost' id='items4'><pubsub xmlns='` + psNS + `'><items node='elsinore'/></pubsub></iq>`},
}

// TestPubSubXEP0060Examples runs the examples of XEP-0060 against the
// real server, on both stores, with a raw client: the request as the
// XEP shows it, and the response and notifications it shows.
func TestPubSubXEP0060Examples(t *testing.T) {
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) {
			s := startServer(t, serverOpts{extra: driver.toml})
			clients := map[string]*xmlClient{}
			for _, u := range []string{"alice", "bob", "carol"} {
				s.addUser(u+"@localhost", "pw")
				clients[u] = loginXML(t, s, u+"@localhost", "desk")
			}
			// The service is listed in the server's disco#items.
			clients["alice"].raw.send(`<iq type='get' to='localhost' id='items0'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
			got := clients["alice"].next("the server's items", func(el *xmlstream.Element) bool { return el.Attr("id") == "items0" })
			if ok, why := matches(got, mustParse(t, `<iq type='result' from='localhost'><query xmlns='http://jabber.org/protocol/disco#items'><item jid='pubsub.localhost'/></query></iq>`)); !ok {
				t.Errorf("server disco#items: %s\n got %s", why, got)
			}
			for _, ex := range xep0060Examples {
				c := clients[ex.from]
				req := mustParse(t, ex.request)
				c.raw.send(ex.request)
				got := c.next("the answer to "+ex.name, func(el *xmlstream.Element) bool {
					return el.Name.Local == "iq" && el.Attr("id") == req.Attr("id") && el.Attr("from") == "pubsub.localhost"
				})
				if ok, why := matches(got, mustParse(t, ex.response)); !ok {
					t.Errorf("%s: %s\n got %s", ex.name, why, got)
					continue
				}
				for _, ev := range ex.events {
					want := mustParse(t, ev.want)
					got := clients[ev.who].next(ex.name+" notification", func(el *xmlstream.Element) bool {
						return el.Name.Local == "message" && el.Attr("from") == "pubsub.localhost"
					})
					if ok, why := matches(got, want); !ok {
						t.Errorf("%s: notification to %s: %s\n got %s", ex.name, ev.who, why, got)
					}
				}
			}
			// Nothing reached carol, who never subscribed.
			if !clients["carol"].quiet(300*time.Millisecond, func(el *xmlstream.Element) bool {
				return el.Name.Local == "message" && el.Attr("from") == "pubsub.localhost"
			}) {
				t.Errorf("carol got a notification: %v", clients["carol"].kept)
			}
		})
	}
}

// TestPubSubSlixmpp drives the pubsub service and a microblog with
// slixmpp's XEP-0060 plugin (clients/pubsub.py): two real clients,
// alice owning nodes and bob subscribing, on both stores.
func TestPubSubSlixmpp(t *testing.T) {
	needSlixmpp(t)
	for _, driver := range storeDrivers(t) {
		t.Run(driver.name, func(t *testing.T) {
			s := startServer(t, serverOpts{extra: driver.toml})
			s.addUser("alice@localhost", "pw")
			s.addUser("bob@localhost", "pw")
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			_, here, _, _ := runtime.Caller(0)
			cmd := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join(filepath.Dir(here), "clients", "pubsub.py"),
				"--port", portOf(s.starttls), "--cafile", s.cafile())
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			raw, err := cmd.Output()
			if err != nil {
				t.Fatalf("pubsub.py: %v\nstderr:\n%s", err, stderr.String())
			}
			var r struct {
				Steps map[string]any `json:"steps"`
				Error *string        `json:"error"`
			}
			if err := json.Unmarshal(bytes.TrimSpace(raw), &r); err != nil {
				t.Fatalf("pubsub.py printed %q: %v\nstderr:\n%s", raw, err, stderr.String())
			}
			if r.Error != nil {
				t.Fatalf("pubsub.py: %s\nsteps so far: %v\nstderr:\n%s", *r.Error, r.Steps, stderr.String())
			}
			want := map[string]string{
				"config_max_items":           "5",
				"title_after_configure":      "Daily news",
				"subscribe":                  "subscribed",
				"notified_item":              "first",
				"notified_title":             "Hello",
				"notified_retract":           "first",
				"publish_before_affiliation": "forbidden",
				"affiliations":               "[alice@localhost=owner bob@localhost=publisher]",
				"publish_as_publisher":       "result",
				"subscriptions":              "[bob@localhost=subscribed]",
				"authorize_subscribe":        "pending",
				"authorize_form":             "[http://jabber.org/protocol/pubsub#subscribe_authorization bob@localhost]",
				"authorize_outcome":          "subscribed",
				"authorize_items":            "[rules]",
				"microblog_read":             "[My first post]",
				"comments_read":              "[Nice post]",
				"notified_delete":            "news",
			}
			for k, v := range want {
				if got := fmt.Sprint(r.Steps[k]); got != v {
					t.Errorf("%s: %s, want %s", k, got, v)
				}
			}
			if driver.name != "sqlite" {
				return
			}
			// Sealed at rest (issue 16): nothing of the items and node
			// configurations still stored is in any file of the data
			// directory once the server has stopped.
			s.stop()
			markers := []string{"My first post", "Nice post", "Club rules", `"access_model"`}
			filepath.WalkDir(filepath.Join(s.dir, "data"), func(path string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				data, err := os.ReadFile(path)
				if err != nil {
					t.Error(err)
					return nil
				}
				for _, m := range markers {
					if bytes.Contains(data, []byte(m)) {
						t.Errorf("%q is in clear in %s", m, path)
					}
				}
				return nil
			})
		})
	}
}
