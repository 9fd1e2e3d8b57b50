package tlsconf

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writePair writes a self-signed certificate for hosts (and their
// wildcards) as certFile and keyFile.
func writePair(t *testing.T, certFile, keyFile string, hosts ...string) {
	t.Helper()
	certPEM, keyPEM, err := selfSigned(hosts, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCertsPickByName(t *testing.T) {
	dir := t.TempDir()
	writePair(t, filepath.Join(dir, "a.test.crt"), filepath.Join(dir, "a.test.key"), "a.test")
	writePair(t, filepath.Join(dir, "b.test", "fullchain.pem"), filepath.Join(dir, "b.test", "privkey.pem"), "b.test")
	c, err := NewCerts(Source{Dir: dir, SelfSignedDir: t.TempDir(), Hosts: []string{"c.test"}})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"a.test": "a.test", "B.TEST.": "b.test", "upload.a.test": "a.test",
		"x.upload.a.test": "c.test", "other.test": "c.test", "": "c.test",
	} {
		if got := c.ForDomain(name).Leaf.Subject.CommonName; got != want {
			t.Errorf("ForDomain(%q) is the certificate of %s, want %s", name, got, want)
		}
	}
	if got := c.Files(); len(got) != 2 {
		t.Errorf("Files() = %v", got)
	}
}

func TestCertsReloadKeepsOldOnError(t *testing.T) {
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "a.test.crt"), filepath.Join(dir, "a.test.key")
	writePair(t, crt, key, "a.test")
	c, err := NewCerts(Source{Dir: dir, SelfSignedDir: t.TempDir(), Hosts: []string{"a.test"}})
	if err != nil {
		t.Fatal(err)
	}
	old := c.ForDomain("a.test")
	if err := os.WriteFile(key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(); err == nil {
		t.Fatal("a broken key reloaded without error")
	}
	if c.ForDomain("a.test") != old {
		t.Error("a failed reload replaced the certificate")
	}
	writePair(t, crt, key, "a.test")
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	if c.ForDomain("a.test") == old {
		t.Error("reload kept the old certificate")
	}
}
