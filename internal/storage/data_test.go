package storage

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestValidateOwnerAndContact(t *testing.T) {
	part := strings.Repeat("p", MaxJIDPartBytes)
	tests := []struct {
		jid              string
		owner, contact   bool // valid as
		wantErrSubstring string
	}{
		{"alice@example.com", true, true, ""},
		{"ünï@例え.jp", true, true, ""},
		{"example.com", false, true, "no localpart"},
		{part + "@" + part, true, true, ""},
		{part + "p@example.com", false, false, "longer than"},
		{"alice@" + part + "p", false, false, "longer than"},
		{"", false, false, ""},
		{"@example.com", false, false, "empty localpart"},
		{"alice@", false, false, "empty domain"},
		{"alice@example.com/res", false, false, "not a bare JID"},
		{"example.com/res", false, false, ""}, // owner: no localpart; contact: not bare
		{"a@b@c", false, false, "not a bare JID"},
		{"a\x00@example.com", false, false, "NUL"},
		{"a\xff@example.com", false, false, "UTF-8"},
	}
	for _, tc := range tests {
		for _, v := range []struct {
			what  string
			valid bool
			fn    func(string) error
		}{{"ValidateOwner", tc.owner, ValidateOwner}, {"ValidateContact", tc.contact, ValidateContact}} {
			err := v.fn(tc.jid)
			switch {
			case v.valid && err != nil:
				t.Errorf("%s(%.30q): %v", v.what, tc.jid, err)
			case !v.valid && !errors.Is(err, ErrInvalid):
				t.Errorf("%s(%.30q) err = %v, want ErrInvalid", v.what, tc.jid, err)
			case !v.valid && !strings.Contains(err.Error(), tc.wantErrSubstring):
				t.Errorf("%s(%.30q) err = %v, want it to mention %q", v.what, tc.jid, err, tc.wantErrSubstring)
			}
		}
	}
}

func TestNormaliseRosterItem(t *testing.T) {
	long := strings.Repeat("x", MaxRosterTextBytes+1)
	tests := []struct {
		name       string
		in         RosterItem
		wantGroups []string
		wantErr    string
	}{
		{"no groups", RosterItem{Contact: "a@b", Subscription: SubNone}, nil, ""},
		{"empty groups become nil", RosterItem{Contact: "a@b", Subscription: SubTo, Groups: []string{}}, nil, ""},
		{"sorted and deduplicated", RosterItem{Contact: "a@b", Subscription: SubFrom, Groups: []string{"b", "a", "b", "B"}}, []string{"B", "a", "b"}, ""},
		{"byte order, not locale", RosterItem{Contact: "b", Subscription: SubBoth, Groups: []string{"ä", "z", "Z"}}, []string{"Z", "z", "ä"}, ""},
		{"unknown subscription", RosterItem{Contact: "a@b", Subscription: "pending"}, nil, "unknown subscription"},
		{"empty subscription", RosterItem{Contact: "a@b"}, nil, "unknown subscription"},
		{"bad contact", RosterItem{Contact: "a@b/c", Subscription: SubNone}, nil, "not a bare JID"},
		{"empty group", RosterItem{Contact: "a@b", Subscription: SubNone, Groups: []string{"x", ""}}, nil, "empty group"},
		{"group too long", RosterItem{Contact: "a@b", Subscription: SubNone, Groups: []string{long}}, nil, "more than"},
		{"name too long", RosterItem{Contact: "a@b", Subscription: SubNone, Name: long}, nil, "more than"},
		{"name not UTF-8", RosterItem{Contact: "a@b", Subscription: SubNone, Name: "\xc0"}, nil, "UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig := slices.Clone(tc.in.Groups)
			got, err := NormaliseRosterItem(tc.in)
			if !slices.Equal(tc.in.Groups, orig) {
				t.Errorf("caller's groups changed to %q", tc.in.Groups)
			}
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Groups, tc.wantGroups) || (got.Groups == nil) != (tc.wantGroups == nil) {
				t.Errorf("Groups = %#v, want %#v", got.Groups, tc.wantGroups)
			}
			if got.Contact != tc.in.Contact || got.Subscription != tc.in.Subscription || got.Name != tc.in.Name {
				t.Errorf("other fields changed: %+v", got)
			}
		})
	}
}

func TestGroupsEncoding(t *testing.T) {
	tests := [][]string{nil, {"a"}, {"", "a"}, {"<&>", "\"quoted\"", "back\\slash", "new\nline", "ü", "\u2028"}}
	for _, groups := range tests {
		enc := EncodeGroups(groups)
		got, err := DecodeGroups(enc)
		if err != nil {
			t.Fatalf("DecodeGroups(%q): %v", enc, err)
		}
		if !slices.Equal(got, groups) {
			t.Errorf("round trip of %q via %q = %q", groups, enc, got)
		}
	}
	if got := EncodeGroups([]string{}); got != "[]" {
		t.Errorf("EncodeGroups(empty) = %q, want []", got)
	}
	for _, bad := range []string{"", "[", "{}", `["a",1]`} {
		if _, err := DecodeGroups(bad); err == nil {
			t.Errorf("DecodeGroups(%q) succeeded", bad)
		}
	}
}

// Whatever a client sends as group names, what NormaliseRosterItem accepts
// must come back from the column encoding exactly.
func FuzzGroupsRoundTrip(f *testing.F) {
	f.Add("a", "b", "a")
	f.Add("\"", "\\", "\n")
	f.Add("ü", "\u2028", "<>&")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		it, err := NormaliseRosterItem(RosterItem{Contact: "x@y", Subscription: SubNone, Groups: []string{a, b, c}})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("non-ErrInvalid rejection: %v", err)
			}
			for _, g := range []string{a, b, c} {
				if g == "" || !utf8.ValidString(g) || strings.IndexByte(g, 0) >= 0 || len(g) > MaxRosterTextBytes {
					return
				}
			}
			t.Fatalf("valid groups %q rejected: %v", []string{a, b, c}, err)
		}
		if !slices.IsSorted(it.Groups) || len(slices.Compact(slices.Clone(it.Groups))) != len(it.Groups) {
			t.Fatalf("groups %q not sorted and distinct", it.Groups)
		}
		got, err := DecodeGroups(EncodeGroups(it.Groups))
		if err != nil || !slices.Equal(got, it.Groups) {
			t.Fatalf("round trip of %q = %q, %v", it.Groups, got, err)
		}
	})
}

func TestValidateKV(t *testing.T) {
	long := strings.Repeat("k", MaxKeyBytes+1)
	tests := []struct {
		name      string
		err       error
		wantValid bool
	}{
		{"namespace", ValidateNamespace("vcard-temp"), true},
		{"longest namespace", ValidateNamespace(long[1:]), true},
		{"empty namespace", ValidateNamespace(""), false},
		{"long namespace", ValidateNamespace(long), false},
		{"empty key", ValidateKey(""), true},
		{"longest key", ValidateKey(long[1:]), true},
		{"long key", ValidateKey(long), false},
		{"NUL key", ValidateKey("\x00"), false},
		{"largest blob", ValidateBlob("v", make([]byte, MaxValueBytes)), true},
		{"oversized blob", ValidateBlob("v", make([]byte, MaxValueBytes+1)), false},
		{"nil blob", ValidateBlob("v", nil), true},
		{"pending", ValidatePending(Pending{Contact: "example.com", Stanza: []byte("<presence/>")}), true},
		{"pending from full JID", ValidatePending(Pending{Contact: "a@b/c"}), false},
		{"pending oversized", ValidatePending(Pending{Contact: "a@b", Stanza: make([]byte, MaxValueBytes+1)}), false},
	}
	for _, tc := range tests {
		if tc.wantValid && tc.err != nil {
			t.Errorf("%s: %v", tc.name, tc.err)
		}
		if !tc.wantValid && !errors.Is(tc.err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tc.name, tc.err)
		}
	}
}

func TestCeilMicro(t *testing.T) {
	base := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	tests := []struct {
		in, want time.Time
	}{
		{base, base},
		{base.Add(time.Nanosecond), base.Add(time.Microsecond)},
		{base.Add(999 * time.Nanosecond), base.Add(time.Microsecond)},
		{base.Add(-time.Nanosecond), base},
		{time.Unix(-1, 1), time.Unix(-1, 1000)},
	}
	for _, tc := range tests {
		if got := CeilMicro(tc.in); !got.Equal(tc.want) {
			t.Errorf("CeilMicro(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	now := StoredTime()
	if now.Location() != time.UTC || now.Nanosecond()%1000 != 0 || time.Since(now) > time.Minute {
		t.Errorf("StoredTime() = %v, want now in UTC, whole microseconds", now)
	}
}
