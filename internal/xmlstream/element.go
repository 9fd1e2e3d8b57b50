package xmlstream

import (
	"iter"
	"strings"
)

// NSXML is the namespace bound to the predeclared xml prefix.
const NSXML = "http://www.w3.org/XML/1998/namespace"

// nsXMLNS is the namespace of namespace declarations; it may never be bound.
const nsXMLNS = "http://www.w3.org/2000/xmlns/"

// Name is an expanded XML name; Space is the resolved namespace URI.
type Name struct{ Space, Local string }

// Attr is an attribute. Unprefixed attributes have an empty Space; namespace
// declarations never appear as attributes.
type Attr struct {
	Name  Name
	Value string
}

// Node is a child of an element: exactly one of Elem and Text is set. Text
// is unescaped character data.
type Node struct {
	Elem *Element
	Text string
}

// Element is an XML element with its attributes and children. Decoded
// elements never contain two adjacent text nodes or empty text nodes.
type Element struct {
	Name     Name
	Attrs    []Attr
	Children []Node
}

// New returns an element with the given unprefixed attributes given as
// key, value pairs.
func New(space, local string, attrs ...string) *Element {
	if len(attrs)%2 != 0 {
		panic("xmlstream.New: odd number of attribute arguments")
	}
	e := &Element{Name: Name{Space: space, Local: local}}
	if len(attrs) > 0 {
		e.Attrs = make([]Attr, 0, len(attrs)/2)
		for i := 0; i < len(attrs); i += 2 {
			e.Attrs = append(e.Attrs, Attr{Name: Name{Local: attrs[i]}, Value: attrs[i+1]})
		}
	}
	return e
}

// Attr returns the value of the unprefixed attribute local, or "".
func (e *Element) Attr(local string) string {
	v, _ := e.AttrNS("", local)
	return v
}

// AttrNS returns the value of the attribute with the given expanded name.
func (e *Element) AttrNS(space, local string) (string, bool) {
	for i := range e.Attrs {
		if e.Attrs[i].Name.Local == local && e.Attrs[i].Name.Space == space {
			return e.Attrs[i].Value, true
		}
	}
	return "", false
}

// SetAttr sets or replaces the unprefixed attribute local.
func (e *Element) SetAttr(local, value string) {
	for i := range e.Attrs {
		if e.Attrs[i].Name.Local == local && e.Attrs[i].Name.Space == "" {
			e.Attrs[i].Value = value
			return
		}
	}
	e.Attrs = append(e.Attrs, Attr{Name: Name{Local: local}, Value: value})
}

// RemoveAttr removes the unprefixed attribute local if present.
func (e *Element) RemoveAttr(local string) {
	out := e.Attrs[:0]
	for _, a := range e.Attrs {
		if a.Name.Local != local || a.Name.Space != "" {
			out = append(out, a)
		}
	}
	// Clear the tail so removed values are not kept reachable.
	clear(e.Attrs[len(out):])
	e.Attrs = out
}

// Child returns the first child element with exactly the given name, or nil.
func (e *Element) Child(space, local string) *Element {
	for _, n := range e.Children {
		if n.Elem != nil && n.Elem.Name.Local == local && n.Elem.Name.Space == space {
			return n.Elem
		}
	}
	return nil
}

// Elements yields the child elements in document order.
func (e *Element) Elements() iter.Seq[*Element] {
	return func(yield func(*Element) bool) {
		for _, n := range e.Children {
			if n.Elem != nil && !yield(n.Elem) {
				return
			}
		}
	}
}

// FirstElement returns the first child element, or nil.
func (e *Element) FirstElement() *Element {
	for _, n := range e.Children {
		if n.Elem != nil {
			return n.Elem
		}
	}
	return nil
}

// Text returns the concatenation of the direct text children.
func (e *Element) Text() string {
	var first string
	count := 0
	for _, n := range e.Children {
		if n.Elem == nil && n.Text != "" {
			if count == 0 {
				first = n.Text
			}
			count++
		}
	}
	if count <= 1 {
		// The common case (<body>text</body>) must not allocate.
		return first
	}
	var b strings.Builder
	for _, n := range e.Children {
		if n.Elem == nil {
			b.WriteString(n.Text)
		}
	}
	return b.String()
}

// AddChild appends c as the last child and returns e.
func (e *Element) AddChild(c *Element) *Element {
	e.Children = append(e.Children, Node{Elem: c})
	return e
}

// AddText appends character data and returns e. Text adjacent to a
// previous text child is merged into it, so that a built tree has the same
// shape as the tree decoded from its serialization.
func (e *Element) AddText(s string) *Element {
	if s == "" {
		return e
	}
	if n := len(e.Children); n > 0 && e.Children[n-1].Elem == nil {
		e.Children[n-1].Text += s
		return e
	}
	e.Children = append(e.Children, Node{Text: s})
	return e
}

// Copy returns a deep copy of e; strings are shared since they are immutable.
func (e *Element) Copy() *Element {
	c := &Element{Name: e.Name}
	if e.Attrs != nil {
		c.Attrs = make([]Attr, len(e.Attrs))
		copy(c.Attrs, e.Attrs)
	}
	if e.Children != nil {
		c.Children = make([]Node, len(e.Children))
		for i, n := range e.Children {
			if n.Elem != nil {
				c.Children[i] = Node{Elem: n.Elem.Copy()}
			} else {
				c.Children[i] = n
			}
		}
	}
	return c
}

// String returns the serialization of e without any namespace in force.
func (e *Element) String() string { return string(e.Append(nil, "")) }
