package muc

import (
	"parley/internal/dataform"
	"parley/internal/xmlstream"
)

// addField adds a field to a form a test submits as a client would,
// with whatever type and values the test wants, right or wrong.
func addField(form *xmlstream.Element, v, typ, label string, values ...string) {
	f := sub(form, xmlstream.New(dataform.NS, "field", "var", v))
	if typ != "" {
		f.SetAttr("type", typ)
	}
	if label != "" {
		f.SetAttr("label", label)
	}
	for _, val := range values {
		sub(f, xmlstream.New(dataform.NS, "value")).AddText(val)
	}
}

// formValues reads a form the room sent into var -> values.
func formValues(x *xmlstream.Element) map[string][]string {
	f, err := dataform.Parse(x)
	if err != nil {
		return nil
	}
	vals := map[string][]string{dataform.FormTypeVar: {f.FormType}}
	for _, fd := range f.Fields {
		vals[fd.Var] = fd.Values
	}
	return vals
}
