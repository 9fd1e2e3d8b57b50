package tlsconf

import (
	"bytes"
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
)

func TestSelfSignedIsCreatedAndReused(t *testing.T) {
	dir := t.TempDir()
	c1, err := Load("", "", dir, []string{"example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.Leaf.VerifyHostname("conference.example.org"); err != nil {
		t.Errorf("subdomain not covered: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, "selfsigned.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	c2, err := Load("", "", dir, []string{"example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c1.Certificate[0], c2.Certificate[0]) {
		t.Error("certificate not reused on the second start")
	}
	c3, err := Load("", "", dir, []string{"example.org", "other.example"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(c1.Certificate[0], c3.Certificate[0]) {
		t.Error("certificate not renewed when a host was added")
	}
	if err := c3.Leaf.VerifyHostname("other.example"); err != nil {
		t.Error(err)
	}
}

func TestConfigRefusesOldTLS(t *testing.T) {
	c, err := Load("", "", t.TempDir(), []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg := ServerConfig(c); cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("MinVersion %x", cfg.MinVersion)
	}
}

func TestExplicitFilesMissing(t *testing.T) {
	if _, err := Load("/nonexistent/c.pem", "/nonexistent/k.pem", t.TempDir(), []string{"x"}); err == nil {
		t.Fatal("missing files accepted")
	}
}
