package xmlstream

import (
	"slices"
	"strings"
	"testing"
)

func TestNewPanicsOnOddAttrs(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New with odd attrs did not panic")
		}
	}()
	New("", "a", "x")
}

func TestAttrAccessors(t *testing.T) {
	e := New(nsClient, "message", "to", "a@b", "type", "chat")
	elNS(e, NSXML, "lang", "en")
	elNS(e, "urn:x", "to", "other")
	tests := []struct {
		name        string
		space, attr string
		want        string
		ok          bool
	}{
		{"unprefixed", "", "to", "a@b", true},
		{"namespaced same local", "urn:x", "to", "other", true},
		{"xml:lang", NSXML, "lang", "en", true},
		{"absent", "", "id", "", false},
		{"namespaced absent", "urn:y", "to", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := e.AttrNS(tc.space, tc.attr)
			if v != tc.want || ok != tc.ok {
				t.Errorf("AttrNS = %q, %v; want %q, %v", v, ok, tc.want, tc.ok)
			}
			if tc.space == "" && e.Attr(tc.attr) != tc.want {
				t.Errorf("Attr = %q, want %q", e.Attr(tc.attr), tc.want)
			}
		})
	}
	if e.Attr("lang") != "" {
		t.Error("Attr found a namespaced attribute")
	}
}

func TestSetRemoveAttr(t *testing.T) {
	tests := []struct {
		name string
		op   func(*Element)
		want []Attr
	}{
		{"set new", func(e *Element) { e.SetAttr("id", "1") },
			[]Attr{{Name{"", "to"}, "a"}, {Name{"urn:x", "type"}, "n"}, {Name{"", "type"}, "chat"}, {Name{"", "id"}, "1"}}},
		{"replace keeps position", func(e *Element) { e.SetAttr("to", "b") },
			[]Attr{{Name{"", "to"}, "b"}, {Name{"urn:x", "type"}, "n"}, {Name{"", "type"}, "chat"}}},
		{"replace skips namespaced", func(e *Element) { e.SetAttr("type", "normal") },
			[]Attr{{Name{"", "to"}, "a"}, {Name{"urn:x", "type"}, "n"}, {Name{"", "type"}, "normal"}}},
		{"remove", func(e *Element) { e.RemoveAttr("to") },
			[]Attr{{Name{"urn:x", "type"}, "n"}, {Name{"", "type"}, "chat"}}},
		{"remove keeps namespaced", func(e *Element) { e.RemoveAttr("type") },
			[]Attr{{Name{"", "to"}, "a"}, {Name{"urn:x", "type"}, "n"}}},
		{"remove absent", func(e *Element) { e.RemoveAttr("nope") },
			[]Attr{{Name{"", "to"}, "a"}, {Name{"urn:x", "type"}, "n"}, {Name{"", "type"}, "chat"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := New(nsClient, "m", "to", "a")
			elNS(e, "urn:x", "type", "n")
			e.SetAttr("type", "chat")
			tc.op(e)
			if !slices.Equal(e.Attrs, tc.want) {
				t.Errorf("Attrs = %v, want %v", e.Attrs, tc.want)
			}
		})
	}
}

// TestDecodedAttrsIndependent checks that growing the attributes of one
// decoded element cannot overwrite another's (they share one allocation).
func TestDecodedAttrsIndependent(t *testing.T) {
	res := decodeAll(strings.NewReader(hdr+`<a x='1'><b y='2'/></a>`), Limits{})
	a := res.elems[0]
	b := a.FirstElement()
	a.SetAttr("z", "3")
	a.Children = append(a.Children, Node{Text: "t"})
	if b.Attrs[0].Value != "2" || len(b.Attrs) != 1 {
		t.Fatalf("sibling attributes changed: %v", b.Attrs)
	}
	if b.Attr("y") != "2" || a.Attr("z") != "3" {
		t.Fatal("SetAttr lost")
	}
}

func TestChildren(t *testing.T) {
	body := New(nsClient, "body").AddText("hi")
	thread := New(nsClient, "thread")
	x := New("urn:x", "body")
	e := New(nsClient, "message").AddText(" ").AddChild(x).AddChild(body).AddText("a").AddText("b").AddChild(thread)
	tests := []struct {
		name string
		got  *Element
		want *Element
	}{
		{"child by name", e.Child(nsClient, "body"), body},
		{"child namespace matters", e.Child("urn:x", "body"), x},
		{"child absent", e.Child(nsClient, "subject"), nil},
		{"first element skips text", e.FirstElement(), x},
		{"first element of leaf", body.FirstElement(), nil},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %p, want %p", tc.name, tc.got, tc.want)
		}
	}
	var names []string
	for c := range e.Elements() {
		names = append(names, c.Name.Space+" "+c.Name.Local)
	}
	if want := []string{"urn:x body", nsClient + " body", nsClient + " thread"}; !slices.Equal(names, want) {
		t.Errorf("Elements = %v, want %v", names, want)
	}
	for c := range e.Elements() {
		if c != x {
			t.Error("Elements did not stop when asked")
		}
		break
	}
	if got := e.Text(); got != " ab" {
		t.Errorf("Text = %q, want %q (AddText merges adjacent text)", got, " ab")
	}
	if len(e.Children) != 5 {
		t.Errorf("%d children, want 5", len(e.Children))
	}
	if body.Text() != "hi" || thread.Text() != "" {
		t.Error("Text of leaf wrong")
	}
	if New("", "a").AddText("").Children != nil {
		t.Error("AddText(\"\") added a node")
	}
}

func TestCopyIsDeep(t *testing.T) {
	orig := New(nsClient, "message", "to", "a").AddChild(New(nsClient, "body").AddText("x"))
	c := orig.Copy()
	if !equalElem(orig, c) {
		t.Fatalf("copy differs: %s vs %s", dump(c), dump(orig))
	}
	c.SetAttr("to", "b")
	c.FirstElement().AddText("y")
	c.FirstElement().Name.Local = "subject"
	c.AddChild(New("", "z"))
	if orig.Attr("to") != "a" || orig.FirstElement().Text() != "x" || orig.FirstElement().Name.Local != "body" || len(orig.Children) != 1 {
		t.Errorf("original changed: %s", dump(orig))
	}
}

func TestAppend(t *testing.T) {
	tests := []struct {
		name     string
		e        *Element
		parentNS string
		want     string
	}{
		{"empty no namespace", New("", "a"), "", `<a/>`},
		{"namespace in force", New(nsClient, "presence"), nsClient, `<presence/>`},
		{"namespace differs", New(nsClient, "presence"), "", `<presence xmlns="jabber:client"/>`},
		{"empty namespace under default", New("", "x"), nsClient, `<x xmlns=""/>`},
		{"children inherit", New(nsClient, "message", "to", "a@b").AddChild(New(nsClient, "body").AddText("hi")).
			AddChild(New("urn:x", "x").AddChild(New("urn:x", "y"))), nsClient,
			`<message to="a@b"><body>hi</body><x xmlns="urn:x"><y/></x></message>`},
		{"text escaping", New("", "a").AddText(`<&>"' ]]>` + "\r\n\t"), "", "<a>&lt;&amp;&gt;\"' ]]&gt;&#xD;\n\t</a>"},
		{"attr escaping", New("", "a", "v", "<&>\"'\r\n\t"), "", `<a v="&lt;&amp;>&quot;'&#xD;&#xA;&#x9;"/>`},
		{"xml:lang", elNS(New(nsClient, "m"), NSXML, "lang", "en"), nsClient, `<m xml:lang="en"/>`},
		{"generated prefixes", elNS(elNS(elNS(New("", "m"), "urn:a", "x", "1"), "urn:b", "y", "2"), "urn:a", "z", "3"), "",
			`<m xmlns:p1="urn:a" p1:x="1" xmlns:p2="urn:b" p2:y="2" p1:z="3"/>`},
		{"invalid characters replaced", New("", "a", "v", "\x00\xff").AddText("\x01\uFFFE\xc3"), "", "<a v=\"\uFFFD\uFFFD\">\uFFFD\uFFFD\uFFFD</a>"},
		{"non-ASCII kept", New("urn:ü", "é", "ñ", "日本").AddText("\U0001F600"), "", `<é xmlns="urn:ü" ñ="日本">` + "\U0001F600</é>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := string(tc.e.Append([]byte("prefix|"), tc.parentNS))
			if got != "prefix|"+tc.want {
				t.Errorf("Append =\n %q\nwant\n %q", got, "prefix|"+tc.want)
			}
			if tc.parentNS == "" && tc.e.String() != tc.want {
				t.Errorf("String = %q", tc.e.String())
			}
		})
	}
}

// reparse decodes s as the single stanza of a stream whose default
// namespace is ns.
func reparse(s, ns string) (*Element, error) {
	d := NewDecoder(strings.NewReader(`<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='`+ns+`'>`+s), Limits{})
	if _, err := d.ReadHeader(); err != nil {
		return nil, err
	}
	return d.Next()
}

func TestAppendRoundTrip(t *testing.T) {
	for _, tc := range parseCases {
		res := decodeAll(strings.NewReader(hdr+tc.in), Limits{})
		for _, e := range res.elems {
			for _, ns := range []string{nsClient, ""} {
				out := string(e.Append(nil, ns))
				back, err := reparse(out, ns)
				if err != nil || !equalElem(e, back) {
					t.Errorf("%s: %q re-parsed as %s, %v; want %s", tc.name, out, dump(back), err, dump(e))
				}
			}
		}
	}
	built := elNS(New(nsClient, "m", "a", "x\r\ny\tz"), "urn:p", "a", "1").
		AddChild(elNS(New("", "c"), "urn:p", "b", "2").AddText("\r\n")).AddText("]]>&")
	back, err := reparse(built.String(), "")
	if err != nil || !equalElem(built, back) {
		t.Errorf("built element re-parsed as %s, %v", dump(back), err)
	}
}

func TestParseElement(t *testing.T) {
	orig := New("jabber:client", "presence", "from", "a@b", "type", "subscribe")
	orig.AddChild(New("jabber:client", "status").AddText("hi & <bye>"))
	orig.AddChild(New("urn:x", "x", "k", "v"))
	got, err := ParseElement(orig.Append(nil, "jabber:client"), "jabber:client")
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != orig.String() {
		t.Fatalf("round trip: %s != %s", got, orig)
	}
	for _, bad := range []string{"", "<a/><b/>", "<a>", "text", "<a></b>"} {
		if _, err := ParseElement([]byte(bad), "jabber:client"); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
