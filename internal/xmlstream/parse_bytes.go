package xmlstream

import (
	"bytes"
	"errors"
	"io"
)

// ParseElement parses one serialised element, as stored by the server
// (Append with parentNS contentNS). contentNS is the default namespace in
// force, e.g. jabber:client, so unqualified stanzas come back with it.
func ParseElement(data []byte, contentNS string) (*Element, error) {
	var in bytes.Buffer
	in.WriteString("<s xmlns='")
	in.Write(appendEscaped(nil, contentNS, true))
	in.WriteString("'>")
	in.Write(data)
	in.WriteString("</s>")
	d := NewDecoder(&in, Limits{MaxStanzaBytes: len(data) + 1})
	if _, err := d.ReadHeader(); err != nil {
		return nil, err
	}
	el, err := d.Next()
	if err != nil {
		return nil, err
	}
	// Exactly one element: anything but the end of the wrapper is damage.
	if _, err := d.Next(); !errors.Is(err, ErrStreamEnd) {
		if err == nil || errors.Is(err, io.EOF) {
			err = &Error{Condition: CondNotWellFormed, Text: "more than one element"}
		}
		return nil, err
	}
	return el, nil
}
