package control

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newTestServer(t *testing.T, limit int) (*Server, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctl") // short: unix socket paths are limited to ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, SocketName)
	s := NewServer(path, limit, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.Handle("echo", func(_ context.Context, args json.RawMessage) (any, error) {
		var a map[string]string
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, err
		}
		if a["fail"] != "" {
			return nil, errors.New(a["fail"])
		}
		return a, nil
	})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s, path
}

func TestCall(t *testing.T) {
	_, path := newTestServer(t, 1024)
	ctx := context.Background()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}
	var got map[string]string
	if err := Call(ctx, path, "echo", map[string]string{"x": "y"}, &got); err != nil || got["x"] != "y" {
		t.Fatalf("echo: %v %v", got, err)
	}
	if err := Call(ctx, path, "echo", map[string]string{"fail": "no such user"}, nil); err == nil || !strings.Contains(err.Error(), "no such user") {
		t.Fatalf("a handler's error: %v", err)
	}
	if err := Call(ctx, path, "nope", nil, nil); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("an unknown command: %v", err)
	}
	if err := Call(ctx, path, "echo", map[string]string{"x": strings.Repeat("a", 2000)}, nil); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("an oversized request: %v", err)
	}
}

func TestSecondServerAndNotRunning(t *testing.T) {
	s, path := newTestServer(t, 1024)
	other := NewServer(path, 1024, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := other.Listen(); err == nil || !strings.Contains(err.Error(), "another parley server") {
		t.Fatalf("a second server on the same socket: %v", err)
	}
	s.Stop(context.Background())
	if err := Call(context.Background(), path, "echo", nil, nil); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("after Stop: %v, want ErrNotRunning", err)
	}
}

func TestPathTooLong(t *testing.T) {
	s := NewServer("/tmp/"+strings.Repeat("d", 120)+"/"+SocketName, 1024, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Listen(); !errors.Is(err, ErrPathTooLong) {
		t.Fatalf("a 140-byte socket path: %v, want ErrPathTooLong", err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}
