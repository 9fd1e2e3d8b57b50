package xmlstream

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

const fuzzHdr = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`

var fuzzSeeds = []string{
	`<message from='juliet@example.com/balcony' to='romeo@example.net' type='chat' xml:lang='en'><body>Wherefore art thou, Romeo?</body><thread>e0ffe42b</thread></message>`,
	`<presence><show>away</show><status>a &amp; b &#x263A;</status><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/></presence>`,
	`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>`,
	`<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`,
	`<a><![CDATA[<x>]]>y</a> <b/></stream:stream>`,
	`<p:a xmlns:p='urn:p' p:x='1' y="2"><p:b/></p:a>`,
	"<a x='1\t2\r\n3'>\r\n</a>",
}

// refResult is what encoding/xml makes of the stream.
type refResult struct {
	elems []*Element
	end   bool  // saw the stream end tag
	err   error // first error, if any
}

// refDecode runs encoding/xml (strict, with namespace translation) over
// the stream and converts each top-level element to our model.
func refDecode(in string) refResult {
	var res refResult
	d := xml.NewDecoder(strings.NewReader(in))
	if _, err := d.Token(); err != nil {
		res.err = err
		return res
	}
	var stack []*Element
	for {
		tok, err := d.Token()
		if err != nil {
			res.err = err
			return res
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := &Element{Name: Name(tok.Name)}
			for _, a := range tok.Attr {
				if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
					continue
				}
				e.Attrs = append(e.Attrs, Attr{Name: Name(a.Name), Value: a.Value})
			}
			if len(stack) > 0 {
				stack[len(stack)-1].AddChild(e)
			}
			stack = append(stack, e)
		case xml.EndElement:
			if len(stack) == 0 {
				res.end = true
				return res
			}
			if len(stack) == 1 {
				res.elems = append(res.elems, stack[0])
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].AddText(string(tok))
			}
		}
	}
}

// normalized renders a tree for comparison with encoding/xml, papering
// over two of its deviations from XML 1.0 and Namespaces in XML:
//   - it does not apply attribute-value normalization, so whitespace
//     characters in attribute values (and so in namespace names) are
//     compared as spaces;
//   - it never applies the default namespace to an element named "xmlns"
//     (its translate treats that local name like the xmlns attribute), so
//     the namespace of such elements is not compared.
func normalized(e *Element) string {
	ws := strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")
	var walk func(*Element) *Element
	walk = func(e *Element) *Element {
		c := &Element{Name: Name{ws.Replace(e.Name.Space), e.Name.Local}}
		if e.Name.Local == "xmlns" {
			c.Name.Space = "(not compared)"
		}
		for _, a := range e.Attrs {
			if a.Name.Space == "xmlns" {
				continue // see refDecode: such names are indistinguishable there
			}
			c.Attrs = append(c.Attrs, Attr{Name{ws.Replace(a.Name.Space), a.Name.Local}, ws.Replace(a.Value)})
		}
		for _, n := range e.Children {
			if n.Elem != nil {
				c.AddChild(walk(n.Elem))
			} else {
				c.AddText(n.Text)
			}
		}
		return c
	}
	return dump(walk(e))
}

func hasNonASCIIName(e *Element) bool {
	isASCII := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				return false
			}
		}
		return true
	}
	if !isASCII(e.Name.Local) {
		return true
	}
	for _, a := range e.Attrs {
		if !isASCII(a.Name.Local) {
			return true
		}
	}
	for c := range e.Elements() {
		if hasNonASCIIName(c) {
			return true
		}
	}
	return false
}

// knownStricter reports whether err is one of the rules we enforce and
// encoding/xml deliberately or mistakenly does not:
//   - namespace well-formedness (encoding/xml documents that Strict does
//     not enforce the Namespaces in XML rules);
//   - whitespace between attributes and unique attribute names (XML 1.0
//     §3.1, not checked by encoding/xml);
//   - character data between stanzas (an XMPP rule, RFC 6120 §11.7);
//   - character references to surrogates, which encoding/xml turns into
//     U+FFFD although XML 1.0 §4.1 requires a legal Char;
//   - names with non-ASCII characters, where encoding/xml uses the older
//     XML 1.0 4th edition tables and we use the 5th edition ones.
func knownStricter(err *Error, in string) bool {
	switch {
	case strings.HasPrefix(err.Text, txtNSPrefix),
		err.Text == txtAttrSpace, err.Text == txtDupAttr,
		err.Text == txtStreamText, err.Text == txtSurrogateRef:
		return true
	case err.Text == txtBadName:
		for i := 0; i < len(in); i++ {
			if in[i] >= utf8.RuneSelf {
				return true
			}
		}
	}
	return false
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	for _, tc := range parseCases {
		f.Add([]byte(tc.in))
	}
	for _, tc := range errorCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := fuzzHdr + string(data)
		ours := decodeAll(strings.NewReader(in), Limits{})
		if ours.err == nil {
			t.Fatal("decodeAll ended without error")
		}
		if bytewise := decodeAll(iotest.OneByteReader(strings.NewReader(in)), Limits{}); !sameResult(ours, bytewise) {
			t.Fatalf("byte-at-a-time result differs: %v vs %v", bytewise.err, ours.err)
		}
		ref := refDecode(in)

		// Everything we accept, encoding/xml must accept identically.
		for i, e := range ours.elems {
			if i >= len(ref.elems) {
				if ref.err != nil && strings.Contains(ref.err.Error(), "invalid XML name") && hasNonASCIIName(e) {
					return // 5th edition name characters; see knownStricter
				}
				t.Fatalf("we accepted stanza %d %s; encoding/xml: %v (end %v)", i, dump(e), ref.err, ref.end)
			}
			if got, want := normalized(e), normalized(ref.elems[i]); got != want {
				t.Fatalf("stanza %d differs:\n ours %s\n  ref %s", i, got, want)
			}
		}
		n := len(ours.elems)
		switch {
		case ours.err == ErrStreamEnd:
			if !ref.end || len(ref.elems) != n {
				t.Fatalf("we saw the stream end after %d stanzas; encoding/xml: %d stanzas, end %v, err %v", n, len(ref.elems), ref.end, ref.err)
			}
		case condition(ours.err) == CondNotWellFormed:
			var xe *Error
			errors.As(ours.err, &xe)
			if knownStricter(xe, in) {
				return
			}
			if ref.err == nil || len(ref.elems) > n || errors.Is(ref.err, io.EOF) {
				t.Fatalf("we rejected stanza %d (%v); encoding/xml accepted it: %d stanzas, end %v, err %v", n, ours.err, len(ref.elems), ref.end, ref.err)
			}
		}
	})
}

// sanitized is what Append promises to write for s: characters XML cannot
// carry become U+FFFD, one per invalid byte.
func sanitized(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || !isChar(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
		i += n
	}
	return b.String()
}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, "text <&>\r\n", "v\t'\"")
	}
	f.Add(`<a xmlns:p='urn:p' p:x='&#xA;'>]]&gt;</a>`, "\x00\xff", "\uFFFE")
	f.Fuzz(func(t *testing.T, stanza, text, attr string) {
		// A decoded stanza survives serialization under any parent
		// namespace, and serialization is stable.
		if e, err := reparse(stanza, nsClient); err == nil {
			for _, ns := range []string{nsClient, "", "urn:other"} {
				out := e.Append(nil, ns)
				back, err := reparse(string(out), ns)
				if err != nil || !equalElem(e, back) {
					t.Fatalf("parent %q: %q re-parsed as %s, %v; want %s", ns, out, dump(back), err, dump(e))
				}
				if again := back.Append(nil, ns); string(again) != string(out) {
					t.Fatalf("serialization not stable: %q then %q", out, again)
				}
			}
		}
		// A built tree with arbitrary strings round-trips to its sanitized
		// form.
		build := func(text, attr string) *Element {
			c := New("", "c")
			c.Attrs = append(c.Attrs, Attr{Name{"urn:f", "a"}, attr}, Attr{Name{NSXML, "lang"}, text})
			return New("urn:f", "e", "a", attr).AddText(text).AddChild(c).AddText(attr)
		}
		want := build(sanitized(text), sanitized(attr))
		out := build(text, attr).String()
		back, err := reparse(out, nsClient)
		if err != nil || !equalElem(want, back) {
			t.Fatalf("%q re-parsed as %s, %v; want %s", out, dump(back), err, dump(want))
		}
	})
}
