package xmlstream

import (
	"encoding/xml"
	"io"
	"testing"
)

// benchStanza is a typical chat message as a client sends it.
const benchStanza = `<message from='juliet@capulet.example/balcony' id='ktx72v49' to='romeo@montague.example/orchard' type='chat' xml:lang='en'>` +
	`<body>Art thou not Romeo, and a Montague? Neither, fair saint, if either thee dislike. How cam&apos;st thou hither?</body>` +
	`<thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread>` +
	`<active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/>` +
	`<origin-id xmlns='urn:xmpp:sid:0' id='de8a1f2c'/></message>`

// cycleReader returns prefix and then stanza repeated forever.
type cycleReader struct {
	prefix, stanza string
	pos            int
}

func (c *cycleReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if c.prefix != "" {
			k := copy(p[n:], c.prefix)
			c.prefix = c.prefix[k:]
			n += k
			continue
		}
		k := copy(p[n:], c.stanza[c.pos:])
		c.pos = (c.pos + k) % len(c.stanza)
		n += k
	}
	return n, nil
}

func BenchmarkDecode(b *testing.B) {
	d := NewDecoder(&cycleReader{prefix: hdr, stanza: benchStanza}, Limits{})
	if _, err := d.ReadHeader(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchStanza)))
	b.ReportAllocs()
	for b.Loop() {
		e, err := d.Next()
		if err != nil || e.Name.Local != "message" {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEncodingXML is the baseline: encoding/xml tokens (with
// namespace translation) for the same stanza, without building a tree.
func BenchmarkDecodeEncodingXML(b *testing.B) {
	d := xml.NewDecoder(&cycleReader{prefix: hdr, stanza: benchStanza})
	if _, err := d.Token(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchStanza)))
	b.ReportAllocs()
	for b.Loop() {
		depth := 0
		for {
			tok, err := d.Token()
			if err != nil {
				b.Fatal(err)
			}
			switch tok.(type) {
			case xml.StartElement:
				depth++
			case xml.EndElement:
				depth--
			}
			if depth == 0 {
				if _, ok := tok.(xml.EndElement); ok {
					break
				}
			}
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	d := NewDecoder(&cycleReader{prefix: hdr, stanza: benchStanza}, Limits{})
	if _, err := d.ReadHeader(); err != nil {
		b.Fatal(err)
	}
	e, err := d.Next()
	if err != nil {
		b.Fatal(err)
	}
	buf := e.Append(nil, nsClient)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = e.Append(buf[:0], nsClient)
	}
}

var _ io.Reader = (*cycleReader)(nil)
