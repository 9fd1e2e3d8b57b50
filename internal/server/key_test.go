package server

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"parley/internal/config"
)

func keyConfig(t *testing.T, keyFile string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg.Storage.KeyFile = keyFile
	return cfg
}

// TestKeyFileDefault: without key_file the key stays server.secret in
// data_dir, so existing installations keep their key.
func TestKeyFileDefault(t *testing.T) {
	cfg := keyConfig(t, "")
	k1, err := loadKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.DataDir, "server.secret")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("server.secret was not created: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("server.secret is %04o, want 0600", fi.Mode().Perm())
	}
	k2, err := loadKey(cfg)
	if err != nil || !bytes.Equal(k1, k2) || len(k1) != 32 {
		t.Fatalf("second load: %x, %v; first %x", k2, err, k1)
	}
}

// TestKeyFileElsewhere: key_file is created 0600 where it says, and
// data_dir holds no key.
func TestKeyFileElsewhere(t *testing.T) {
	keys := t.TempDir()
	cfg := keyConfig(t, filepath.Join(keys, "parley.key"))
	k1, err := loadKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(cfg.Storage.KeyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "server.secret")); !os.IsNotExist(err) {
		t.Errorf("server.secret in data_dir: %v, want none", err)
	}
	k2, err := loadKey(cfg)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second load: %v", err)
	}
}

// TestKeyFileRefused: a key file that cannot be read, is damaged, or is
// missing while the old one still sits in data_dir stops the start with
// a message naming the key.
func TestKeyFileRefused(t *testing.T) {
	t.Run("unreadable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads any file")
		}
		path := filepath.Join(t.TempDir(), "parley.key")
		if err := os.WriteFile(path, bytes.Repeat([]byte{7}, 32), 0o000); err != nil {
			t.Fatal(err)
		}
		_, err := loadKey(keyConfig(t, path))
		if err == nil || !strings.Contains(err.Error(), "storage.key_file") || !strings.Contains(err.Error(), path) {
			t.Fatalf("unreadable key file: %v", err)
		}
	})
	t.Run("a directory", func(t *testing.T) {
		path := t.TempDir()
		if _, err := loadKey(keyConfig(t, path)); err == nil || !strings.Contains(err.Error(), "storage.key_file") {
			t.Fatalf("a directory as key file: %v", err)
		}
	})
	t.Run("damaged", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "parley.key")
		if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadKey(keyConfig(t, path)); err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("damaged key file: %v", err)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "no", "such", "parley.key")
		if _, err := loadKey(keyConfig(t, path)); err == nil || !strings.Contains(err.Error(), "storage.key_file") {
			t.Fatalf("key file in a missing directory: %v", err)
		}
	})
	t.Run("not moved", func(t *testing.T) {
		cfg := keyConfig(t, filepath.Join(t.TempDir(), "parley.key"))
		old := filepath.Join(cfg.DataDir, "server.secret")
		if err := os.WriteFile(old, bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := loadKey(cfg)
		if err == nil || !strings.Contains(err.Error(), "mv "+old) {
			t.Fatalf("key_file missing beside an old server.secret: %v", err)
		}
		if _, err := os.Stat(cfg.Storage.KeyFile); !os.IsNotExist(err) {
			t.Errorf("a new key was written: %v", err)
		}
	})
}
