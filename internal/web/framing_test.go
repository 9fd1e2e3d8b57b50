package web

import (
	"strings"
	"testing"

	"parley/internal/stanza"
	"parley/internal/stream"
)

func TestSplitterFrames(t *testing.T) {
	out := string(stream.AppendHeader(nil, stream.Header{ContentNS: stanza.NSClient, ID: "abc", From: "example.org"})) +
		"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>" +
		"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>" +
		string(stream.AppendHeader(nil, stream.Header{ContentNS: stanza.NSClient, ID: "def", From: "example.org"})) +
		"<message to='a@example.org' x='1>2 &amp; </b>'><body>a > b</body><x xmlns='urn:x'/></message>\n" +
		"<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"
	want := []string{
		"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='example.org' id='abc' version='1.0' xml:lang='en'/>",
		"<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
		"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
		"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='example.org' id='def' version='1.0' xml:lang='en'/>",
		"<message xmlns='jabber:client' to='a@example.org' x='1>2 &amp; </b>'><body>a > b</body><x xmlns='urn:x'/></message>",
		"<stream:error xmlns:stream='http://etherx.jabber.org/streams'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
		"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
	}
	// Whatever way the stream is cut into writes, the frames are the same.
	for _, chunk := range []int{1, 2, 3, 7, 64, len(out)} {
		var s splitter
		var got []string
		for i := 0; i < len(out); i += chunk {
			err := s.feed([]byte(out[i:min(i+chunk, len(out))]), func(kind int, frame []byte) error {
				got = append(got, string(frame))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("chunks of %d:\ngot  %q\nwant %q", chunk, got, want)
		}
		if len(s.buf) != 0 || s.domain != "example.org" {
			t.Fatalf("chunks of %d: left %q, domain %q", chunk, s.buf, s.domain)
		}
	}
}

func TestTranslateFrame(t *testing.T) {
	for _, tc := range []struct{ in, want, cond string }{
		{in: `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org" version="1.0" xml:lang="de"/>`,
			want: `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='example.org' xml:lang='de'>`},
		{in: `<?xml version='1.0'?> <open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='a&amp;b'/>`,
			want: `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='a&amp;b'>`},
		{in: `<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`, want: `</stream:stream>`},
		{in: `<message xmlns='jabber:client'><body>x</body></message>`, want: `<message xmlns='jabber:client'><body>x</body></message>`},
		{in: `<opening xmlns='jabber:client'/>`, want: `<opening xmlns='jabber:client'/>`},
		{in: `<open xmlns="jabber:client" to="example.org"/>`, cond: "invalid-namespace"},
		{in: `<close xmlns="urn:ietf:params:xml:ns:xmpp-framing">`, cond: "xmlstream"}, // unclosed
		{in: `<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>`, cond: "invalid-xml"},
	} {
		got, err := translateFrame([]byte(tc.in))
		if tc.cond != "" {
			if err == nil || !strings.Contains(err.Error(), tc.cond) {
				t.Errorf("%s: err %v, want %s", tc.in, err, tc.cond)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s:\ngot  %s (%v)\nwant %s", tc.in, got, err, tc.want)
		}
	}
}
