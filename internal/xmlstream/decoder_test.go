package xmlstream

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

var parseCases = []struct {
	name string
	in   string // after hdr
	want []*Element
}{
	{"message with body", `<message to='juliet@example.com' type='chat'><body>Hi</body></message>`,
		[]*Element{el(nsClient, "message", "to", "juliet@example.com", "type", "chat").AddChild(el(nsClient, "body").AddText("Hi"))}},
	{"self-closing", `<presence/>`, []*Element{el(nsClient, "presence")}},
	{"self-closing with space", `<presence />`, []*Element{el(nsClient, "presence")}},
	{"child default namespace", `<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>`,
		[]*Element{el(nsClient, "iq", "type", "get", "id", "1").AddChild(el("jabber:iq:roster", "query"))}},
	{"prefixes", `<message><x:foo xmlns:x='urn:x' x:a='1' b='2'><bar/><x:baz/></x:foo></message>`,
		[]*Element{el(nsClient, "message").AddChild(
			elNS(elNS(el("urn:x", "foo"), "urn:x", "a", "1"), "", "b", "2").AddChild(el(nsClient, "bar")).AddChild(el("urn:x", "baz")))}},
	{"prefixed attrs resolved after later declaration", `<a p:x='1' xmlns:p='urn:p'/>`,
		[]*Element{elNS(el(nsClient, "a"), "urn:p", "x", "1")}},
	{"stream prefix from header", `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`,
		[]*Element{el(nsStreams, "features").AddChild(el("urn:ietf:params:xml:ns:xmpp-tls", "starttls").AddChild(el("urn:ietf:params:xml:ns:xmpp-tls", "required")))}},
	{"entities and char refs", `<message to='a&amp;b&lt;&gt;&apos;&quot;'>x &#65;&#x42;&#x1F600; &amp;&lt;y&gt;</message>`,
		[]*Element{el(nsClient, "message", "to", `a&b<>'"`).AddText("x AB\U0001F600 &<y>")}},
	{"attribute value normalization", "<a x='x&#9;y&#xA;z&#xD;' y='p\tq\r\nr\ns\rt' z=\"it's\"/>",
		[]*Element{el(nsClient, "a", "x", "x\ty\nz\r", "y", "p q r s t", "z", "it's")}},
	{"cdata merges with text", `<body>a<![CDATA[<b>&amp;]]]]>c<![CDATA[]]></body>`,
		[]*Element{el(nsClient, "body").AddText("a<b>&amp;]]c")}},
	{"mixed content", `<body>a<b/>c<i>d</i></body>`,
		[]*Element{el(nsClient, "body").AddText("a").AddChild(el(nsClient, "b")).AddText("c").AddChild(el(nsClient, "i").AddText("d"))}},
	{"whitespace text kept", "<a>\n <b/>\n</a>",
		[]*Element{el(nsClient, "a").AddText("\n ").AddChild(el(nsClient, "b")).AddText("\n")}},
	{"line ends in text and cdata", "<a>1\r\n2\r3<![CDATA[4\r\n5\r]]></a>",
		[]*Element{el(nsClient, "a").AddText("1\n2\n34\n5\n")}},
	{"xml:lang", `<message xml:lang='en'/>`, []*Element{elNS(el(nsClient, "message"), NSXML, "lang", "en")}},
	{"xmlns:xml allowed", `<a xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='de'/>`,
		[]*Element{elNS(el(nsClient, "a"), NSXML, "lang", "de")}},
	{"undeclare default namespace", `<message><x xmlns=''><y/></x></message>`,
		[]*Element{el(nsClient, "message").AddChild(el("", "x").AddChild(el("", "y")))}},
	{"end tag with space", `<message ></message >`, []*Element{el(nsClient, "message")}},
	{"spaces around equals, double quotes", "<message  to = \"a\"\n\tid\t=\t'b' />", []*Element{el(nsClient, "message", "to", "a", "id", "b")}},
	{"several stanzas and whitespace", " \n<a/>\t<b>x</b>\r\n <c/>  ",
		[]*Element{el(nsClient, "a"), el(nsClient, "b").AddText("x"), el(nsClient, "c")}},
	{"whitespace cdata between stanzas", `<a/><![CDATA[ 
 ]]><b/>`, []*Element{el(nsClient, "a"), el(nsClient, "b")}},
	{"gt and ]] in text, ]]> in attribute", `<a x=']]>'>]]&gt; > ]</a>`, []*Element{el(nsClient, "a", "x", "]]>").AddText("]]> > ]")}},
	{"non-ASCII names and text", `<café xmlns='urn:ü' ñ='ö'>日本語 &#xE9;</café>`, []*Element{el("urn:ü", "café", "ñ", "ö").AddText("日本語 é")}},
	{"prefix scope ends with element", `<a><b xmlns:p='urn:1'><p:c/></b><c xmlns:p='urn:2'><p:c/></c></a>`,
		[]*Element{el(nsClient, "a").AddChild(el(nsClient, "b").AddChild(el("urn:1", "c"))).AddChild(el(nsClient, "c").AddChild(el("urn:2", "c")))}},
	{"redeclared default in scope only", `<a><b xmlns='urn:b'/><c/></a>`,
		[]*Element{el(nsClient, "a").AddChild(el("urn:b", "b")).AddChild(el(nsClient, "c"))}},
	{"stream end", `<a/></stream:stream>`, []*Element{el(nsClient, "a")}},
}

func TestDecodeParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			res := decodeAll(strings.NewReader(hdr+tc.in), Limits{})
			wantErr := io.EOF
			if strings.HasSuffix(tc.in, "</stream:stream>") {
				wantErr = ErrStreamEnd
			}
			if !errors.Is(res.err, wantErr) {
				t.Fatalf("final error = %v, want %v", res.err, wantErr)
			}
			if len(res.elems) != len(tc.want) {
				t.Fatalf("got %d elements, want %d", len(res.elems), len(tc.want))
			}
			for i := range tc.want {
				if !equalElem(res.elems[i], tc.want[i]) {
					t.Errorf("element %d:\n got %s\nwant %s", i, dump(res.elems[i]), dump(tc.want[i]))
				}
			}
		})
	}
}

var errorCases = []struct {
	name string
	in   string // after hdr unless noHdr
	cond string
	lim  Limits
}{
	{"mismatched end tag", `<a></b>`, CondNotWellFormed, Limits{}},
	{"mismatched prefix in end tag", `<a xmlns:p='u'></p:a>`, CondNotWellFormed, Limits{}},
	{"bad name start", `<1a/>`, CondNotWellFormed, Limits{}},
	{"bad name char", `<a×b/>`, CondNotWellFormed, Limits{}},
	{"space after lt", `< a/>`, CondNotWellFormed, Limits{}},
	{"unquoted attribute", `<a b=c/>`, CondNotWellFormed, Limits{}},
	{"attribute without value", `<a b/>`, CondNotWellFormed, Limits{}},
	{"duplicate attribute", `<a b='1' b='2'/>`, CondNotWellFormed, Limits{}},
	{"duplicate expanded attribute", `<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>`, CondNotWellFormed, Limits{}},
	{"duplicate namespace declaration", `<a xmlns:p='u' xmlns:p='v'/>`, CondNotWellFormed, Limits{}},
	{"undeclared element prefix", `<p:a/>`, CondNotWellFormed, Limits{}},
	{"undeclared attribute prefix", `<a p:b='1'/>`, CondNotWellFormed, Limits{}},
	{"prefix out of scope", `<a><b xmlns:p='u'/><p:c/></a>`, CondNotWellFormed, Limits{}},
	{"two colons", `<a:b:c xmlns:a='u'/>`, CondNotWellFormed, Limits{}},
	{"empty local name", `<a: xmlns:a='u'/>`, CondNotWellFormed, Limits{}},
	{"empty prefix", `<:a/>`, CondNotWellFormed, Limits{}},
	{"xmlns prefix declared", `<a xmlns:xmlns='u'/>`, CondNotWellFormed, Limits{}},
	{"xml prefix rebound", `<a xmlns:xml='u'/>`, CondNotWellFormed, Limits{}},
	{"xml namespace to other prefix", `<a xmlns:p='http://www.w3.org/XML/1998/namespace'/>`, CondNotWellFormed, Limits{}},
	{"xml namespace as default", `<a xmlns='http://www.w3.org/XML/1998/namespace'/>`, CondNotWellFormed, Limits{}},
	{"xmlns namespace bound", `<a xmlns:p='http://www.w3.org/2000/xmlns/'/>`, CondNotWellFormed, Limits{}},
	{"prefix undeclared with empty value", `<a xmlns:p=''/>`, CondNotWellFormed, Limits{}},
	{"element with xmlns prefix", `<xmlns:a/>`, CondNotWellFormed, Limits{}},
	{"lt in attribute value", `<a b='<'/>`, CondNotWellFormed, Limits{}},
	{"lt in attribute value, unterminated", `<a b='<c>`, CondNotWellFormed, Limits{}},
	{"lt in tag", `<a <b/>`, CondNotWellFormed, Limits{}},
	{"lt in end tag", `<a></a <`, CondNotWellFormed, Limits{}},
	{"quote without equals", `<a b"c"/>`, CondNotWellFormed, Limits{}},
	{"missing space between attributes", `<a b='1'c='2'/>`, CondNotWellFormed, Limits{}},
	{"space in empty tag end", `<a/ >`, CondNotWellFormed, Limits{}},
	{"space before slash-gt after attr", `<a b='1' / >`, CondNotWellFormed, Limits{}},
	{"char ref zero", `<a>&#0;</a>`, CondNotWellFormed, Limits{}},
	{"char ref control", `<a>&#x1;</a>`, CondNotWellFormed, Limits{}},
	{"char ref surrogate", `<a>&#xD800;</a>`, CondNotWellFormed, Limits{}},
	{"char ref FFFE", `<a>&#xFFFE;</a>`, CondNotWellFormed, Limits{}},
	{"char ref too large", `<a>&#x110000;</a>`, CondNotWellFormed, Limits{}},
	{"char ref overflow", `<a>&#99999999999999999999;</a>`, CondNotWellFormed, Limits{}},
	{"char ref empty", `<a>&#;</a>`, CondNotWellFormed, Limits{}},
	{"char ref bad digit", `<a>&#xZ;</a>`, CondNotWellFormed, Limits{}},
	{"char ref hex uppercase X", `<a>&#X41;</a>`, CondNotWellFormed, Limits{}},
	{"reference without semicolon", `<a>&amp</a>`, CondNotWellFormed, Limits{}},
	{"bare ampersand", `<a>a & b;</a>`, CondNotWellFormed, Limits{}},
	{"bare ampersand in attribute", `<a b='&'/>`, CondNotWellFormed, Limits{}},
	{"invalid UTF-8", "<a>\xff</a>", CondNotWellFormed, Limits{}},
	{"truncated UTF-8", "<a>\xc3</a>", CondNotWellFormed, Limits{}},
	{"encoded surrogate", "<a>\xed\xa0\x80</a>", CondNotWellFormed, Limits{}},
	{"NUL", "<a>\x00</a>", CondNotWellFormed, Limits{}},
	{"C0 control", "<a>\x01</a>", CondNotWellFormed, Limits{}},
	{"C0 control in attribute", "<a b='\x1f'/>", CondNotWellFormed, Limits{}},
	{"U+FFFE", "<a>\uFFFE</a>", CondNotWellFormed, Limits{}},
	{"U+FFFF in name", "<a\uFFFF/>", CondNotWellFormed, Limits{}},
	{"text at stream level", `hello<a/>`, CondNotWellFormed, Limits{}},
	{"text cdata at stream level", `<![CDATA[x]]>`, CondNotWellFormed, Limits{}},
	{"]]> in text", `<a>x]]>y</a>`, CondNotWellFormed, Limits{}},
	{"wrong stream end tag", `</stream:foo>`, CondNotWellFormed, Limits{}},
	{"unprefixed stream end tag", `</stream>`, CondNotWellFormed, Limits{}},
	{"garbage after stream end name", `</stream:streamx>`, CondNotWellFormed, Limits{}},

	{"comment in stanza", `<a><!-- x --></a>`, CondRestrictedXML, Limits{}},
	{"comment at stream level", `<!-- x --><a/>`, CondRestrictedXML, Limits{}},
	{"processing instruction", `<a><?foo bar?></a>`, CondRestrictedXML, Limits{}},
	{"processing instruction at stream level", `<?foo?>`, CondRestrictedXML, Limits{}},
	{"xml declaration mid-stream", `<?xml version='1.0'?>`, CondRestrictedXML, Limits{}},
	{"doctype", `<!DOCTYPE a>`, CondRestrictedXML, Limits{}},
	{"entity declaration in stanza", `<a><!ENTITY x 'y'></a>`, CondRestrictedXML, Limits{}},
	{"undefined entity", `<a>&nbsp;</a>`, CondRestrictedXML, Limits{}},
	{"undefined entity in attribute", `<a b='&foo;'/>`, CondRestrictedXML, Limits{}},

	{"stanza too large", `<a>` + strings.Repeat("x", 200) + `</a>`, CondPolicyViolation, Limits{MaxStanzaBytes: 100}},
	{"stanza too large, one tag", `<a b='` + strings.Repeat("x", 200) + `'/>`, CondPolicyViolation, Limits{MaxStanzaBytes: 100}},
	{"too deep", strings.Repeat("<a>", 5), CondPolicyViolation, Limits{MaxDepth: 4}},
	{"too deep with empty element", strings.Repeat("<a>", 4) + "<b/>" + strings.Repeat("</a>", 4), CondPolicyViolation, Limits{MaxDepth: 4}},
	{"too deep, depth 1", "<a><b/></a>", CondPolicyViolation, Limits{MaxDepth: 1}},
	{"too many attributes", `<a b='1' c='2' d='3'/>`, CondPolicyViolation, Limits{MaxAttrs: 2}},
	{"too many attributes incl. declarations", `<a xmlns='u' xmlns:p='v' c='3'/>`, CondPolicyViolation, Limits{MaxAttrs: 2}},
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			res := decodeAll(strings.NewReader(hdr+tc.in), tc.lim)
			if got := condition(res.err); got != tc.cond {
				t.Fatalf("error = %v, want condition %s", res.err, tc.cond)
			}
			// The error is sticky.
			d := NewDecoder(strings.NewReader(hdr+tc.in), tc.lim)
			if _, err := d.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			var first error
			for first == nil {
				_, first = d.Next()
			}
			if _, again := d.Next(); again != first {
				t.Errorf("second Next = %v, want sticky %v", again, first)
			}
		})
	}
}

func TestLimitsAccepted(t *testing.T) {
	tests := []struct {
		name string
		in   string
		lim  Limits
	}{
		{"exactly max bytes", `<a>` + strings.Repeat("x", 93) + `</a>`, Limits{MaxStanzaBytes: 100}},
		{"exactly max depth", strings.Repeat("<a>", 3) + "<b/>" + strings.Repeat("</a>", 3), Limits{MaxDepth: 4}},
		{"depth 1", "<a>x</a>", Limits{MaxDepth: 1}},
		{"exactly max attrs", `<a b='1' c='2'/>`, Limits{MaxAttrs: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := decodeAll(strings.NewReader(hdr+tc.in), tc.lim)
			if len(res.elems) != 1 || res.err != io.EOF {
				t.Fatalf("got %d elements, err %v", len(res.elems), res.err)
			}
		})
	}
}

func TestReadHeader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want StreamHeader
		cond string // expected error condition, "" for success
	}{
		{"typical", `<?xml version='1.0'?>` + "\n" + `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' xml:lang='en'>`,
			StreamHeader{Name: Name{nsStreams, "stream"}, Prefix: "stream", DefaultNS: nsClient,
				Attrs: []Attr{{Name{"", "to"}, "example.com"}, {Name{"", "version"}, "1.0"}, {Name{NSXML, "lang"}, "en"}}}, ""},
		{"full declaration, BOM", "\xEF\xBB\xBF<?xml version=\"1.0\" encoding='utf-8' standalone='yes' ?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:server'>",
			StreamHeader{Name: Name{nsStreams, "stream"}, Prefix: "stream", DefaultNS: "jabber:server"}, ""},
		{"unprefixed stream, leading whitespace", " \r\n<stream xmlns='http://etherx.jabber.org/streams'>",
			StreamHeader{Name: Name{nsStreams, "stream"}, DefaultNS: nsStreams}, ""},
		{"wrong namespace is for the stream layer", "<stream:stream xmlns:stream='urn:wrong'>",
			StreamHeader{Name: Name{"urn:wrong", "stream"}, Prefix: "stream"}, ""},
		{"encoding latin1", `<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream>`, StreamHeader{}, CondUnsupportedEncoding},
		{"UTF-16 BOM BE", "\xFE\xFF\x00<", StreamHeader{}, CondUnsupportedEncoding},
		{"UTF-16 BOM LE", "\xFF\xFE<\x00", StreamHeader{}, CondUnsupportedEncoding},
		{"declaration after whitespace", ` <?xml version='1.0'?><stream:stream>`, StreamHeader{}, CondRestrictedXML},
		{"two declarations", `<?xml version='1.0'?><?xml version='1.0'?><stream:stream>`, StreamHeader{}, CondRestrictedXML},
		{"stylesheet PI", `<?xml-stylesheet href='a'?><stream:stream>`, StreamHeader{}, CondRestrictedXML},
		{"doctype", `<!DOCTYPE stream><stream:stream>`, StreamHeader{}, CondRestrictedXML},
		{"comment", `<!-- hi --><stream:stream>`, StreamHeader{}, CondRestrictedXML},
		{"declaration without version", `<?xml encoding='UTF-8'?><stream:stream>`, StreamHeader{}, CondNotWellFormed},
		{"bad version", `<?xml version='2.0'?><stream:stream>`, StreamHeader{}, CondNotWellFormed},
		{"bad standalone", `<?xml version='1.0' standalone='maybe'?><stream:stream>`, StreamHeader{}, CondNotWellFormed},
		{"undeclared stream prefix", `<stream:stream xmlns='jabber:client'>`, StreamHeader{}, CondNotWellFormed},
		{"text before header", `hello<stream:stream>`, StreamHeader{}, CondNotWellFormed},
		{"end tag first", `</stream:stream>`, StreamHeader{}, CondNotWellFormed},
		{"bad attribute", `<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to=x>`, StreamHeader{}, CondNotWellFormed},
		{"header too large", `<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='` + strings.Repeat("x", 300000) + `'>`, StreamHeader{}, CondPolicyViolation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				d := NewDecoder(r, Limits{})
				h, err := d.ReadHeader()
				if got := condition(err); got != tc.cond || (tc.cond == "" && err != nil) {
					t.Fatalf("err = %v, want condition %q", err, tc.cond)
				}
				if tc.cond != "" {
					continue
				}
				if h.Name != tc.want.Name || h.Prefix != tc.want.Prefix || h.DefaultNS != tc.want.DefaultNS || len(h.Attrs) != len(tc.want.Attrs) {
					t.Fatalf("header = %+v, want %+v", h, tc.want)
				}
				for i := range h.Attrs {
					if h.Attrs[i] != tc.want.Attrs[i] {
						t.Errorf("attr %d = %+v, want %+v", i, h.Attrs[i], tc.want.Attrs[i])
					}
				}
				if d.Buffered() != 0 || d.InputOffset() != int64(len(tc.in)) {
					t.Errorf("Buffered %d InputOffset %d, want 0, %d", d.Buffered(), d.InputOffset(), len(tc.in))
				}
			}
		})
	}
}

func TestEmptyStreamHeader(t *testing.T) {
	d := NewDecoder(strings.NewReader(`<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>`), Limits{})
	if _, err := d.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Next(); err != ErrStreamEnd {
		t.Fatalf("Next = %v, want ErrStreamEnd", err)
	}
}

func TestNextBeforeHeader(t *testing.T) {
	d := NewDecoder(strings.NewReader(hdr), Limits{})
	if _, err := d.Next(); err == nil {
		t.Fatal("Next before ReadHeader succeeded")
	}
}

func TestStreamEndSticky(t *testing.T) {
	d := NewDecoder(strings.NewReader(hdr+"<a/> </stream:stream ><b/>"), Limits{})
	if _, err := d.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := d.Next(); err != ErrStreamEnd {
			t.Fatalf("Next = %v, want ErrStreamEnd", err)
		}
	}
	if got := d.Buffered(); got != len("<b/>") {
		t.Errorf("Buffered = %d after stream end, want %d", got, len("<b/>"))
	}
}

// TestChunkingEquivalence decodes every case whole, byte by byte, and
// split at every position, and requires identical results.
func TestChunkingEquivalence(t *testing.T) {
	var inputs []string
	var limits []Limits
	for _, tc := range parseCases {
		inputs = append(inputs, hdr+tc.in)
		limits = append(limits, Limits{})
	}
	for _, tc := range errorCases {
		inputs = append(inputs, hdr+tc.in)
		limits = append(limits, tc.lim)
	}
	for k, in := range inputs {
		whole := decodeAll(strings.NewReader(in), limits[k])
		if got := decodeAll(iotest.OneByteReader(strings.NewReader(in)), limits[k]); !sameResult(whole, got) {
			t.Errorf("%q: one byte reader: %d elems, %v; whole: %d elems, %v", in, len(got.elems), got.err, len(whole.elems), whole.err)
		}
		if got := decodeAll(iotest.DataErrReader(strings.NewReader(in)), limits[k]); !sameResult(whole, got) {
			t.Errorf("%q: data+EOF reader: %v; whole: %v", in, got.err, whole.err)
		}
		for cut := 1; cut < len(in); cut++ {
			got := decodeAll(splitAt(in, cut), limits[k])
			if got.err == errWouldBlock {
				got.err = whole.err // the split reader blocks instead of EOF
			}
			if !sameResult(whole, got) {
				t.Errorf("%q split at %d: %d elems, %v; whole: %d elems, %v", in, cut, len(got.elems), got.err, len(whole.elems), whole.err)
				break
			}
		}
	}
}

// TestNoReadAhead checks the hard requirement: once the bytes of a header
// or stanza are buffered, ReadHeader/Next return without another Read.
func TestNoReadAhead(t *testing.T) {
	in := `<?xml version='1.0'?>` + hdr + `<message to='a@b'><body>x &amp; <![CDATA[y]]></body></message> <presence/><iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>`
	for cut := 1; cut < len(in); cut++ {
		for _, lim := range []Limits{{}, {MaxStanzaBytes: 80}} {
			cr := splitAt(in, cut)
			d := NewDecoder(cr, lim)
			if _, err := d.ReadHeader(); err != nil {
				t.Fatalf("cut %d: ReadHeader: %v", cut, err)
			}
			for i := range 3 {
				if _, err := d.Next(); err != nil {
					t.Fatalf("cut %d: stanza %d: %v", cut, i, err)
				}
			}
			if cr.blocked {
				t.Fatalf("cut %d: decoder asked for more input than the stanzas need", cut)
			}
		}
	}
}

// TestPipeDoesNotBlock uses a real pipe whose writer never writes again.
func TestPipeDoesNotBlock(t *testing.T) {
	pr, pw := io.Pipe()
	defer pr.Close()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for _, chunk := range []string{hdr[:10], hdr[10:] + "<message><bo", "dy>hi</body></message><iq/>"} {
			if _, err := pw.Write([]byte(chunk)); err != nil {
				return
			}
		}
	}()
	done := make(chan error, 1)
	go func() {
		d := NewDecoder(pr, Limits{})
		if _, err := d.ReadHeader(); err != nil {
			done <- err
			return
		}
		for range 2 {
			if _, err := d.Next(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		pr.Close() // unblocks the decoder goroutine
		<-done
		t.Fatal("decoder blocked although the stanzas were complete")
	}
	<-writerDone
}

func TestRestartWithBufferedHeader(t *testing.T) {
	in := hdr + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>` +
		`<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'><iq/>`
	cr := splitAt(in)
	d := NewDecoder(cr, Limits{})
	if _, err := d.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	auth, err := d.Next()
	if err != nil || auth.Name.Local != "auth" || auth.Text() != "AGEAYg==" {
		t.Fatalf("auth = %s, %v", dump(auth), err)
	}
	d.Restart()
	h, err := d.ReadHeader()
	if err != nil || h.DefaultNS != "jabber:server" {
		t.Fatalf("second header = %+v, %v", h, err)
	}
	iq, err := d.Next()
	if err != nil || iq.Name != (Name{"jabber:server", "iq"}) {
		t.Fatalf("iq = %s, %v", dump(iq), err)
	}
	if cr.blocked {
		t.Error("read past the data")
	}
	if d.InputOffset() != int64(len(in)) {
		t.Errorf("InputOffset = %d, want %d", d.InputOffset(), len(in))
	}
}

func TestRestartResetsNamespaces(t *testing.T) {
	in := hdr + `<a/><stream xmlns='http://etherx.jabber.org/streams'><stream:features/>`
	d := NewDecoder(strings.NewReader(in), Limits{})
	if _, err := d.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	d.Restart()
	if _, err := d.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Next(); condition(err) != CondNotWellFormed {
		t.Fatalf("stream prefix still declared after Restart: %v", err)
	}
}

func TestResetDropsBuffered(t *testing.T) {
	d := NewDecoder(strings.NewReader(hdr+`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><injected/>`), Limits{})
	if _, err := d.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	if got := d.Buffered(); got != len("<injected/>") {
		t.Fatalf("Buffered = %d, want %d", got, len("<injected/>"))
	}
	d.Reset(strings.NewReader(`<?xml version='1.0'?>` + hdr + `<fresh/>`))
	if d.Buffered() != 0 {
		t.Fatalf("Buffered after Reset = %d", d.Buffered())
	}
	if _, err := d.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	e, err := d.Next()
	if err != nil || e.Name.Local != "fresh" {
		t.Fatalf("got %s, %v", dump(e), err)
	}
}

// TestLargeStanzaRefusedEarly feeds an endless stanza and checks that the
// decoder gives up after reading about the limit, not the whole thing.
func TestLargeStanzaRefusedEarly(t *testing.T) {
	for _, tc := range []struct{ start, body string }{
		{"<message>", "x"}, {"<message>", "<b>"}, {"<message>", "<b c='1'/>"}, {"<message c='", "x"},
		{"<message ", " "}, {"<message><![CDATA[", "]"}, {"<message></message", " "},
	} {
		body := tc.body
		var read int
		prefix := hdr + tc.start
		r := readerFunc(func(p []byte) (int, error) {
			for i := range p {
				k := read + i
				if k < len(prefix) {
					p[i] = prefix[k]
				} else {
					p[i] = body[(k-len(prefix))%len(body)]
				}
			}
			read += len(p)
			return len(p), nil
		})
		const limit = 10000
		d := NewDecoder(r, Limits{MaxStanzaBytes: limit, MaxDepth: 1 << 20, MaxAttrs: 1 << 20})
		if _, err := d.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		_, err := d.Next()
		if condition(err) != CondPolicyViolation {
			t.Fatalf("body %q: err = %v, want policy-violation", body, err)
		}
		if read > limit+2*defaultBufSize {
			t.Errorf("body %q: read %d bytes for a limit of %d", body, read, limit)
		}
		if len(d.buf) > limit {
			t.Errorf("body %q: buffer grew to %d", body, len(d.buf))
		}
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestBufferShrinksAfterLargeStanza(t *testing.T) {
	big := `<message xmlns:p='urn:p' p:a='1'><body>` + strings.Repeat("y", 100000) + `</body></message>`
	d := NewDecoder(strings.NewReader(hdr+big+`<a/>`), Limits{})
	if _, err := d.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	e, err := d.Next()
	if err != nil || len(e.Child(nsClient, "body").Text()) != 100000 {
		t.Fatalf("big stanza: %v", err)
	}
	if len(d.buf) != defaultBufSize {
		t.Errorf("buffer is %d bytes after the stanza, want %d", len(d.buf), defaultBufSize)
	}
	// No scratch space may keep the stanza's string reachable.
	for _, r := range d.raw[:cap(d.raw)] {
		if r != (rawAttr{}) {
			t.Errorf("raw attribute scratch still holds %+v", r)
		}
	}
	for _, b := range d.ns[d.nsBase:cap(d.ns)] {
		if b != (binding{}) {
			t.Errorf("namespace scratch still holds %+v", b)
		}
	}
	for _, k := range d.kids[:cap(d.kids)] {
		if k != (Node{}) {
			t.Errorf("children scratch still holds %+v", k)
		}
	}
	if e, err := d.Next(); err != nil || e.Name.Local != "a" {
		t.Fatalf("following stanza: %v", err)
	}
}

func TestReadErrors(t *testing.T) {
	errTimeout := errors.New("timeout")
	in := hdr + `<message><body>hello</body></message>`
	cut := len(hdr) + 12
	// A stream: the first part, then a timeout, then the rest with EOF.
	// Reads may be short (the decoder waits for one byte when idle).
	steps := []struct {
		data string
		err  error
	}{{in[:cut], nil}, {"", errTimeout}, {in[cut:], io.EOF}}
	r := readerFunc(func(p []byte) (int, error) {
		for len(steps) > 0 {
			st := &steps[0]
			if st.data == "" {
				err := st.err
				steps = steps[1:]
				if err == nil {
					continue
				}
				return 0, err
			}
			n := copy(p, st.data)
			st.data = st.data[n:]
			if st.data == "" && st.err == io.EOF {
				steps = steps[1:]
				return n, io.EOF
			}
			return n, nil
		}
		return 0, io.EOF
	})
	d := NewDecoder(r, Limits{})
	if _, err := d.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Next(); !errors.Is(err, errTimeout) {
		t.Fatalf("Next = %v, want the reader's error", err)
	}
	// A read error is not fatal to the decoder: the stanza continues.
	e, err := d.Next()
	if err != nil || e.Child(nsClient, "body").Text() != "hello" {
		t.Fatalf("Next after timeout = %s, %v", dump(e), err)
	}
	if _, err := d.Next(); err != io.EOF {
		t.Fatalf("Next at end = %v, want io.EOF", err)
	}

	d = NewDecoder(strings.NewReader(in[:cut]), Limits{})
	if _, err := d.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated stanza: %v, want io.ErrUnexpectedEOF", err)
	}
	d = NewDecoder(strings.NewReader(hdr[:20]), Limits{})
	if _, err := d.ReadHeader(); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated header: %v, want io.ErrUnexpectedEOF", err)
	}
	d = NewDecoder(strings.NewReader(""), Limits{})
	if _, err := d.ReadHeader(); err != io.EOF {
		t.Fatalf("empty input: %v, want io.EOF", err)
	}
	d = NewDecoder(readerFunc(func([]byte) (int, error) { return 0, nil }), Limits{})
	if _, err := d.ReadHeader(); err != io.ErrNoProgress {
		t.Fatalf("stuck reader: %v, want io.ErrNoProgress", err)
	}
}

func TestInputOffset(t *testing.T) {
	in := hdr + " <a/>\n<b>x</b>"
	d := NewDecoder(bytes.NewReader([]byte(in)), Limits{})
	if _, err := d.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	wants := []int{len(hdr) + 5, len(in)}
	for _, want := range wants {
		if _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
		if d.InputOffset() != int64(want) || d.Buffered() != len(in)-want {
			t.Errorf("InputOffset %d Buffered %d, want %d, %d", d.InputOffset(), d.Buffered(), want, len(in)-want)
		}
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{Condition: CondNotWellFormed, Text: "x"}
	if e.Error() != "xmlstream: not-well-formed: x" {
		t.Errorf("Error() = %q", e.Error())
	}
	if (&Error{Condition: CondPolicyViolation}).Error() != "xmlstream: policy-violation" {
		t.Errorf("Error() without text wrong")
	}
}

// A mismatched end tag must be reported when it arrives: the peer sends
// nothing more, and waiting for a stanza end would hang the stream.
func TestMismatchedEndTagReportedAtOnce(t *testing.T) {
	for _, in := range []string{
		"<message><body>hi</message>",
		"<message><body>hi</bodyx>",
		"<a><b/><c></b>",
	} {
		pr, pw := io.Pipe()
		go pw.Write([]byte(hdr + in)) // then the writer stays silent
		done := make(chan error, 1)
		go func() {
			d := NewDecoder(pr, Limits{})
			if _, err := d.ReadHeader(); err != nil {
				done <- err
				return
			}
			_, err := d.Next()
			done <- err
		}()
		select {
		case err := <-done:
			if condition(err) != CondNotWellFormed {
				t.Errorf("%q: got %v, want not-well-formed", in, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%q: decoder waits for more input after a mismatched end tag", in)
		}
		pr.Close()
	}
}

func TestBufferedAfterSpace(t *testing.T) {
	for _, tc := range []struct {
		after string
		want  int
	}{
		{"", 0},
		{"\n", 0},
		{" \r\n\t ", 0},
		{"\n<injected/>", len("<injected/>")},
		{"x", 1},
	} {
		d := NewDecoder(strings.NewReader(hdr+`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`+tc.after), Limits{})
		if _, err := d.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
		if got := d.BufferedAfterSpace(); got != tc.want {
			t.Errorf("after %q: BufferedAfterSpace = %d, want %d", tc.after, got, tc.want)
		}
	}
}

// go-sendxmpp ends its <auth/> with a newline and then restarts the stream
// with an XML declaration: the newline is whitespace of the old stream.
func TestRestartAfterTrailingWhitespace(t *testing.T) {
	for _, gap := range []string{"\n", " \r\n\t"} {
		in := hdr + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>` + gap +
			`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'><iq/>`
		for _, r := range []io.Reader{strings.NewReader(in), splitAt(in)} {
			d := NewDecoder(r, Limits{})
			if _, err := d.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Next(); err != nil {
				t.Fatal(err)
			}
			d.Restart()
			if _, err := d.ReadHeader(); err != nil {
				t.Fatalf("header after %q: %v", gap, err)
			}
			if iq, err := d.Next(); err != nil || iq.Name.Local != "iq" {
				t.Fatalf("iq = %s, %v", dump(iq), err)
			}
		}
	}
}
