package seal

import (
	"bytes"
	"errors"
	"testing"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestSealOpen(t *testing.T) {
	s, err := New(key(1))
	if err != nil {
		t.Fatal(err)
	}
	ad := AD("alice@example.org", "17", "bob@example.org")
	blob := s.Seal([]byte("hello"), ad)
	if got, err := s.Open(blob, ad); err != nil || string(got) != "hello" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	for name, other := range map[string][]byte{
		"another row":   AD("alice@example.org", "18", "bob@example.org"),
		"another owner": AD("carol@example.org", "17", "bob@example.org"),
		"another peer":  AD("alice@example.org", "17", "mallory@example.org"),
		// Lengths are encoded: moving a byte between fields is a change.
		"shifted fields": AD("alice@example.org1", "7", "bob@example.org"),
	} {
		if _, err := s.Open(blob, other); !errors.Is(err, ErrTampered) {
			t.Errorf("%s: Open = %v, want ErrTampered", name, err)
		}
	}
	flipped := bytes.Clone(blob)
	flipped[len(flipped)-1] ^= 1
	if _, err := s.Open(flipped, ad); !errors.Is(err, ErrTampered) {
		t.Errorf("altered ciphertext: %v, want ErrTampered", err)
	}
	s2, _ := New(key(2))
	if _, err := s2.Open(blob, ad); !errors.Is(err, ErrWrongKey) {
		t.Errorf("another key: %v, want ErrWrongKey", err)
	}
	if _, err := s.Open(nil, ad); !errors.Is(err, ErrTampered) {
		t.Errorf("empty blob: %v, want ErrTampered", err)
	}
}
