package xmlstream

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

const (
	nsClient  = "jabber:client"
	nsStreams = "http://etherx.jabber.org/streams"
	hdr       = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>`
)

// equalElem compares trees treating nil and empty slices alike.
func equalElem(a, b *Element) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Name != b.Name || len(a.Attrs) != len(b.Attrs) || len(a.Children) != len(b.Children) {
		return false
	}
	for i := range a.Attrs {
		if a.Attrs[i] != b.Attrs[i] {
			return false
		}
	}
	for i := range a.Children {
		x, y := a.Children[i], b.Children[i]
		if (x.Elem == nil) != (y.Elem == nil) || x.Text != y.Text {
			return false
		}
		if x.Elem != nil && !equalElem(x.Elem, y.Elem) {
			return false
		}
	}
	return true
}

// dump renders a tree unambiguously for failure messages.
func dump(e *Element) string {
	if e == nil {
		return "<nil>"
	}
	var b strings.Builder
	var walk func(*Element)
	walk = func(e *Element) {
		fmt.Fprintf(&b, "{%q %q", e.Name.Space, e.Name.Local)
		for _, a := range e.Attrs {
			fmt.Fprintf(&b, " @{%q %q}=%q", a.Name.Space, a.Name.Local, a.Value)
		}
		for _, c := range e.Children {
			if c.Elem != nil {
				b.WriteByte(' ')
				walk(c.Elem)
			} else {
				fmt.Fprintf(&b, " %q", c.Text)
			}
		}
		b.WriteByte('}')
	}
	walk(e)
	return b.String()
}

// result is everything a decoder produced for one input.
type result struct {
	hdr   StreamHeader
	elems []*Element
	err   error
}

// decodeAll reads the header and then elements until the first error.
func decodeAll(r io.Reader, lim Limits) result {
	d := NewDecoder(r, lim)
	var res result
	res.hdr, res.err = d.ReadHeader()
	if res.err != nil {
		return res
	}
	for {
		el, err := d.Next()
		if err != nil {
			res.err = err
			return res
		}
		res.elems = append(res.elems, el)
	}
}

func condition(err error) string {
	var xe *Error
	if errors.As(err, &xe) {
		return xe.Condition
	}
	return ""
}

func sameResult(a, b result) bool {
	if len(a.elems) != len(b.elems) || !sameErr(a.err, b.err) {
		return false
	}
	for i := range a.elems {
		if !equalElem(a.elems[i], b.elems[i]) {
			return false
		}
	}
	return true
}

func sameErr(a, b error) bool {
	var x, y *Error
	if errors.As(a, &x) && errors.As(b, &y) {
		return *x == *y
	}
	return errors.Is(a, b)
}

// errWouldBlock is returned by chunkReader once its data is exhausted: a
// real connection would block there forever.
var errWouldBlock = errors.New("test reader: read would block")

// chunkReader hands out fixed chunks, then reports errWouldBlock and
// remembers that it was asked.
type chunkReader struct {
	chunks  [][]byte
	blocked bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		c.blocked = true
		return 0, errWouldBlock
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func splitAt(s string, cuts ...int) *chunkReader {
	cr := &chunkReader{}
	prev := 0
	for _, c := range cuts {
		cr.chunks = append(cr.chunks, []byte(s[prev:c]))
		prev = c
	}
	cr.chunks = append(cr.chunks, []byte(s[prev:]))
	return cr
}

// el builds expected trees: el(space, local, attrs...) with children added
// by the caller.
func el(space, local string, attrs ...string) *Element { return New(space, local, attrs...) }

func elNS(e *Element, space, local, value string) *Element {
	e.Attrs = append(e.Attrs, Attr{Name: Name{Space: space, Local: local}, Value: value})
	return e
}
