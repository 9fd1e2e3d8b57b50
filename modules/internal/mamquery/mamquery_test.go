package mamquery

import (
	"slices"
	"strings"
	"testing"
	"time"

	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

var limits = Limits{DefaultMax: 10, MaxMax: 20, MaxIDs: 3, With: true}

func parse(t *testing.T, s string, l Limits) (Query, error) {
	t.Helper()
	el, err := xmlstream.ParseElement([]byte(s), stanza.NSClient)
	if err != nil {
		t.Fatalf("test query %s: %v", s, err)
	}
	return Parse(el, l)
}

const (
	formHead = `<query xmlns='urn:xmpp:mam:2' queryid='q'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>`
	formTail = `</x></query>`
)

func TestParse(t *testing.T) {
	q, err := parse(t, formHead+
		`<field var='with'><value>Bob@Example.org</value></field>`+
		`<field var='start'><value>2024-05-01T12:00:00.5Z</value></field>`+
		`<field var='end'><value>2024-05-02T12:00:00+02:00</value></field>`+
		`<field var='after-id'><value>a</value></field><field var='before-id'><value>b</value></field>`+
		`<field var='ids'><value>x</value><value>y</value></field>`+formTail, limits)
	if err != nil {
		t.Fatal(err)
	}
	if q.QueryID != "q" || q.With != "bob@example.org" || !q.Start.Equal(time.Date(2024, 5, 1, 12, 0, 0, 5e8, time.UTC)) ||
		!q.End.Equal(time.Date(2024, 5, 2, 10, 0, 0, 0, time.UTC)) || q.AfterID != "a" || q.BeforeID != "b" ||
		strings.Join(q.IDs, ",") != "x,y" || q.Max != 10 {
		t.Errorf("parsed %+v", q)
	}
	q, err = parse(t, `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>99</max><before/></set><flip-page/></query>`, limits)
	if err != nil || q.Max != 20 || !q.Last || q.Before != "" || !q.FlipPage {
		t.Errorf("RSM = %+v, %v; want max capped at 20, last page, flipped", q, err)
	}
	q, err = parse(t, `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>0</max><after>c</after></set></query>`, limits)
	if err != nil || q.Max != 0 || q.After != "c" {
		t.Errorf("RSM max 0 = %+v, %v", q, err)
	}
}

func TestParseRefuses(t *testing.T) {
	rsm := func(s string) string {
		return `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'>` + s + `</set></query>`
	}
	noWith := limits
	noWith.With = false
	cases := []struct {
		name, q string
		l       Limits
		want    string
	}{
		{"form type", `<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field></x></query>`, limits, "bad-request"},
		{"form not submitted", `<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='form'/></query>`, limits, "bad-request"},
		{"bad date", formHead + `<field var='end'><value>tomorrow</value></field>` + formTail, limits, "bad-request"},
		{"bad with", formHead + `<field var='with'><value>@@</value></field>` + formTail, limits, "jid-malformed"},
		{"with unsupported", formHead + `<field var='with'><value>a@b</value></field>` + formTail, noWith, "feature-not-implemented"},
		{"two values", formHead + `<field var='after-id'><value>a</value><value>b</value></field>` + formTail, limits, "bad-request"},
		{"too many ids", formHead + `<field var='ids'><value>1</value><value>2</value><value>3</value><value>4</value></field>` + formTail, limits, "policy-violation"},
		{"unknown field", formHead + `<field var='colour'><value>red</value></field>` + formTail, limits, "feature-not-implemented"},
		{"negative max", rsm(`<max>-1</max>`), limits, "bad-request"},
		{"max not a number", rsm(`<max>x</max>`), limits, "bad-request"},
		{"empty after", rsm(`<after/>`), limits, "bad-request"},
		{"index", rsm(`<index>2</index>`), limits, "feature-not-implemented"},
	}
	for _, c := range cases {
		_, err := parse(t, c.q, c.l)
		if got := stanza.AsError(err); err == nil || got.Condition != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
}

func TestFormAndFin(t *testing.T) {
	if f := Form(limits).String(); !strings.Contains(f, `var="with"`) || !strings.Contains(f, `var="ids"`) {
		t.Errorf("form with 'with': %s", f)
	}
	if f := Form(Limits{}).String(); strings.Contains(f, `var="with"`) {
		t.Errorf("form without 'with': %s", f)
	}
	fin := Fin("q", false, "a", "b", 7).String()
	for _, want := range []string{`complete="false"`, `queryid="q"`, "<first>a</first>", "<last>b</last>", "<count>7</count>"} {
		if !strings.Contains(fin, want) {
			t.Errorf("fin %s lacks %s", fin, want)
		}
	}
	if fin := Fin("", true, "", "", 0).String(); strings.Contains(fin, "first") || strings.Contains(fin, "queryid") || !strings.Contains(fin, `complete="true"`) {
		t.Errorf("empty fin %s", fin)
	}
}

func TestCapBytes(t *testing.T) {
	sizes := []int{400, 400, 400, 400}
	id := func(n int) int { return n }
	for _, c := range []struct {
		name      string
		msgs      []int
		backwards bool
		limit     int
		want      []int
		cut       bool
	}{
		{"fits", sizes, false, 1600, sizes, false},
		{"forwards keeps the oldest", []int{100, 200, 300, 400}, false, 350, []int{100, 200}, true},
		{"backwards keeps the newest", []int{100, 200, 300, 400}, true, 750, []int{300, 400}, true},
		{"one message over the limit still goes", []int{5000, 1}, false, 1000, []int{5000}, true},
		{"empty", nil, false, 10, nil, false},
	} {
		got, cut := CapBytes(c.msgs, id, c.backwards, c.limit)
		if !slices.Equal(got, c.want) || cut != c.cut {
			t.Errorf("%s: got %v (cut %v), want %v (cut %v)", c.name, got, cut, c.want, c.cut)
		}
	}
}
