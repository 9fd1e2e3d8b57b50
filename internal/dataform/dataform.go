// Package dataform reads and writes XEP-0004 data forms. A form parley
// writes takes each field's type (and, where the registry fixes them,
// its options) from the registered FORM_TYPE (XEP-0068), kept in one
// table in registry.go, so that clients which check forms against the
// registry accept every form parley sends.
package dataform

import (
	"fmt"
	"strings"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

// NS is the data forms namespace.
const NS = "jabber:x:data"

// Form types (XEP-0004 §3.1).
const (
	TypeForm   = "form"
	TypeSubmit = "submit"
	TypeCancel = "cancel"
	TypeResult = "result"
)

// Field types (XEP-0004 §3.3).
const (
	Boolean     = "boolean"
	Fixed       = "fixed"
	Hidden      = "hidden"
	JIDMulti    = "jid-multi"
	JIDSingle   = "jid-single"
	ListMulti   = "list-multi"
	ListSingle  = "list-single"
	TextMulti   = "text-multi"
	TextPrivate = "text-private"
	TextSingle  = "text-single"
)

// FormTypeVar is the hidden field naming a form's FORM_TYPE (XEP-0068).
const FormTypeVar = "FORM_TYPE"

// Option is one choice of a list field.
type Option struct {
	Label, Value string
}

// Field is one field of a form.
type Field struct {
	Var, Type, Label string
	Values           []string
	Options          []Option
}

// Value is the field's first value, "" when it has none.
func (f *Field) Value() string {
	if f == nil || len(f.Values) == 0 {
		return ""
	}
	return f.Values[0]
}

// Form is a data form. FormType is the value of its FORM_TYPE field,
// kept apart from Fields: Element writes it first, as XEP-0068 asks.
type Form struct {
	Type         string
	FormType     string
	Title        string
	Instructions string
	Fields       []*Field
}

// New starts a form of type typ (TypeForm, TypeResult...) for formType;
// formType may be empty for a form without a FORM_TYPE.
func New(typ, formType string) *Form { return &Form{Type: typ, FormType: formType} }

// Parse reads an <x xmlns='jabber:x:data'/>. A form with no type is read
// as submitted: that is what a form inside a request means.
func Parse(x *xmlstream.Element) (*Form, error) {
	if x == nil || x.Name.Space != NS || x.Name.Local != "x" {
		return nil, stanza.BadRequest("not a data form")
	}
	f := &Form{Type: x.Attr("type")}
	switch f.Type {
	case "":
		f.Type = TypeSubmit
	case TypeForm, TypeSubmit, TypeCancel, TypeResult:
	default:
		return nil, stanza.BadRequest(fmt.Sprintf("%q is not a data form type", f.Type))
	}
	for c := range x.Elements() {
		if c.Name.Space != NS {
			continue
		}
		switch c.Name.Local {
		case "title":
			f.Title = c.Text()
		case "instructions":
			f.Instructions = c.Text()
		case "field":
			fd := &Field{Var: c.Attr("var"), Type: c.Attr("type"), Label: c.Attr("label")}
			for v := range c.Elements() {
				switch {
				case v.Name.Space != NS:
				case v.Name.Local == "value":
					fd.Values = append(fd.Values, v.Text())
				case v.Name.Local == "option":
					fd.Options = append(fd.Options, Option{Label: v.Attr("label"), Value: childText(v, "value")})
				}
			}
			if fd.Var == FormTypeVar {
				f.FormType = strings.TrimSpace(fd.Value())
				continue
			}
			if fd.Var != "" && f.Field(fd.Var) != nil {
				return nil, stanza.BadRequest("the form has field " + fd.Var + " twice")
			}
			f.Fields = append(f.Fields, fd)
		}
	}
	return f, nil
}

func childText(el *xmlstream.Element, local string) string {
	if c := el.Child(NS, local); c != nil {
		return c.Text()
	}
	return ""
}

// Field returns the field named v, nil when there is none.
func (f *Form) Field(v string) *Field {
	for _, fd := range f.Fields {
		if fd.Var == v {
			return fd
		}
	}
	return nil
}

// Has reports whether the form has a field v.
func (f *Form) Has(v string) bool { return f.Field(v) != nil }

// Value is the first value of field v, "" when absent.
func (f *Form) Value(v string) string { return f.Field(v).Value() }

// Values are the values of field v.
func (f *Form) Values(v string) []string {
	if fd := f.Field(v); fd != nil {
		return fd.Values
	}
	return nil
}

// Bool reads boolean field v; ok is false when the form lacks it.
func (f *Form) Bool(v string) (b, ok bool, err error) {
	fd := f.Field(v)
	if fd == nil || len(fd.Values) == 0 {
		return false, false, nil
	}
	b, err = ParseBool(fd.Values[0])
	if err != nil {
		return false, true, stanza.BadRequest(v + ": " + err.Error())
	}
	return b, true, nil
}

// ParseBool reads an XEP-0004 boolean: 0, 1, false or true.
func ParseBool(s string) (bool, error) {
	switch strings.TrimSpace(s) {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", s)
}

// FormatBool writes an XEP-0004 boolean.
func FormatBool(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Add appends field v with its registered type and the registry's
// options, and returns it so that the caller may add options of an open
// list. A field the registry does not know for the form's FORM_TYPE is a
// programming error: it panics, and the test that walks every form finds
// it.
func (f *Form) Add(v, label string, values ...string) *Field {
	spec, ok := Lookup(f.FormType, v)
	if !ok {
		panic(fmt.Sprintf("dataform: field %q is not registered for FORM_TYPE %q", v, f.FormType))
	}
	fd := &Field{Var: v, Type: spec.Type, Label: label, Values: values}
	for _, o := range spec.Options {
		fd.Options = append(fd.Options, Option{Label: o.Label, Value: o.Value})
	}
	f.Fields = append(f.Fields, fd)
	return fd
}

// AddBool appends boolean field v.
func (f *Form) AddBool(v, label string, b bool) *Field { return f.Add(v, label, FormatBool(b)) }

// AddOption adds a choice to a list field unless it has it already.
func (fd *Field) AddOption(label, value string) *Field {
	for _, o := range fd.Options {
		if o.Value == value {
			return fd
		}
	}
	fd.Options = append(fd.Options, Option{Label: label, Value: value})
	return fd
}

// Element writes the form.
func (f *Form) Element() *xmlstream.Element {
	x := xmlstream.New(NS, "x", "type", f.Type)
	if f.Title != "" {
		x.AddChild(xmlstream.New(NS, "title").AddText(f.Title))
	}
	if f.Instructions != "" {
		x.AddChild(xmlstream.New(NS, "instructions").AddText(f.Instructions))
	}
	if f.FormType != "" {
		ft := xmlstream.New(NS, "field", "var", FormTypeVar)
		if f.Type != TypeSubmit {
			ft.SetAttr("type", Hidden)
		}
		x.AddChild(ft.AddChild(xmlstream.New(NS, "value").AddText(f.FormType)))
	}
	for _, fd := range f.Fields {
		el := xmlstream.New(NS, "field")
		if fd.Var != "" {
			el.SetAttr("var", fd.Var)
		}
		// A submitted form names its fields only (XEP-0004 §3.2).
		if fd.Type != "" && f.Type != TypeSubmit {
			el.SetAttr("type", fd.Type)
		}
		if fd.Label != "" && f.Type != TypeSubmit {
			el.SetAttr("label", fd.Label)
		}
		for _, v := range fd.Values {
			el.AddChild(xmlstream.New(NS, "value").AddText(v))
		}
		if f.Type == TypeForm {
			for _, o := range fd.Options {
				opt := xmlstream.New(NS, "option")
				if o.Label != "" {
					opt.SetAttr("label", o.Label)
				}
				el.AddChild(opt.AddChild(xmlstream.New(NS, "value").AddText(o.Value)))
			}
		}
		x.AddChild(el)
	}
	return x
}

// validJID reports whether s is a JID (jid-single and jid-multi values).
func validJID(s string) bool {
	_, err := jid.Parse(s)
	return err == nil
}
