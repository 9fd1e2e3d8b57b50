package avatarconv

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"image"
	"image/png"
	"strconv"
	"strings"
	"testing"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/internal/modtest"
	"parley/modules/pep"
	"parley/modules/vcard"
)

const alice = "alice@x.org"

type env struct {
	t   *testing.T
	ctx context.Context
	h   *modtest.Host
	pep *pep.Module
	vc  *vcard.Module
	m   *Module
}

func newEnv(t *testing.T) *env {
	h := modtest.NewHost("x.org")
	h.AddUser(alice)
	h.AddUser("bob@x.org")
	p, v := pep.New(), vcard.New()
	mods := []module.Module{p, v}
	conv := New(mods)
	for _, m := range append(mods, conv) {
		if err := m.Start(h); err != nil {
			t.Fatal(err)
		}
	}
	return &env{t: t, ctx: context.Background(), h: h, pep: p, vc: v, m: conv}
}

// pngImage is a real w×h PNG, so that the size in the metadata is read
// from the image.
func pngImage(t *testing.T, w, h int) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sha(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

func parse(t *testing.T, s string) *xmlstream.Element {
	t.Helper()
	el, err := xmlstream.ParseElement([]byte(s), "")
	if err != nil {
		t.Fatalf("parsing %s: %v", s, err)
	}
	return el
}

func (e *env) setVCard(raw string) error {
	_, err := e.h.IQ(e.ctx, alice+"/a", "", "set", parse(e.t, raw))
	return err
}

func (e *env) publish(node, id string, payload *xmlstream.Element) {
	e.t.Helper()
	p := xmlstream.New(pep.NS, "pubsub")
	p.AddChild(xmlstream.New(pep.NS, "publish", "node", node).AddChild(xmlstream.New(pep.NS, "item", "id", id).AddChild(payload)))
	if _, err := e.h.IQ(e.ctx, alice+"/a", "", "set", p); err != nil {
		e.t.Fatalf("publishing to %s: %v", node, err)
	}
}

func (e *env) items(node string) []pep.Item {
	e.t.Helper()
	items, _, err := e.pep.ItemsOf(e.ctx, jid.MustParse(alice), node)
	if err != nil {
		e.t.Fatal(err)
	}
	return items
}

func (e *env) vcard() *xmlstream.Element {
	e.t.Helper()
	vc, _, err := e.vc.Load(e.ctx, jid.MustParse(alice))
	if err != nil {
		e.t.Fatal(err)
	}
	return vc
}

func vcardWithPhoto(typ, binval string) string {
	return `<vCard xmlns="vcard-temp"><FN>Alice</FN><PHOTO><TYPE>` + typ + `</TYPE><BINVAL>` + binval + `</BINVAL></PHOTO></vCard>`
}

func (e *env) hash() string {
	e.t.Helper()
	h, err := e.m.hashOf(e.ctx, jid.MustParse(alice))
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

func TestVCardPhotoBecomesPEPAvatar(t *testing.T) {
	e := newEnv(t)
	img := pngImage(t, 2, 3)
	// Line-wrapped base64, as vCard clients write it.
	b64 := base64.StdEncoding.EncodeToString(img)
	if err := e.setVCard(vcardWithPhoto("image/png", b64[:10]+"\n "+b64[10:])); err != nil {
		t.Fatal(err)
	}
	id := sha(img)
	data := e.items(nsData)
	if len(data) != 1 || data[0].ID != id || data[0].Payload.Text() != b64 {
		t.Fatalf("data items %+v", data)
	}
	md := e.items(nsMetadata)
	if len(md) != 1 || md[0].ID != id {
		t.Fatalf("metadata items %+v", md)
	}
	info := md[0].Payload.Child(nsMetadata, "info")
	want := map[string]string{"id": id, "type": "image/png", "bytes": strconv.Itoa(len(img)), "width": "2", "height": "3"}
	for k, v := range want {
		if info.Attr(k) != v {
			t.Errorf("info %s = %q, want %q", k, info.Attr(k), v)
		}
	}
	if h := e.hash(); h != id {
		t.Errorf("presence hash %q, want %q", h, id)
	}
	// The same photo again (a client saving its whole vCard) publishes
	// nothing: a marker put in the metadata stays.
	marked := metadataPayload(photo{typ: "image/png", data: img})
	marked.FirstElement().SetAttr("marker", "1")
	if err := e.pep.PublishItem(e.ctx, jid.MustParse(alice), nsMetadata, id, marked); err != nil {
		t.Fatal(err)
	}
	if err := e.setVCard(vcardWithPhoto("image/png", b64)); err != nil {
		t.Fatal(err)
	}
	if md := e.items(nsMetadata); md[0].Payload.FirstElement().Attr("marker") != "1" {
		t.Errorf("the same photo was published again: %s", md[0].Payload)
	}
}

func TestUnknownImageHasNoSize(t *testing.T) {
	e := newEnv(t)
	img := []byte("not really an image")
	if err := e.setVCard(`<vCard xmlns="vcard-temp"><PHOTO><BINVAL>` + base64.StdEncoding.EncodeToString(img) + `</BINVAL></PHOTO></vCard>`); err != nil {
		t.Fatal(err)
	}
	info := e.items(nsMetadata)[0].Payload.Child(nsMetadata, "info")
	if info.Attr("width") != "" || info.Attr("height") != "" || info.Attr("type") == "" || info.Attr("id") != sha(img) {
		t.Errorf("info %s", info)
	}
}

func TestPEPAvatarBecomesVCardPhoto(t *testing.T) {
	e := newEnv(t)
	if err := e.setVCard(`<vCard xmlns="vcard-temp"><FN>Alice</FN><NICKNAME>al</NICKNAME></vCard>`); err != nil {
		t.Fatal(err)
	}
	img := pngImage(t, 4, 4)
	id := sha(img)
	e.publish(nsData, id, dataPayload(photo{data: img}))
	md := parse(t, `<metadata xmlns="urn:xmpp:avatar:metadata"><info id="`+sha([]byte("elsewhere"))+`" url="https://x.org/a.png" type="image/png" bytes="9"/>`+
		`<info id="`+id+`" type="image/png" bytes="`+strconv.Itoa(len(img))+`"/></metadata>`)
	e.publish(nsMetadata, id, md)
	md = parse(t, md.String())
	p, ok, err := photoOf(e.vcard())
	if err != nil || !ok || sha(p.data) != id || p.typ != "image/png" {
		t.Fatalf("vCard photo %v %v %v", p, ok, err)
	}
	if fn := e.vcard().Child(vcard.NS, "FN"); fn == nil || fn.Text() != "Alice" {
		t.Errorf("the rest of the vCard was lost: %s", e.vcard())
	}
	// No loop: the conversion wrote the vCard without converting it
	// back, which would have replaced the client's metadata.
	if got := e.items(nsMetadata); len(got) != 1 || got[0].Payload.String() != md.String() {
		t.Errorf("metadata %+v", got)
	}
	if h := e.hash(); h != id {
		t.Errorf("presence hash %q, want %q", h, id)
	}

	// Empty metadata disables the avatar: the photo goes.
	e.publish(nsMetadata, "none", xmlstream.New(nsMetadata, "metadata"))
	if _, ok, _ := photoOf(e.vcard()); ok {
		t.Errorf("photo kept after the avatar was disabled: %s", e.vcard())
	}
	if h := e.hash(); h != "" {
		t.Errorf("presence hash %q after the avatar was disabled", h)
	}
}

func TestPEPAvatarWithoutVCard(t *testing.T) {
	e := newEnv(t)
	img := pngImage(t, 1, 1)
	id := sha(img)
	e.publish(nsData, id, dataPayload(photo{data: img}))
	e.publish(nsMetadata, id, metadataPayload(photo{typ: "image/png", data: img}))
	if p, ok, _ := photoOf(e.vcard()); !ok || p.id() != id {
		t.Fatalf("no vCard photo: %v", e.vcard())
	}
	// Retracting the metadata item removes the photo; the vCard, now
	// empty, is deleted.
	r := xmlstream.New(pep.NS, "pubsub").AddChild(xmlstream.New(pep.NS, "retract", "node", nsMetadata).AddChild(xmlstream.New(pep.NS, "item", "id", id)))
	if _, err := e.h.IQ(e.ctx, alice+"/a", "", "set", r); err != nil {
		t.Fatal(err)
	}
	if vc := e.vcard(); vc != nil {
		t.Errorf("vCard left after the avatar was retracted: %s", vc)
	}
}

func TestBadPEPAvatarRemovesPhoto(t *testing.T) {
	for _, tc := range []struct {
		name string
		data func(img []byte) (id string, payload *xmlstream.Element)
	}{
		{"hash mismatch", func(img []byte) (string, *xmlstream.Element) {
			return sha([]byte("other")), dataPayload(photo{data: img})
		}},
		{"not base64", func(img []byte) (string, *xmlstream.Element) {
			return sha(img), xmlstream.New(nsData, "data").AddText("!!!")
		}},
		{"no data item", func(img []byte) (string, *xmlstream.Element) { return sha(img), nil }},
		{"too large for a vCard", func([]byte) (string, *xmlstream.Element) {
			big := bytes.Repeat([]byte{7}, vcard.MaxBytes)
			return sha(big), dataPayload(photo{data: big})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			old := pngImage(t, 1, 1)
			if err := e.setVCard(vcardWithPhoto("image/png", base64.StdEncoding.EncodeToString(old))); err != nil {
				t.Fatal(err)
			}
			id, payload := tc.data(pngImage(t, 5, 5))
			if payload != nil {
				e.publish(nsData, id, payload)
			}
			e.publish(nsMetadata, id, parse(t, `<metadata xmlns="urn:xmpp:avatar:metadata"><info id="`+id+`" type="image/png" bytes="1"/></metadata>`))
			vc := e.vcard()
			if _, ok, _ := photoOf(vc); ok {
				t.Errorf("stale photo kept: %s", vc)
			}
			if vc == nil || vc.Child(vcard.NS, "FN") == nil {
				t.Errorf("the rest of the vCard was lost: %v", vc)
			}
			if !strings.Contains(e.h.Logs(), "avatar") {
				t.Errorf("nothing logged: %s", e.h.Logs())
			}
		})
	}
}

func TestBadVCardsAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name, vcard, cond string
	}{
		{"malformed BINVAL", vcardWithPhoto("image/png", "@@not base64@@"), "bad-request"},
		{"oversized photo", vcardWithPhoto("image/png", strings.Repeat("QUFB", vcard.MaxBytes/4+1)), "not-acceptable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			err := e.setVCard(tc.vcard)
			var se *stanza.Error
			if !errors.As(err, &se) || se.Condition != tc.cond {
				t.Fatalf("error %v, want %s", err, tc.cond)
			}
			if vc := e.vcard(); vc != nil {
				t.Errorf("stored %s", vc)
			}
			if _, exists, _ := e.pep.ItemsOf(e.ctx, jid.MustParse(alice), nsData); exists {
				t.Errorf("avatar data published")
			}
		})
	}
}

func TestStamp(t *testing.T) {
	const x = `<x xmlns="vcard-temp:x:update">`
	for _, tc := range []struct{ name, in, hash, want string }{
		{"none sent", `<presence xmlns="jabber:client"><show>away</show></presence>`, "ab",
			`<presence xmlns="jabber:client"><show>away</show>` + x + `<photo>ab</photo></x></presence>`},
		{"no avatar", `<presence xmlns="jabber:client"/>`, "", `<presence xmlns="jabber:client">` + x + `<photo></photo></x></presence>`},
		{"empty x replaced", `<presence xmlns="jabber:client">` + x + `</x><status>hi</status></presence>`, "ab",
			`<presence xmlns="jabber:client"><status>hi</status>` + x + `<photo>ab</photo></x></presence>`},
		{"other hash replaced", `<presence xmlns="jabber:client">` + x + `<photo>cd</photo></x></presence>`, "ab",
			`<presence xmlns="jabber:client">` + x + `<photo>ab</photo></x></presence>`},
		{"client's empty photo kept", `<presence xmlns="jabber:client">` + x + `<photo/></x></presence>`, "ab",
			`<presence xmlns="jabber:client">` + x + `<photo></photo></x></presence>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			el := parse(t, tc.in)
			stamp(el, tc.hash)
			if got, want := el.String(), parse(t, tc.want).String(); got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestHookStampsAvailablePresenceOnly(t *testing.T) {
	e := newEnv(t)
	img := pngImage(t, 1, 1)
	if err := e.setVCard(vcardWithPhoto("image/png", base64.StdEncoding.EncodeToString(img))); err != nil {
		t.Fatal(err)
	}
	s := e.h.Connect(e.ctx, alice+"/a")
	from := jid.MustParse(alice + "/a")
	avail := parse(t, `<presence xmlns="jabber:client"/>`)
	e.h.RunOutboundPresence(e.ctx, from, avail)
	if p := avail.Child(nsUpdate, "x"); p == nil || p.Child(nsUpdate, "photo").Text() != sha(img) {
		t.Errorf("not stamped: %s", avail)
	}
	p := parse(t, `<presence xmlns="jabber:client" type="unavailable"/>`)
	e.h.RunOutboundPresence(e.ctx, from, p)
	if p.FirstElement() != nil {
		t.Errorf("unavailable presence stamped: %s", p)
	}
	// Presence from elsewhere is not ours to stamp.
	in := parse(t, `<presence xmlns="jabber:client"/>`)
	e.h.RunOutboundPresence(e.ctx, jid.MustParse("carol@remote.org/r"), in)
	if in.FirstElement() != nil {
		t.Errorf("remote presence stamped: %s", in)
	}
	// No filter edits presence any more: the router would skip the
	// account's own resources.
	other := parse(t, `<presence xmlns="jabber:client"/>`)
	e.h.Filter(e.ctx, from, jid.MustParse("bob@x.org"), other)
	if other.FirstElement() != nil {
		t.Errorf("a filter stamped presence: %s", other)
	}
	// The cached hash goes with the last session.
	e.h.Disconnect(e.ctx, s)
	if _, ok := e.m.hashes.get(jid.MustParse(alice)); ok {
		t.Error("hash still cached after the last session ended")
	}
}

func TestStartNeedsPeers(t *testing.T) {
	if err := New(nil).Start(modtest.NewHost("x.org")); err == nil {
		t.Error("started without pep and vcard")
	}
}

func TestFeature(t *testing.T) {
	e := newEnv(t)
	found := false
	for _, f := range e.h.Features(module.Account) {
		found = found || f == Feature
	}
	if !found {
		t.Errorf("%s not advertised", Feature)
	}
}
