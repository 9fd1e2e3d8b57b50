package xmlstream

import (
	"strings"
	"unicode/utf8"
)

// binding is one namespace declaration in scope; prefix "" is the default
// namespace.
type binding struct{ prefix, uri string }

// rawAttr is an attribute as written, before namespace processing.
type rawAttr struct {
	name, value string // value is still escaped
	decl        bool   // a namespace declaration
}

// frame is an open element during parsing.
type frame struct {
	el     *Element
	qname  string // as written, to match the end tag
	nsMark int    // len(d.ns) before the element's own declarations
	kids   int    // where the element's children start in d.kids
}

// slabs hand out the memory of one stanza in a few allocations sized from
// the scanner's counts; when a count is short they fall back to make.
type slabs struct {
	elems []Element
	attrs []Attr
	nodes []Node
}

func (sl *slabs) element() *Element {
	if len(sl.elems) == 0 {
		return new(Element)
	}
	e := &sl.elems[0]
	sl.elems = sl.elems[1:]
	return e
}

// attrSlice returns a zero-length slice with room for n attributes whose
// capacity is clipped so that appending to it never overwrites a neighbour.
func (sl *slabs) attrSlice(n int) []Attr {
	if cap(sl.attrs)-len(sl.attrs) < n {
		return make([]Attr, 0, n)
	}
	l := len(sl.attrs)
	sl.attrs = sl.attrs[:l+n]
	return sl.attrs[l : l : l+n]
}

func (sl *slabs) nodeSlice(src []Node) []Node {
	n := len(src)
	var out []Node
	if cap(sl.nodes)-len(sl.nodes) < n {
		out = make([]Node, n)
	} else {
		l := len(sl.nodes)
		sl.nodes = sl.nodes[:l+n]
		out = sl.nodes[l : l+n : l+n]
	}
	copy(out, src)
	return out
}

// lookup resolves a non-empty prefix, or the default namespace for "".
func (d *Decoder) lookup(prefix string) (string, bool) {
	if prefix == "xml" {
		return NSXML, true
	}
	for i := len(d.ns) - 1; i >= 0; i-- {
		if d.ns[i].prefix == prefix {
			return d.ns[i].uri, true
		}
	}
	return "", prefix == ""
}

// errIncomplete means the parser ran out of input; the scanner only hands
// over complete units, so for the caller this is a malformed unit.
var errIncomplete = notWellFormed("malformed markup")

// parseStanza parses s, which holds exactly one top-level element as
// delimited by the scanner.
func (d *Decoder) parseStanza(s string, sc *scanState) (*Element, *Error) {
	if err := checkChars(s); err != nil {
		return nil, err
	}
	el, err := d.parseElements(s, sc)
	d.releaseScratch()
	return el, err
}

// releaseScratch keeps the scratch capacity but drops every pointer into
// the last stanza, so that an idle decoder does not pin a large stanza.
func (d *Decoder) releaseScratch() {
	clear(d.stack[:cap(d.stack)])
	clear(d.kids[:cap(d.kids)])
	clear(d.raw[:cap(d.raw)])
	d.stack, d.kids, d.raw = d.stack[:0], d.kids[:0], d.raw[:0]
	d.ns = d.ns[:d.nsBase]
	clear(d.ns[d.nsBase:cap(d.ns)])
}

func (d *Decoder) parseElements(s string, sc *scanState) (*Element, *Error) {
	var sl slabs
	if sc.elems > 0 {
		sl.elems = make([]Element, sc.elems)
	}
	if sc.nattrs > 0 {
		sl.attrs = make([]Attr, 0, sc.nattrs)
	}
	if n := sc.elems + sc.marks; n > 1 {
		sl.nodes = make([]Node, 0, n)
	}
	// The scratch slices are handed back to d after every append so that
	// parseStanza can clear them whatever the exit path.
	stack := d.stack[:0]
	kids := d.kids[:0]

	i := 0
	for i < len(s) {
		if s[i] != '<' {
			j := strings.IndexByte(s[i:], '<')
			if j < 0 {
				return nil, errIncomplete
			}
			if len(stack) == 0 {
				return nil, errIncomplete
			}
			raw := s[i : i+j]
			i += j
			if strings.Contains(raw, "]]>") {
				return nil, notWellFormed("]]> in character data")
			}
			txt, err := d.unescape(raw, false)
			if err != nil {
				return nil, err
			}
			kids = addText(kids, stack[len(stack)-1].kids, txt)
			d.kids = kids
			continue
		}
		if i+1 >= len(s) {
			return nil, errIncomplete
		}
		switch s[i+1] {
		case '/':
			if len(stack) == 0 {
				return nil, errIncomplete
			}
			end, err := scanName(s, i+2)
			if err != nil {
				return nil, err
			}
			f := stack[len(stack)-1]
			if s[i+2:end] != f.qname {
				return nil, notWellFormed("end tag does not match start tag")
			}
			i = skipSpace(s, end)
			if i >= len(s) || s[i] != '>' {
				return nil, errIncomplete
			}
			i++
			stack = stack[:len(stack)-1]
			d.ns = d.ns[:f.nsMark]
			if len(kids) > f.kids {
				f.el.Children = sl.nodeSlice(kids[f.kids:])
				clear(kids[f.kids:])
				kids = kids[:f.kids]
			}
			if len(stack) == 0 {
				return d.finish(f.el, s, i)
			}
			kids = append(kids, Node{Elem: f.el})
			d.kids = kids
		case '!':
			if !strings.HasPrefix(s[i:], cdataOpen) {
				return nil, restricted("markup declaration")
			}
			if len(stack) == 0 {
				return nil, errIncomplete
			}
			i += len(cdataOpen)
			j := strings.Index(s[i:], "]]>")
			if j < 0 {
				return nil, errIncomplete
			}
			txt := normalizeNewlines(s[i:i+j], &d.scratch)
			i += j + 3
			kids = addText(kids, stack[len(stack)-1].kids, txt)
			d.kids = kids
		case '?':
			return nil, restricted("processing instruction")
		default:
			mark := len(d.ns)
			el, qname, empty, next, err := d.parseStartTag(s, i, &sl, d.lim.MaxAttrs)
			if err != nil {
				return nil, err
			}
			i = next
			if empty {
				d.ns = d.ns[:mark]
				if len(stack) == 0 {
					return d.finish(el, s, i)
				}
				kids = append(kids, Node{Elem: el})
				d.kids = kids
				continue
			}
			stack = append(stack, frame{el: el, qname: qname, nsMark: mark, kids: len(kids)})
			d.stack = stack
		}
	}
	return nil, errIncomplete
}

// finish checks that the stanza ended exactly where the scanner said.
func (d *Decoder) finish(el *Element, s string, i int) (*Element, *Error) {
	if i != len(s) {
		return nil, errIncomplete
	}
	return el, nil
}

// addText appends character data to the children of the innermost open
// element (which start at from), merging it with a preceding text node.
func addText(kids []Node, from int, txt string) []Node {
	if txt == "" {
		return kids
	}
	if n := len(kids); n > from && kids[n-1].Elem == nil {
		kids[n-1].Text += txt
		return kids
	}
	return append(kids, Node{Text: txt})
}

func skipSpace(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

// parseStartTag parses the start tag beginning with '<' at s[i]: it
// applies the element's namespace declarations to d.ns (the caller pops
// them) and returns the element, its name as written, whether it was an
// empty-element tag, and the position after the tag.
func (d *Decoder) parseStartTag(s string, i int, sl *slabs, maxAttrs int) (el *Element, qname string, empty bool, next int, err *Error) {
	i++
	end, err := scanName(s, i)
	if err != nil {
		return nil, "", false, 0, err
	}
	qname = s[i:end]
	i = end
	raw := d.raw[:0]
	for {
		sp := i
		i = skipSpace(s, i)
		if i >= len(s) {
			return nil, "", false, 0, errIncomplete
		}
		c := s[i]
		if c == '>' {
			i++
			break
		}
		if c == '/' {
			if i+1 >= len(s) || s[i+1] != '>' {
				return nil, "", false, 0, notWellFormed("expected /> in tag")
			}
			empty = true
			i += 2
			break
		}
		if i == sp {
			if c >= utf8.RuneSelf || asciiClass[c]&clNameStart != 0 {
				return nil, "", false, 0, notWellFormed(txtAttrSpace)
			}
			return nil, "", false, 0, notWellFormed("unexpected character in tag")
		}
		end, err := scanName(s, i)
		if err != nil {
			return nil, "", false, 0, err
		}
		name := s[i:end]
		i = skipSpace(s, end)
		if i >= len(s) || s[i] != '=' {
			return nil, "", false, 0, notWellFormed("attribute without value")
		}
		i = skipSpace(s, i+1)
		if i >= len(s) || (s[i] != '"' && s[i] != '\'') {
			return nil, "", false, 0, notWellFormed("unquoted attribute value")
		}
		q := s[i]
		i++
		j := strings.IndexByte(s[i:], q)
		if j < 0 {
			return nil, "", false, 0, errIncomplete
		}
		val := s[i : i+j]
		i += j + 1
		if strings.IndexByte(val, '<') >= 0 {
			return nil, "", false, 0, notWellFormed("< in attribute value")
		}
		if len(raw) >= maxAttrs {
			return nil, "", false, 0, policy("too many attributes")
		}
		for _, a := range raw {
			if a.name == name {
				return nil, "", false, 0, notWellFormed(txtDupAttr)
			}
		}
		raw = append(raw, rawAttr{name: name, value: val})
	}
	d.raw = raw // keep the grown scratch; releaseScratch clears it

	// Declarations first: they apply to the element's own name and to all
	// of its attributes regardless of order.
	n := 0
	for k := range raw {
		a := &raw[k]
		var prefix string
		switch {
		case a.name == "xmlns":
		case strings.HasPrefix(a.name, "xmlns:"):
			prefix = a.name[len("xmlns:"):]
			if !isNCName(prefix) {
				return nil, "", false, 0, nsError("bad prefix in declaration")
			}
		default:
			n++
			continue
		}
		a.decl = true
		uri, err := d.unescape(a.value, true)
		if err != nil {
			return nil, "", false, 0, err
		}
		switch {
		case prefix == "xmlns":
			return nil, "", false, 0, nsError("xmlns prefix declared")
		case prefix == "xml":
			if uri != NSXML {
				return nil, "", false, 0, nsError("xml prefix bound to another namespace")
			}
			continue // predeclared
		case uri == NSXML || uri == nsXMLNS:
			return nil, "", false, 0, nsError("reserved namespace bound")
		case prefix != "" && uri == "":
			return nil, "", false, 0, nsError("prefix undeclared")
		}
		d.ns = append(d.ns, binding{prefix: prefix, uri: uri})
	}

	prefix, local, err := splitQName(qname)
	if err != nil {
		return nil, "", false, 0, err
	}
	if prefix == "xmlns" {
		return nil, "", false, 0, nsError("element with xmlns prefix")
	}
	space, ok := d.lookup(prefix)
	if !ok {
		return nil, "", false, 0, nsError("undeclared prefix")
	}
	el = sl.element()
	el.Name = Name{Space: space, Local: local}
	if n == 0 {
		return el, qname, empty, i, nil
	}
	el.Attrs = sl.attrSlice(n)
	for _, a := range raw {
		if a.decl {
			continue
		}
		prefix, local, err := splitQName(a.name)
		if err != nil {
			return nil, "", false, 0, err
		}
		var space string
		if prefix != "" {
			var ok bool
			if space, ok = d.lookup(prefix); !ok {
				return nil, "", false, 0, nsError("undeclared prefix")
			}
			// Only prefixed attributes can share an expanded name without
			// sharing the name as written.
			for _, b := range el.Attrs {
				if b.Name.Local == local && b.Name.Space == space {
					return nil, "", false, 0, nsError("duplicate expanded attribute name")
				}
			}
		}
		v, err := d.unescape(a.value, true)
		if err != nil {
			return nil, "", false, 0, err
		}
		el.Attrs = append(el.Attrs, Attr{Name: Name{Space: space, Local: local}, Value: v})
	}
	return el, qname, empty, i, nil
}
