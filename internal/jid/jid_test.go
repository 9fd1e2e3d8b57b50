package jid

import (
	"errors"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		name                    string
		in                      string
		local, domain, resource string
		str                     string // canonical form; "" means same as in
	}{
		// RFC 7622 §3.5.1 examples.
		{"rfc bare", "juliet@example.com", "juliet", "example.com", "", ""},
		{"rfc full", "juliet@example.com/foo", "juliet", "example.com", "foo", ""},
		{"rfc resource with space", "juliet@example.com/foo bar", "juliet", "example.com", "foo bar", ""},
		{"rfc resource with at", "juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar", ""},
		{"rfc escaped local", `foo\20bar@example.com`, `foo\20bar`, "example.com", "", ""},
		{"rfc fussball", "fussball@example.com", "fussball", "example.com", "", ""},
		{"rfc sharp s", "fußball@example.com", "fußball", "example.com", "", ""},
		{"rfc pi", "π@example.com", "π", "example.com", "", ""},
		{"rfc capital sigma", "Σ@example.com/foo", "σ", "example.com", "foo", "σ@example.com/foo"},
		{"rfc small sigma", "σ@example.com/foo", "σ", "example.com", "foo", ""},
		{"rfc final sigma", "ς@example.com/foo", "ς", "example.com", "foo", ""},
		{"rfc chess king resource", "king@example.com/♚", "king", "example.com", "♚", ""},
		{"rfc domain only", "example.com", "", "example.com", "", ""},
		{"rfc domain with resource", "example.com/foobar", "", "example.com", "foobar", ""},
		{"rfc resource looks like jid", "a.example.com/b@example.net", "", "a.example.com", "b@example.net", ""},

		// Case: localpart and domainpart fold, resourcepart is preserved.
		{"case folding", "Juliet@Example.COM/Balcony", "juliet", "example.com", "Balcony", "juliet@example.com/Balcony"},
		{"non-ascii case folding", "ÉLODIE@EXAMPLE.COM", "élodie", "example.com", "", "élodie@example.com"},
		{"idn uppercase domain", "user@BÜCHER.example", "user", "bücher.example", "", "user@bücher.example"},
		// Width mapping: fullwidth forms fold to their ASCII counterparts.
		{"fullwidth local", "ｊｕｌｉｅｔ@example.com", "juliet", "example.com", "", "juliet@example.com"},
		{"fullwidth domain", "juliet@ｅｘａｍｐｌｅ．ｃｏｍ", "juliet", "example.com", "", "juliet@example.com"},
		{"ideographic full stop", "juliet@example。com", "juliet", "example.com", "", "juliet@example.com"},
		// NFC: decomposed input composes.
		{"nfc local", "e\u0301lodie@example.com", "élodie", "example.com", "", "élodie@example.com"},
		{"nfc resource", "a@example.com/e\u0301", "a", "example.com", "é", "a@example.com/é"},
		// Resource: non-ASCII spaces become ASCII space (OpaqueString).
		{"resource nbsp", "a@example.com/x\u00a0y", "a", "example.com", "x y", "a@example.com/x y"},
		{"resource with slash", "a@example.com/b/c", "a", "example.com", "b/c", ""},
		{"resource only spaces", "a@example.com/ ", "a", "example.com", " ", ""},

		// Domain forms.
		{"punycode to unicode", "a@xn--bcher-kva.example", "a", "bücher.example", "", "a@bücher.example"},
		{"trailing dot", "juliet@example.com./r", "juliet", "example.com", "r", "juliet@example.com/r"},
		{"single label", "localhost", "", "localhost", "", ""},
		{"ipv4", "juliet@192.0.2.1/r", "juliet", "192.0.2.1", "r", ""},
		{"ipv6", "juliet@[2001:DB8:0::1]/r", "juliet", "[2001:db8::1]", "r", "juliet@[2001:db8::1]/r"},
		{"ipv6 loopback", "[::1]", "", "[::1]", "", ""},
		{"digits label", "123.example", "", "123.example", "", ""},
		{"hyphen inside", "my-host.example", "", "my-host.example", "", ""},

		// Localpart punctuation allowed by IdentifierClass.
		{"local punctuation", "a.b-c_d+e!#$%*=?^`{|}~@example.com", "a.b-c_d+e!#$%*=?^`{|}~", "example.com", "", ""},
		{"local digits", "12345@example.com", "12345", "example.com", "", ""},
		{"local max length", strings.Repeat("a", 1023) + "@example.com", strings.Repeat("a", 1023), "example.com", "", ""},
		{"resource max length", "a@example.com/" + strings.Repeat("r", 1023), "a", "example.com", strings.Repeat("r", 1023), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.in, err)
			}
			if j.Local() != tt.local || j.Domain() != tt.domain || j.Resource() != tt.resource {
				t.Errorf("Parse(%q) = (%q, %q, %q), want (%q, %q, %q)",
					tt.in, j.Local(), j.Domain(), j.Resource(), tt.local, tt.domain, tt.resource)
			}
			want := tt.str
			if want == "" {
				want = tt.in
			}
			if got := j.String(); got != want {
				t.Errorf("String() = %q, want %q", got, want)
			}
			again, err := Parse(j.String())
			if err != nil || again != j {
				t.Errorf("Parse(String()) = %v, %v; want %v", again, err, j)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		// RFC 7622 §3.5.2 examples.
		{"rfc quoted local", `"juliet"@example.com`},
		{"rfc space in local", "foo bar@example.com"},
		{"rfc empty resource", "juliet@example.com/"},
		{"rfc empty local and resource", "@example.com/"},
		{"rfc roman numeral four", "henry\u2163@example.com"},
		{"rfc chess king local", "♚@example.com"},
		{"rfc empty domain after at", "juliet@"},
		{"rfc empty domain before slash", "/foobar"},

		// Empty parts.
		{"empty string", ""},
		{"empty local", "@example.com"},
		{"empty domain with local and resource", "juliet@/r"},
		{"only dot", "."},
		{"double trailing dot", "example.com.."},
		{"empty label", "a..example.com"},
		{"leading dot", ".example.com"},

		// RFC 7622 additional localpart exclusions.
		{"local ampersand", "a&b@example.com"},
		{"local apostrophe", "o'hara@example.com"},
		{"local colon", "a:b@example.com"},
		{"local less than", "a<b@example.com"},
		{"local greater than", "a>b@example.com"},
		{"local two ats", "a@b@example.com"},
		{"local fullwidth at", "a＠b@example.com"},
		{"local control", "a\x01b@example.com"},
		{"local invalid utf8", "a\xffb@example.com"},
		{"local tab", "a\tb@example.com"},

		// Domain characters.
		{"domain space", "juliet@exa mple.com"},
		{"domain underscore", "juliet@exa_mple.com"},
		{"domain control", "juliet@exa\x00mple.com"},
		{"domain ideographic space", "juliet@exa\u3000mple.com"},
		{"domain leading hyphen", "juliet@-example.com"},
		{"domain trailing hyphen", "juliet@example-.com"},
		{"domain bad punycode", "juliet@xn--.example"},
		{"domain ascii punycode", "juliet@xn--abc-.example"},
		{"domain unbracketed ipv6", "juliet@::1"},
		{"domain bad ipv6", "juliet@[::g]"},
		{"domain ipv4 in brackets", "juliet@[192.0.2.1]"},
		{"domain unterminated ipv6", "juliet@[::1"},
		{"domain ipv6 zone", "juliet@[fe80::1%25eth0]"},
		{"domain invalid utf8", "juliet@exa\xffmple.com"},

		// Resource characters.
		{"resource control", "a@example.com/x\x07"},
		{"resource newline", "a@example.com/x\ny"},
		{"resource invalid utf8", "a@example.com/\xff"},

		// Too long parts (1023 bytes maximum each).
		{"local too long", strings.Repeat("a", 1024) + "@example.com"},
		{"local too long non-ascii", strings.Repeat("é", 512) + "@example.com"},
		{"domain too long", "a@" + strings.Repeat("a.", 511) + "ab"},
		{"resource too long", "a@example.com/" + strings.Repeat("r", 1024)},
		{"resource too long non-ascii", "a@example.com/" + strings.Repeat("é", 512)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want error", tt.in, j)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse(%q) error %v does not wrap ErrMalformed", tt.in, err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name                    string
		local, domain, resource string
		want                    string
		wantErr                 bool
	}{
		{"full", "Juliet", "Example.com", "Balcony", "juliet@example.com/Balcony", false},
		{"domain only", "", "example.com", "", "example.com", false},
		{"no local", "", "example.com", "r", "example.com/r", false},
		{"no domain", "juliet", "", "", "", true},
		// New takes parts already split, so separators inside a part are
		// part content, validated by that part's rules.
		{"at in local", "a@b", "example.com", "", "", true},
		{"slash in local", "a/b", "example.com", "", "", true},
		{"slash in domain", "", "example.com/x", "", "", true},
		{"at in domain", "", "a@example.com", "", "", true},
		{"slash in resource", "", "example.com", "a/b", "example.com/a/b", false},
		{"domain trailing dot", "", "example.com.", "", "example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := New(tt.local, tt.domain, tt.resource)
			if tt.wantErr {
				if err == nil || !errors.Is(err, ErrMalformed) {
					t.Fatalf("New(%q, %q, %q) = %v, %v; want ErrMalformed", tt.local, tt.domain, tt.resource, j, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q, %q, %q) error: %v", tt.local, tt.domain, tt.resource, err)
			}
			if got := j.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAccessors(t *testing.T) {
	tests := []struct {
		in                       string
		bare                     string
		isBare, isDomain, isZero bool
	}{
		{"juliet@example.com/balcony", "juliet@example.com", false, false, false},
		{"juliet@example.com", "juliet@example.com", true, false, false},
		{"example.com", "example.com", true, true, false},
		{"example.com/r", "example.com", false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			j := MustParse(tt.in)
			if got := j.Bare().String(); got != tt.bare {
				t.Errorf("Bare() = %q, want %q", got, tt.bare)
			}
			if !j.Bare().IsBare() {
				t.Errorf("Bare().IsBare() = false")
			}
			if got := j.IsBare(); got != tt.isBare {
				t.Errorf("IsBare() = %v, want %v", got, tt.isBare)
			}
			if got := j.IsDomain(); got != tt.isDomain {
				t.Errorf("IsDomain() = %v, want %v", got, tt.isDomain)
			}
			if got := j.IsZero(); got != tt.isZero {
				t.Errorf("IsZero() = %v, want %v", got, tt.isZero)
			}
		})
	}
	var zero JID
	if !zero.IsZero() || zero.IsDomain() || zero.String() != "" {
		t.Errorf("zero JID: IsZero=%v IsDomain=%v String=%q", zero.IsZero(), zero.IsDomain(), zero.String())
	}
}

func TestWithResource(t *testing.T) {
	base := MustParse("juliet@example.com/old")
	tests := []struct {
		r       string
		want    string
		wantErr bool
	}{
		{"Balcony", "juliet@example.com/Balcony", false},
		{"x\u00a0y", "juliet@example.com/x y", false},
		{"", "juliet@example.com", false},
		{"bad\x00", "", true},
		{strings.Repeat("r", 1024), "", true},
	}
	for _, tt := range tests {
		j, err := base.WithResource(tt.r)
		if tt.wantErr {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("WithResource(%q) = %v, %v; want ErrMalformed", tt.r, j, err)
			}
			continue
		}
		if err != nil || j.String() != tt.want {
			t.Errorf("WithResource(%q) = %q, %v; want %q", tt.r, j, err, tt.want)
		}
	}
}

func TestEqualAndMapKey(t *testing.T) {
	a := MustParse("Juliet@EXAMPLE.com/Balcony")
	b := MustParse("juliet@example.com/Balcony")
	c := MustParse("juliet@example.com/balcony")
	if !a.Equal(b) {
		t.Errorf("%v should equal %v", a, b)
	}
	if a.Equal(c) {
		t.Errorf("%v should differ from %v (resource is case-sensitive)", a, c)
	}
	m := map[JID]int{a: 1}
	if m[b] != 1 {
		t.Errorf("map lookup with equal JID failed")
	}
	if _, ok := m[c]; ok {
		t.Errorf("map lookup with different resource succeeded")
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("MustParse did not panic on invalid input")
		}
	}()
	MustParse("@example.com")
}

// TestFastPathsAgree pins the ASCII fast paths to the PRECIS/IDNA slow
// paths on hand-picked inputs; FuzzParse extends this to random input.
func TestFastPathsAgree(t *testing.T) {
	inputs := []string{
		"juliet", "Juliet", "JULIET", "a.b", "a-b", "a_b", "a+b", "123", "-", "!", "~",
		"x", "example.com", "EXAMPLE.COM", "a.b.c", "a1-b2", "1.2.3.4x", "ab-c", "abc-", "a--b",
		"foo bar", " ", "  x  ", "\\20", "xn--bcher-kva.example", "ab--cd.example", "a:b", "a@b", "Ab&c",
	}
	for _, s := range inputs {
		checkFastPaths(t, s)
	}
}

func checkFastPaths(t *testing.T, s string) {
	t.Helper()
	if fast, ok := asciiLocal(s); ok {
		slow, err := slowLocal(s)
		if err != nil || slow != fast {
			t.Errorf("localpart %q: fast %q, slow %q (%v)", s, fast, slow, err)
		}
	}
	if asciiResource(s) {
		slow, err := slowResource(s)
		if err != nil || slow != s {
			t.Errorf("resourcepart %q: fast accepts unchanged, slow %q (%v)", s, slow, err)
		}
	}
	if fast, ok := asciiDomain(s); ok {
		slow, err := slowDomain(s, false)
		if err != nil || slow != fast {
			t.Errorf("domainpart %q: fast %q, slow %q (%v)", s, fast, slow, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		"juliet@example.com/balcony", "Juliet@Example.COM/Balcony", "example.com",
		"a.example.com/b@example.net", "fußball@example.com", "Σ@example.com/foo",
		"king@example.com/♚", "[::1]", "192.0.2.1", "xn--bcher-kva.example",
		"ｊｕｌｉｅｔ@ｅｘａｍｐｌｅ．ｃｏｍ", "henry\u2163@example.com", "a@b@c/d/e", "example.com.",
		"@example.com", "juliet@", "/x", "a@example.com/x\u00a0y", "\u05d0@example.com",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkFastPaths(t, s)
		j, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrMalformed", s, err)
			}
			return
		}
		str := j.String()
		again, err := Parse(str)
		if err != nil {
			t.Fatalf("Parse(%q) ok as %q, but reparsing fails: %v", s, str, err)
		}
		if again != j {
			t.Fatalf("Parse(%q) = %#v; Parse(%q) = %#v", s, j, str, again)
		}
		if again.String() != str {
			t.Fatalf("String not stable: %q then %q", str, again.String())
		}
		if len(j.Local()) > maxPartBytes || len(j.Domain()) > maxPartBytes || len(j.Resource()) > maxPartBytes {
			t.Fatalf("Parse(%q) accepted a part over %d bytes", s, maxPartBytes)
		}
		if j.Domain() == "" {
			t.Fatalf("Parse(%q) accepted an empty domain", s)
		}
		n, err := New(j.Local(), j.Domain(), j.Resource())
		if err != nil || n != j {
			t.Fatalf("New of parsed parts of %q = %#v, %v; want %#v", s, n, err, j)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	cases := []struct{ name, in string }{
		{"ascii", "juliet@example.com/balcony"},
		{"ascii-upper", "Juliet@Example.com/Balcony"},
		{"unicode", "fußball@bücher.example/♚"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				// b.Loop keeps the call alive, so no sink is needed.
				if _, err := Parse(c.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
