package storage

import (
	"strings"
	"testing"
	"time"
)

func TestDomainOf(t *testing.T) {
	tests := []struct {
		jid, want, wantErr string
	}{
		{"alice@example.com", "example.com", ""},
		{"ünï@例え.jp", "例え.jp", ""},
		{"a@b", "b", ""},
		{"", "", "no localpart"},
		{"example.com", "", "no localpart"},
		{"@example.com", "", "empty localpart"},
		{"alice@", "", "empty domain"},
		{"alice@example.com/res", "", "not a bare JID"},
		{"a@b@c", "", "not a bare JID"},
	}
	for _, tc := range tests {
		got, err := DomainOf(tc.jid)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("DomainOf(%q): %v", tc.jid, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("DomainOf(%q) err = %v, want %q", tc.jid, err, tc.wantErr)
		case got != tc.want:
			t.Errorf("DomainOf(%q) = %q, want %q", tc.jid, got, tc.want)
		}
	}
}

func TestValidateCredentials(t *testing.T) {
	tests := []struct {
		name    string
		creds   []Credential
		wantErr string
	}{
		{"none", nil, ""},
		{"three", []Credential{{Hash: "SHA-1"}, {Hash: "SHA-256"}, {Hash: "SHA-512"}}, ""},
		{"empty hash", []Credential{{Hash: "SHA-1"}, {}}, "without hash"},
		{"duplicate", []Credential{{Hash: "SHA-1"}, {Hash: "SHA-256"}, {Hash: "SHA-1"}}, `duplicate credential for hash "SHA-1"`},
		{"negative iterations", []Credential{{Hash: "SHA-1", Iterations: -1}}, "negative iteration"},
	}
	for _, tc := range tests {
		err := ValidateCredentials(tc.creds)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestCreatedTime(t *testing.T) {
	loc := time.FixedZone("X", -7*3600)
	tests := []struct {
		name string
		in   time.Time
		want time.Time
	}{
		{"truncates to microseconds", time.Date(2024, 1, 2, 3, 4, 5, 6789, time.UTC), time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)},
		{"converts to UTC", time.Date(2024, 1, 2, 20, 0, 0, 0, loc), time.Date(2024, 1, 3, 3, 0, 0, 0, time.UTC)},
		{"before 1970", time.Date(1960, 1, 1, 0, 0, 0, 999, time.UTC), time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		got := CreatedTime(tc.in)
		if !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("%s: CreatedTime(%v) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
	}
	before := time.Now().Add(-time.Second)
	got := CreatedTime(time.Time{})
	if got.Before(before) || got.After(time.Now().Add(time.Second)) || got.Location() != time.UTC {
		t.Errorf("CreatedTime(zero) = %v, want now in UTC", got)
	}
}
