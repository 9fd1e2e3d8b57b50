package bench

import (
	"strings"
	"testing"
)

// The SCRAM-SHA-1 exchange of RFC 5802 §5.
const (
	rfcNonce       = "fyko+d2lbbFgONRv9qkxdawL"
	rfcServerFirst = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
	rfcClientFinal = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
	rfcServerFinal = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="
)

func TestSCRAMRFC5802Vector(t *testing.T) {
	c := newSCRAMClient("user", "pencil", rfcNonce, newSaltCache())
	if got := string(c.First()); got != "n,,n=user,r="+rfcNonce {
		t.Fatalf("client-first = %q", got)
	}
	final, err := c.Final([]byte(rfcServerFirst))
	if err != nil {
		t.Fatal(err)
	}
	if string(final) != rfcClientFinal {
		t.Fatalf("client-final = %q, want %q", final, rfcClientFinal)
	}
	if err := c.Verify([]byte(rfcServerFinal)); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

func TestSCRAMRejects(t *testing.T) {
	tests := []struct {
		name, serverFirst, serverFinal, wantErr string
	}{
		{"nonce not extended", "r=" + rfcNonce + ",s=QSXCR+Q6sek8bf92,i=4096", "", "nonce"},
		{"other nonce", "r=xyz" + rfcNonce + ",s=QSXCR+Q6sek8bf92,i=4096", "", "nonce"},
		{"bad salt", "r=" + rfcNonce + "x,s=!!,i=4096", "", "salt"},
		{"empty salt", "r=" + rfcNonce + "x,s=,i=4096", "", "salt"},
		{"bad iterations", "r=" + rfcNonce + "x,s=QSXCR+Q6sek8bf92,i=0", "", "iteration"},
		{"iterations not a number", "r=" + rfcNonce + "x,s=QSXCR+Q6sek8bf92,i=many", "", "iteration"},
		{"mandatory extension", "m=ext,r=" + rfcNonce + "x,s=QSXCR+Q6sek8bf92,i=4096", "", "extension"},
		{"malformed", "garbage", "", "malformed"},
		{"wrong server signature", rfcServerFirst, "v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "signature"},
		{"server error", rfcServerFirst, "e=invalid-proof", "invalid-proof"},
		{"no signature", rfcServerFirst, "x=1", "signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newSCRAMClient("user", "pencil", rfcNonce, newSaltCache())
			c.First()
			_, err := c.Final([]byte(tt.serverFirst))
			if err == nil && tt.serverFinal != "" {
				err = c.Verify([]byte(tt.serverFinal))
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestSASLName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"user", "user"},
		{"a=b", "a=3Db"},
		{"a,b", "a=2Cb"},
		{"=,", "=3D=2C"},
	}
	for _, tt := range tests {
		if got := saslName(tt.in); got != tt.want {
			t.Errorf("saslName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSaltCacheReuses(t *testing.T) {
	cache := newSaltCache()
	a, err := cache.salted("pencil", []byte("salt"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := cache.salted("pencil", []byte("salt"), 4096)
	if &a[0] != &b[0] {
		t.Error("second lookup recomputed the salted password")
	}
	c, _ := cache.salted("pencil", []byte("salt"), 4095)
	d, _ := cache.salted("pencil2", []byte("salt"), 4096)
	if string(a) == string(c) || string(a) == string(d) {
		t.Error("different iterations or passwords gave the same salted password")
	}
	if len(cache.m) != 3 {
		t.Errorf("cache holds %d entries, want 3", len(cache.m))
	}
}

func TestRandomNonce(t *testing.T) {
	a, err := randomNonce()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := randomNonce()
	if a == b || len(a) < 16 || strings.Contains(a, ",") {
		t.Errorf("nonces %q and %q: want distinct, long, comma-free", a, b)
	}
}
