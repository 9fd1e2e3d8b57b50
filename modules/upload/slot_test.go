package upload

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestSanitizeFilename(t *testing.T) {
	long := strings.Repeat("a", 200)
	tests := []struct{ in, want string }{
		{"photo.jpg", "photo.jpg"},
		{"../../etc/passwd", "passwd"},
		{`C:\Users\me\cv.pdf`, "cv.pdf"},
		{"dir/", "file"},
		{"..", "file"},
		{".", "file"},
		{"...hidden", "hidden"},
		{"name.", "name"},
		{"  spaced  ", "spaced"},
		{"tab\there", "tab_here"},
		{"new\nline", "new_line"},
		{"gpj\u202eexe.jpg", "gpj_exe.jpg"}, // right-to-left override
		{"zero\u200bwidth", "zero_width"},
		{`a"b*c:d<e>f?g|h`, "a_b_c_d_e_f_g_h"},
		{"bad\xffutf8", "bad_utf8"},
		{"Grüße 日本.txt", "Grüße 日本.txt"},
		{"100% #1;x.txt", "100% #1;x.txt"},
		{long + ".tar.gz", strings.Repeat("a", maxNameBytes-3) + ".gz"},
		{long, strings.Repeat("a", maxNameBytes)},
		{strings.Repeat("é", 100), strings.Repeat("é", maxNameBytes/2)},
	}
	for _, tt := range tests {
		if got := sanitizeFilename(tt.in); got != tt.want {
			t.Errorf("sanitizeFilename(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzSanitizeFilename(f *testing.F) {
	for _, s := range []string{"a.txt", "../x", "\u202e", "é", strings.Repeat("ü", 80) + ".jpeg", " . "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := sanitizeFilename(in)
		if got == "" || len(got) > maxNameBytes || !utf8.ValidString(got) {
			t.Fatalf("%q → %q: empty, too long or invalid UTF-8", in, got)
		}
		if strings.ContainsAny(got, `/\`) || got == "." || got == ".." || strings.HasPrefix(got, ".") || strings.HasSuffix(got, ".") {
			t.Fatalf("%q → %q: a path, not a name", in, got)
		}
		for _, r := range got {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("%q → %q: has %U", in, got, r)
			}
		}
		// The name must survive the trip through a URL unchanged, since
		// the MAC covers the decoded path.
		id := strings.Repeat("a", 32)
		p := slotPath(id, got)
		gotID, gotName, ok := splitPath(p)
		if !ok || gotID != id || gotName != got {
			t.Fatalf("%q: splitPath(%q) = %q, %q, %v", in, p, gotID, gotName, ok)
		}
		if sanitizeFilename(got) != got {
			t.Fatalf("%q → %q is not stable", in, got)
		}
	})
}

func TestNormalizeType(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"image/png", "image/png", true},
		{"IMAGE/PNG", "image/png", true},
		{"text/plain; charset=UTF-8", "text/plain; charset=UTF-8", true},
		{"text/plain;charset=UTF-8 ", "text/plain; charset=UTF-8", true},
		{"text/plain; b=2; a=1", "text/plain; a=1; b=2", true},
		{"image", "", false},
		{"image/", "", false},
		{"/png", "", false},
		{"a/b/c", "", false},
		{"image/png; x", "", false},
		{"not a type", "", false},
		{"", "", false},
		{"text/plain; x=" + strings.Repeat("y", 300), "", false},
	}
	for _, tt := range tests {
		got, ok := normalizeType(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("normalizeType(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSplitPath(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef"
	tests := []struct {
		in       string
		id, name string
		ok       bool
	}{
		{"/upload/" + id + "/a.png", id, "a.png", true},
		{"/upload/" + id + "/a b", id, "a b", true},
		{"/upload/" + id + "/", "", "", false},
		{"/upload/" + id, "", "", false},
		{"/upload/" + id + "/a/b", "", "", false},
		{"/upload/" + strings.ToUpper(id) + "/a", "", "", false},
		{"/upload/" + id[:31] + "/a", "", "", false},
		{"/other/" + id + "/a", "", "", false},
		{"/upload/", "", "", false},
	}
	for _, tt := range tests {
		gotID, gotName, ok := splitPath(tt.in)
		if gotID != tt.id || gotName != tt.name || ok != tt.ok {
			t.Errorf("splitPath(%q) = %q, %q, %v", tt.in, gotID, gotName, ok)
		}
	}
}

// FuzzVerify: no header a client makes up passes for a grant the server
// did not sign.
func FuzzVerify(f *testing.F) {
	m := &Module{key: []byte("0123456789abcdef0123456789abcdef")}
	path := slotPath(strings.Repeat("b", 32), "x.txt")
	signed := m.sign(path, grant{Owner: "alice@localhost", Size: 10, Expires: 1})
	f.Add(signed)
	f.Add(signed[:len(signed)-1])
	f.Add("Bearer e30.")
	f.Add("Bearer .")
	f.Fuzz(func(t *testing.T, header string) {
		g, err := m.verify(path, header)
		if err != nil {
			return
		}
		if header != signed && m.sign(path, g) != header {
			// Accepting another spelling of a signed grant is harmless
			// only if it is that same grant.
			if g != (grant{Owner: "alice@localhost", Size: 10, Expires: 1}) {
				t.Fatalf("accepted %q as %+v", header, g)
			}
		}
	})
}
