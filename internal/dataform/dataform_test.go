package dataform

import (
	"strings"
	"testing"

	"parley/internal/xmlstream"
)

func mustParse(t *testing.T, s string) *xmlstream.Element {
	t.Helper()
	el, err := xmlstream.ParseElement([]byte(s), "")
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func TestBuildAndParse(t *testing.T) {
	f := New(TypeForm, MUCRoomConfig)
	f.Title = "Configuration"
	f.Add("muc#roomconfig_roomname", "Name", "Coven")
	f.AddBool("muc#roomconfig_persistentroom", "Persistent", true)
	f.Add("muc#roomconfig_maxusers", "Max", "20").AddOption("20", "20").AddOption("none", "none")
	f.Add("muc#roomconfig_whois", "Whois", "anyone")
	x := f.Element()
	if err := Validate(x); err != nil {
		t.Fatalf("a form built from the registry does not validate: %v\n%s", err, x)
	}
	back, err := Parse(mustParse(t, x.String()))
	if err != nil {
		t.Fatal(err)
	}
	if back.Type != TypeForm || back.FormType != MUCRoomConfig || back.Title != "Configuration" {
		t.Errorf("parsed header: %+v", back)
	}
	if b, ok, err := back.Bool("muc#roomconfig_persistentroom"); !b || !ok || err != nil {
		t.Errorf("Bool = %v %v %v", b, ok, err)
	}
	if got := back.Field("muc#roomconfig_whois"); got.Type != ListSingle || len(got.Options) != 2 || got.Value() != "anyone" {
		t.Errorf("whois: %+v", got)
	}
	if back.Value("absent") != "" || back.Has("absent") {
		t.Error("an absent field has a value")
	}
	// A submitted answer names fields only.
	sub := New(TypeSubmit, MUCRoomConfig)
	sub.Add("muc#roomconfig_roomname", "Name", "x")
	if s := sub.Element().String(); strings.Contains(s, "type=\"text-single\"") || strings.Contains(s, "label") {
		t.Errorf("submitted form carries types or labels: %s", s)
	}
}

func TestAddUnregisteredPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("an unregistered field was added")
		}
	}()
	New(TypeForm, MUCRoomConfig).Add("muc#roomconfig_nonsense", "")
}

func TestValidateFindsWhatTypedClientsReject(t *testing.T) {
	for name, x := range map[string]string{
		"wrong type":        `<field var='muc#roomconfig_maxusers' type='text-single'><value>none</value></field>`,
		"list without opts": `<field var='muc#roomconfig_whois' type='list-single'><value>anyone</value></field>`,
		"value not offered": `<field var='muc#roomconfig_whois' type='list-single'><option><value>moderators</value></option><value>anyone</value></field>`,
		"unregistered opt":  `<field var='muc#roomconfig_whois' type='list-single'><option><value>everyone</value></option><value>everyone</value></field>`,
		"unregistered var":  `<field var='muc#roomconfig_colour' type='text-single'/>`,
		"bad boolean":       `<field var='muc#roomconfig_publicroom' type='boolean'><value>yes</value></field>`,
		"two values":        `<field var='muc#roomconfig_roomname' type='text-single'><value>a</value><value>b</value></field>`,
		"bad jid":           `<field var='muc#roomconfig_roomadmins' type='jid-multi'><value>@@</value></field>`,
		"no var":            `<field type='text-single'/>`,
	} {
		x := mustParse(t, `<x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='hidden'><value>`+MUCRoomConfig+`</value></field>`+
			strings.ReplaceAll(x, "<field", "<field xmlns='jabber:x:data'")+`</x>`)
		if err := Validate(x); err == nil {
			t.Errorf("%s: accepted %s", name, x)
		}
	}
	ok := mustParse(t, `<x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='hidden'><value>`+MUCRoomConfig+`</value></field>`+
		`<field var='x-parley#thing' type='text-single'/><field var='muc#roomconfig_roomname'/></x>`)
	if err := Validate(ok); err != nil {
		t.Errorf("x- field and default type refused: %v", err)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, s := range []string{
		`<x xmlns='jabber:x:data' type='nonsense'/>`,
		`<y xmlns='jabber:x:data'/>`,
		`<x xmlns='jabber:x:data'><field var='a'/><field var='a'/></x>`,
	} {
		if _, err := Parse(mustParse(t, s)); err == nil {
			t.Errorf("accepted %s", s)
		}
	}
	f, err := Parse(mustParse(t, `<x xmlns='jabber:x:data'><field var='FORM_TYPE'><value> urn:xmpp:mam:2 </value></field></x>`))
	if err != nil || f.Type != TypeSubmit || f.FormType != MAM2 {
		t.Errorf("untyped form: %+v %v", f, err)
	}
}
