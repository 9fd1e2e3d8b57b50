package xmlstream

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

const (
	defaultBufSize   = 4096
	defaultMaxStanza = 262144
	defaultMaxDepth  = 64
	defaultMaxAttrs  = 64

	// maxEmptyReads bounds how often a misbehaving reader may return
	// neither data nor an error before we give up.
	maxEmptyReads = 100
)

// Limits bound what a peer can make the decoder hold. Zero fields take the
// defaults.
type Limits struct {
	MaxStanzaBytes int // bytes of one top-level element including its children; default 262144
	MaxDepth       int // nesting depth inside a stanza (the stanza itself is depth 1); default 64
	MaxAttrs       int // attributes (incl. namespace declarations) on one element; default 64
}

func (l Limits) withDefaults() Limits {
	if l.MaxStanzaBytes <= 0 {
		l.MaxStanzaBytes = defaultMaxStanza
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = defaultMaxDepth
	}
	if l.MaxAttrs <= 0 {
		l.MaxAttrs = defaultMaxAttrs
	}
	return l
}

// StreamHeader is the start tag of the stream element.
type StreamHeader struct {
	Name      Name   // e.g. {http://etherx.jabber.org/streams, stream}
	Prefix    string // prefix used on the stream element; "" if unprefixed
	Attrs     []Attr // to, from, version, id, xml:lang ...; no namespace declarations
	DefaultNS string // default namespace declared on the header, "" if none
}

// Decoder reads an XMPP stream: a header, then top-level elements.
// It is not safe for concurrent use.
type Decoder struct {
	r    io.Reader
	lim  Limits
	buf  []byte
	pos  int   // start of unconsumed bytes in buf
	end  int   // end of valid bytes in buf
	off  int64 // bytes consumed since creation
	rerr error // read error held back because its Read also returned data

	err        error // sticky: an XML error or ErrStreamEnd
	headerDone bool
	atStart    bool // nothing consumed since the stream (re)started
	declSeen   bool // XML declaration consumed on this stream
	declScan   int  // resume point of the search for "?>"

	sc       scanState
	qname    string    // stream element name as written, for its end tag
	ns       []binding // namespace scope; the header's declarations at the bottom
	nsBase   int       // len(ns) of the stream-level scope
	raw      []rawAttr // scratch
	stack    []frame   // scratch
	kids     []Node    // scratch
	scratch  []byte    // scratch for unescaping
	emptyHdr bool      // the header was an empty-element tag
	one      [1]byte   // where an idle decoder waits for its next byte
}

// IdleReader is implemented by readers that can wait more cheaply when
// the decoder has nothing buffered (and so nothing half-parsed): the
// decoder then calls ReadIdle instead of Read. The c2s package uses it to
// wait on the socket below TLS, from a shallow stack.
type IdleReader interface {
	io.Reader
	ReadIdle(p []byte) (int, error)
}

// wakeBufSize is the buffer a decoder takes when data arrives after it
// had nothing buffered; most stanzas fit, bigger ones grow it.
const wakeBufSize = 1024

// NewDecoder returns a decoder reading from r.
func NewDecoder(r io.Reader, lim Limits) *Decoder {
	return &Decoder{r: r, lim: lim.withDefaults(), buf: make([]byte, defaultBufSize), atStart: true}
}

// Restart begins a new stream on the same reader, as after SASL success:
// buffered bytes are kept, all XML state is reset.
func (d *Decoder) Restart() {
	d.err = nil
	d.headerDone = false
	d.atStart = true
	d.declSeen = false
	d.declScan = 0
	d.sc = scanState{}
	d.qname = ""
	d.nsBase = 0
	d.releaseScratch()
	d.emptyHdr = false
}

// Reset begins a new stream on a new reader, as after STARTTLS: buffered
// bytes and all state are dropped.
func (d *Decoder) Reset(r io.Reader) {
	d.r = r
	d.rerr = nil
	d.pos, d.end = 0, 0
	if len(d.buf) != defaultBufSize {
		d.buf = make([]byte, defaultBufSize)
	}
	d.Restart()
}

// Buffered returns the number of bytes read from the reader but not yet
// consumed.
func (d *Decoder) Buffered() int { return d.end - d.pos }

// BufferedAfterSpace consumes the whitespace at the front of what is
// buffered, which RFC 6120 §11.7 allows between elements (some clients
// end <starttls/> with a newline), and returns how many bytes are still
// buffered: anything else.
func (d *Decoder) BufferedAfterSpace() int {
	n := 0
	for d.pos+n < d.end && isSpace(d.buf[d.pos+n]) {
		n++
	}
	d.consume(n)
	return d.Buffered()
}

// skipBufferedSpace consumes whitespace up to the next other byte, reading
// as needed, without counting it as the start of the stream.
func (d *Decoder) skipBufferedSpace() error {
	for {
		for d.pos < d.end && isSpace(d.buf[d.pos]) {
			d.pos++
			d.off++
		}
		if d.pos < d.end {
			return nil
		}
		if err := d.fill(); err != nil {
			return readErr(err, true)
		}
	}
}

// InputOffset returns the number of bytes consumed since creation.
func (d *Decoder) InputOffset() int64 { return d.off }

func (d *Decoder) consume(n int) {
	d.pos += n
	d.off += int64(n)
	if n > 0 {
		d.atStart = false
	}
}

func (d *Decoder) fail(err *Error) error {
	d.err = err
	d.sc.active = false
	return err
}

// fill reads more input, keeping buf[pos:end]. It is only called when the
// buffered bytes cannot complete what is being parsed.
func (d *Decoder) fill() error {
	if d.rerr != nil {
		err := d.rerr
		d.rerr = nil
		return err
	}
	if d.pos == d.end {
		return d.wait()
	}
	if d.end == len(d.buf) {
		if d.pos > 0 {
			copy(d.buf, d.buf[d.pos:d.end])
			d.end -= d.pos
			d.pos = 0
		}
		if d.end == len(d.buf) {
			// Callers check the stanza limit before asking for more, so the
			// buffer never needs to exceed it.
			size := min(2*len(d.buf), max(d.lim.MaxStanzaBytes, defaultBufSize))
			if size <= len(d.buf) {
				return policy("stanza too large")
			}
			nb := make([]byte, size)
			copy(nb, d.buf[:d.end])
			d.buf = nb
		}
	}
	for range maxEmptyReads {
		n, err := d.r.Read(d.buf[d.end:])
		d.end += n
		if n > 0 {
			d.rerr = err
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// wait reads when nothing at all is buffered, which is where an idle
// connection spends its life: the first byte goes into a one-byte array,
// and the read buffer is let go meanwhile, so a sleeping session costs
// no buffer here (memory per idle connection is a target of issue 4).
// The next fill reads the rest of what arrived into a fresh buffer.
func (d *Decoder) wait() error {
	d.pos, d.end = 0, 0
	d.buf = nil
	ir, idle := d.r.(IdleReader)
	for range maxEmptyReads {
		var n int
		var err error
		if idle {
			n, err = ir.ReadIdle(d.one[:])
		} else {
			n, err = d.r.Read(d.one[:])
		}
		if n > 0 {
			d.buf = make([]byte, wakeBufSize)
			d.buf[0] = d.one[0]
			d.end = 1
			d.rerr = err
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// shrink drops a buffer grown for a large stanza once it is no longer
// needed, so an idle connection costs only the default buffer.
func (d *Decoder) shrink() {
	if len(d.buf) > defaultBufSize && d.end-d.pos <= defaultBufSize {
		nb := make([]byte, defaultBufSize)
		d.end = copy(nb, d.buf[d.pos:d.end])
		d.pos = 0
		d.buf = nb
	}
	if cap(d.scratch) > defaultBufSize {
		d.scratch = nil
	}
}

// readErr converts a read error for the caller: EOF in the middle of
// something is unexpected.
func readErr(err error, mid bool) error {
	if mid && err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// hasPrefix reports whether the buffered input starts with p, reading
// only while the buffered bytes are a proper prefix of p.
func (d *Decoder) hasPrefix(p string) (bool, error) {
	for {
		b := d.buf[d.pos:d.end]
		n := min(len(b), len(p))
		if string(b[:n]) != p[:n] {
			return false, nil
		}
		if n == len(p) {
			return true, nil
		}
		if err := d.fill(); err != nil {
			return false, readErr(err, d.end > d.pos)
		}
	}
}

// runScan drives the scanner until the current unit is complete, reading
// as needed, and returns the unit's length and whether it is malformed.
func (d *Decoder) runScan(lim *Limits) (int, bool, error) {
	for {
		res, xerr := d.sc.scan(d.buf[d.pos:d.end], lim)
		if xerr != nil {
			return 0, false, d.fail(xerr)
		}
		switch res {
		case scanDone, scanMalformed:
			n := d.sc.i
			d.sc.active = false
			if n > lim.MaxStanzaBytes {
				return 0, false, d.fail(policy("stanza too large"))
			}
			return n, res == scanMalformed, nil
		}
		if d.end-d.pos >= lim.MaxStanzaBytes {
			return 0, false, d.fail(policy("stanza too large"))
		}
		if err := d.fill(); err != nil {
			if xe, ok := err.(*Error); ok {
				return 0, false, d.fail(xe)
			}
			return 0, false, readErr(err, true)
		}
	}
}

// headerLimits bounds the stream header (and XML declaration). Limits are
// meant for stanzas and may be set very small; the header gets at least
// 4096 bytes and 64 attributes so that a normal header is always accepted.
func (d *Decoder) headerLimits() Limits {
	return Limits{
		MaxStanzaBytes: max(d.lim.MaxStanzaBytes, defaultBufSize),
		MaxDepth:       1,
		MaxAttrs:       max(d.lim.MaxAttrs, defaultMaxAttrs),
	}
}

// ReadHeader reads an optional XML declaration and the stream header.
func (d *Decoder) ReadHeader() (StreamHeader, error) {
	if d.err != nil {
		return StreamHeader{}, d.err
	}
	if d.headerDone {
		return StreamHeader{}, errors.New("xmlstream: ReadHeader called twice on one stream")
	}
	if !d.sc.active {
		if err := d.readProlog(); err != nil {
			return StreamHeader{}, err
		}
		d.sc.start(true)
	}
	hl := d.headerLimits()
	n, malformed, err := d.runScan(&hl)
	if err != nil {
		return StreamHeader{}, err
	}
	s := string(d.buf[d.pos : d.pos+n])
	if malformed {
		return StreamHeader{}, d.fail(notWellFormed("malformed stream header"))
	}
	h, xerr := d.parseHeader(s)
	if xerr != nil {
		return StreamHeader{}, d.fail(xerr)
	}
	d.consume(n)
	d.headerDone = true
	return h, nil
}

// readProlog handles what may precede the stream start tag: a UTF-8 byte
// order mark, the XML declaration and whitespace. It leaves d.pos at the
// '<' of the start tag.
func (d *Decoder) readProlog() error {
	if d.atStart && !d.declSeen && d.off > 0 {
		// A restarted stream (after SASL): whitespace the client sent
		// after its last element of the old stream, which RFC 6120 §11.7
		// allows there, may come before the new XML declaration
		// (go-sendxmpp ends every element with a newline).
		if err := d.skipBufferedSpace(); err != nil {
			return err
		}
	}
	if d.atStart && !d.declSeen {
		for _, bom := range []string{"\xFE\xFF", "\xFF\xFE"} {
			if ok, err := d.hasPrefix(bom); err != nil || ok {
				if err != nil {
					return err
				}
				return d.fail(&Error{Condition: CondUnsupportedEncoding, Text: "UTF-16 byte order mark"})
			}
		}
		if ok, err := d.hasPrefix("\xEF\xBB\xBF"); err != nil {
			return err
		} else if ok {
			d.consume(3)
			d.atStart = true
		}
		if ok, err := d.hasPrefix("<?xml"); err != nil {
			return err
		} else if ok {
			if err := d.readDecl(); err != nil {
				return err
			}
		}
	}
	for {
		for d.pos < d.end && isSpace(d.buf[d.pos]) {
			d.consume(1)
		}
		if d.end-d.pos >= 2 {
			break
		}
		if d.pos < d.end && d.buf[d.pos] != '<' {
			break
		}
		if err := d.fill(); err != nil {
			return readErr(err, d.end > d.pos || d.off > 0)
		}
	}
	switch b := d.buf[d.pos:d.end]; {
	case b[0] != '<':
		return d.fail(notWellFormed("expected stream header"))
	case b[1] == '?':
		return d.fail(restricted("processing instruction"))
	case b[1] == '!':
		return d.fail(restricted("markup declaration before stream header"))
	case b[1] == '/':
		return d.fail(notWellFormed("end tag before stream header"))
	}
	return nil
}

// readDecl consumes the XML declaration; the input starts with "<?xml".
func (d *Decoder) readDecl() error {
	for {
		b := d.buf[d.pos:d.end]
		if len(b) > len("<?xml") && !isSpace(b[len("<?xml")]) {
			// <?xml-stylesheet and the like are processing instructions.
			return d.fail(restricted("processing instruction"))
		}
		if j := strings.Index(string(b[d.declScan:]), "?>"); j >= 0 {
			n := d.declScan + j + 2
			if err := parseDecl(string(b[:n])); err != nil {
				return d.fail(err)
			}
			d.consume(n)
			d.declSeen = true
			d.declScan = 0
			return nil
		}
		d.declScan = max(0, len(b)-1)
		if len(b) >= d.headerLimits().MaxStanzaBytes {
			return d.fail(policy("XML declaration too large"))
		}
		if err := d.fill(); err != nil {
			if xe, ok := err.(*Error); ok {
				return d.fail(xe)
			}
			return readErr(err, true)
		}
	}
}

// parseDecl checks an XML declaration:
// '<?xml' VersionInfo EncodingDecl? SDDecl? S? '?>'.
func parseDecl(s string) *Error {
	if err := checkChars(s); err != nil {
		return err
	}
	body := s[len("<?xml") : len(s)-len("?>")]
	i := 0
	var names []string
	for {
		sp := i
		i = skipSpace(body, i)
		if i == len(body) {
			break
		}
		if i == sp {
			return notWellFormed("malformed XML declaration")
		}
		end := i
		for end < len(body) && body[end] >= 'a' && body[end] <= 'z' {
			end++
		}
		name := body[i:end]
		i = skipSpace(body, end)
		if i >= len(body) || body[i] != '=' {
			return notWellFormed("malformed XML declaration")
		}
		i = skipSpace(body, i+1)
		if i >= len(body) || (body[i] != '"' && body[i] != '\'') {
			return notWellFormed("malformed XML declaration")
		}
		j := strings.IndexByte(body[i+1:], body[i])
		if j < 0 {
			return notWellFormed("malformed XML declaration")
		}
		val := body[i+1 : i+1+j]
		i += j + 2
		switch {
		case name == "version" && len(names) == 0:
			if !strings.HasPrefix(val, "1.") || len(val) == 2 || strings.Trim(val[2:], "0123456789") != "" {
				return notWellFormed("bad XML version")
			}
		case name == "encoding" && len(names) == 1:
			if !isEncName(val) {
				return notWellFormed("bad encoding name")
			}
			if !strings.EqualFold(val, "UTF-8") {
				return &Error{Condition: CondUnsupportedEncoding, Text: fmt.Sprintf("encoding %q", val)}
			}
		case name == "standalone" && len(names) >= 1 && names[len(names)-1] != "standalone":
			if val != "yes" && val != "no" {
				return notWellFormed("bad standalone value")
			}
		default:
			return notWellFormed("malformed XML declaration")
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return notWellFormed("XML declaration without version")
	}
	return nil
}

func isEncName(s string) bool {
	for k := 0; k < len(s); k++ {
		c := s[k]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case k > 0 && (c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return s != ""
}

// parseHeader parses the stream start tag and makes its namespace
// declarations the scope of every stanza.
func (d *Decoder) parseHeader(s string) (StreamHeader, *Error) {
	if err := checkChars(s); err != nil {
		return StreamHeader{}, err
	}
	clear(d.ns)
	d.ns = d.ns[:0]
	var sl slabs
	el, qname, empty, next, err := d.parseStartTag(s, 0, &sl, d.headerLimits().MaxAttrs)
	if err != nil {
		return StreamHeader{}, err
	}
	if next != len(s) {
		return StreamHeader{}, notWellFormed("malformed stream header")
	}
	h := StreamHeader{Name: el.Name, Attrs: el.Attrs}
	if p, _, ok := strings.Cut(qname, ":"); ok {
		h.Prefix = p
	}
	for _, b := range d.ns {
		if b.prefix == "" {
			h.DefaultNS = b.uri
		}
	}
	d.qname = qname
	d.emptyHdr = empty
	d.nsBase = len(d.ns)
	d.releaseScratch()
	return h, nil
}

// Next returns the next complete top-level element of the stream. It
// returns ErrStreamEnd when the peer closes the stream.
func (d *Decoder) Next() (*Element, error) {
	if d.err != nil {
		return nil, d.err
	}
	if !d.headerDone {
		return nil, errNotStarted
	}
	if d.emptyHdr {
		d.err = ErrStreamEnd
		return nil, d.err
	}
	if !d.sc.active && d.pos == d.end && d.rerr == nil {
		// Between stanzas with nothing buffered: wait here, in a small
		// frame, rather than deep in the parser. Idle connections spend
		// their life in this wait, and the runtime can only shrink a
		// goroutine's stack to four times what is in use.
		if err := d.wait(); err != nil {
			return nil, err
		}
	}
	return d.next()
}

func (d *Decoder) next() (*Element, error) {
	for {
		if !d.sc.active {
			if err := d.skipStreamSpace(); err != nil {
				return nil, err
			}
			d.sc.start(false)
		}
		n, malformed, err := d.runScan(&d.lim)
		if err != nil {
			return nil, err
		}
		b := d.buf[d.pos : d.pos+n]
		switch b[1] {
		case '/':
			if malformed || !d.isStreamEnd(b) {
				return nil, d.fail(notWellFormed("unexpected end tag"))
			}
			d.consume(n)
			d.shrink()
			d.err = ErrStreamEnd
			return nil, d.err
		case '!':
			// CDATA between stanzas is character data of the stream
			// element, so only whitespace is acceptable.
			for _, c := range b[len(cdataOpen) : n-len("]]>")] {
				if !isSpace(c) {
					return nil, d.fail(notWellFormed(txtStreamText))
				}
			}
			d.consume(n)
			continue
		}
		s := string(b)
		el, xerr := d.parseStanza(s, &d.sc)
		if xerr == nil && malformed {
			xerr = errIncomplete
		}
		if xerr != nil {
			return nil, d.fail(xerr)
		}
		d.consume(n)
		d.shrink()
		return el, nil
	}
}

// skipStreamSpace consumes whitespace between stanzas and stops at '<',
// with at least two bytes buffered so the caller can tell what follows.
func (d *Decoder) skipStreamSpace() error {
	for {
		for d.pos < d.end {
			c := d.buf[d.pos]
			if c == '<' {
				break
			}
			if !isSpace(c) {
				return d.fail(notWellFormed(txtStreamText))
			}
			d.consume(1)
		}
		if d.end-d.pos >= 2 {
			return nil
		}
		if err := d.fill(); err != nil {
			return readErr(err, d.end > d.pos)
		}
	}
}

// isStreamEnd reports whether b is exactly the end tag of the stream
// element: "</" qname S? ">".
func (d *Decoder) isStreamEnd(b []byte) bool {
	rest, ok := strings.CutPrefix(string(b[2:]), d.qname)
	if !ok {
		return false
	}
	for k := 0; k < len(rest)-1; k++ {
		if !isSpace(rest[k]) {
			return false
		}
	}
	return strings.HasSuffix(rest, ">")
}
