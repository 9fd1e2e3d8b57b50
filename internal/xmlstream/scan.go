package xmlstream

import "bytes"

// Scanner states.
const (
	scText  = iota // in content, looking for '<'
	scLt           // just after '<'
	scStart        // in a start tag, outside attribute values
	scQuote        // in an attribute value
	scEnd          // in an end tag
	scBang         // after "<!", matching "<![CDATA["
	scCDATA        // in a CDATA section, looking for "]]>"
)

const cdataOpen = "<![CDATA["

// scanResult says how a scan ended.
type scanResult int

const (
	scanMore      scanResult = iota // need more input
	scanDone                        // the unit ends at scanState.i
	scanMalformed                   // the unit is certainly malformed at or before scanState.i
)

// scanState finds where the unit starting at a '<' ends: a whole top-level
// element, a stream-level end tag or CDATA section, or (in header mode) a
// single start tag. It is resumable so each input byte is looked at once
// however the input is chunked. It is exact for well-formed input and stops
// early on markup the strict parser will reject anyway; everything else is
// left to that parser.
type scanState struct {
	active bool
	header bool // stop at the end of the first start tag
	st     uint8
	quote  byte // delimiter of the current attribute value
	last   byte // last non-space byte in the current start tag
	i      int  // scan position, relative to the start of the unit
	tok    int  // position of the '<' of the current markup
	depth  int
	attrs  int // attribute values seen in the current start tag

	// Open element names as offsets into the unit, so that a mismatched
	// end tag is refused as soon as it arrives instead of leaving the
	// peer waiting for a stanza end that will never come.
	names     []int
	nameStart int
	inName    bool
	endStart  int

	// Counts used to size the parser's allocation slabs; they are only
	// hints and may be wrong for malformed input.
	elems, nattrs, marks int
}

func (sc *scanState) start(header bool) {
	names := sc.names[:0]
	*sc = scanState{active: true, header: header, st: scLt, i: 1, marks: 1, names: names}
}

// scan advances over b, the buffered bytes of the unit. Limits on depth and
// attribute count are enforced here, as bytes arrive.
func (sc *scanState) scan(b []byte, lim *Limits) (scanResult, *Error) {
	i := sc.i
	defer func() { sc.i = i }()
	for {
		switch sc.st {
		case scText:
			j := bytes.IndexByte(b[i:], '<')
			if j < 0 {
				i = len(b)
				return scanMore, nil
			}
			i += j
			sc.tok = i
			sc.marks++
			i++
			sc.st = scLt

		case scLt:
			if i >= len(b) {
				return scanMore, nil
			}
			switch b[i] {
			case '/':
				sc.st = scEnd
				sc.endStart = i + 1
			case '!':
				sc.st = scBang
			case '?':
				return scanMalformed, restricted("processing instruction")
			default:
				sc.st = scStart
				sc.last = 0
				sc.attrs = 0
				sc.elems++
				sc.nameStart = i
				sc.inName = true
				continue // the byte is part of the name
			}
			i++

		case scStart:
			for {
				if i >= len(b) {
					return scanMore, nil
				}
				c := b[i]
				if sc.inName && (isSpace(c) || c == '/' || c == '>') {
					sc.inName = false
					sc.names = append(sc.names, sc.nameStart, i)
				}
				i++
				if c == '>' {
					if sc.header {
						return scanDone, nil
					}
					if sc.depth+1 > lim.MaxDepth {
						return scanMalformed, policy("element nesting too deep")
					}
					if sc.last != '/' {
						sc.depth++
					} else {
						sc.names = sc.names[:len(sc.names)-2] // an empty element closes itself
						if sc.depth == 0 {
							return scanDone, nil
						}
					}
					sc.st = scText
					break
				}
				if c == '<' {
					return scanMalformed, nil
				}
				if c == '"' || c == '\'' {
					if sc.last != '=' {
						return scanMalformed, nil
					}
					sc.attrs++
					sc.nattrs++
					if sc.attrs > lim.MaxAttrs {
						return scanMalformed, policy("too many attributes")
					}
					sc.quote = c
					sc.st = scQuote
					break
				}
				if !isSpace(c) {
					sc.last = c
				}
			}

		case scQuote:
			for {
				if i >= len(b) {
					return scanMore, nil
				}
				c := b[i]
				i++
				if c == sc.quote {
					sc.last = c
					sc.st = scStart
					break
				}
				if c == '<' {
					return scanMalformed, nil
				}
			}

		case scEnd:
			j := bytes.IndexByte(b[i:], '>')
			if k := bytes.IndexByte(b[i:], '<'); k >= 0 && (j < 0 || k < j) {
				i += k + 1
				return scanMalformed, nil
			}
			if j < 0 {
				i = len(b)
				return scanMore, nil
			}
			end := i + j
			i += j + 1
			if sc.depth == 0 {
				return scanDone, nil // stream-level end tag
			}
			if n := len(sc.names); n >= 2 {
				open := b[sc.names[n-2]:sc.names[n-1]]
				if !bytes.Equal(bytes.TrimRight(b[sc.endStart:end], " \t\r\n"), open) {
					return scanMalformed, nil
				}
				sc.names = sc.names[:n-2]
			}
			sc.depth--
			if sc.depth == 0 {
				return scanDone, nil
			}
			sc.st = scText

		case scBang:
			for i < sc.tok+len(cdataOpen) {
				if i >= len(b) {
					return scanMore, nil
				}
				if b[i] != cdataOpen[i-sc.tok] {
					if i == sc.tok+2 && b[i] == '-' {
						return scanMalformed, restricted("comment")
					}
					return scanMalformed, restricted("markup declaration")
				}
				i++
			}
			sc.st = scCDATA

		case scCDATA:
			j := bytes.Index(b[i:], []byte("]]>"))
			if j < 0 {
				// Keep the last two bytes: they may begin the terminator.
				i = max(i, len(b)-2)
				return scanMore, nil
			}
			i += j + 3
			if sc.depth == 0 {
				return scanDone, nil // stream-level CDATA section
			}
			sc.st = scText
		}
	}
}
