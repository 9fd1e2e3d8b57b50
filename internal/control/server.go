package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// Handler runs one command. Its result is encoded as the response's
// data; an error is sent back as the response's error text.
type Handler func(ctx context.Context, args json.RawMessage) (any, error)

// Server answers commands on the control socket.
type Server struct {
	path  string
	limit uint32
	log   *slog.Logger

	mu       sync.Mutex
	handlers map[string]Handler
	ln       net.Listener
	conns    map[net.Conn]struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// maxSocketPath is the longest unix socket path Linux takes (108 bytes
// with the terminating NUL).
const maxSocketPath = 107

// ErrPathTooLong says that data_dir is too deep for a unix socket.
var ErrPathTooLong = errors.New("control socket path too long")

// requestTimeout bounds one connection: the commands are short, and a
// client that stops halfway must not hold a goroutine.
const requestTimeout = 2 * time.Minute

// NewServer returns a server for the socket at path that accepts request
// frames of at most limit bytes.
func NewServer(path string, limit int, log *slog.Logger) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{path: path, limit: uint32(min(limit, 1<<31)), log: log,
		handlers: make(map[string]Handler), conns: make(map[net.Conn]struct{}), ctx: ctx, cancel: cancel}
}

// Handle registers h for cmd; registering a command twice is a
// programming error and panics at start-up.
func (s *Server) Handle(cmd string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.handlers[cmd]; dup {
		panic("control: command " + cmd + " registered twice")
	}
	s.handlers[cmd] = h
}

// Listen opens the socket, owner-only, and serves it until Stop. A socket
// file left by a server that died is replaced; one a running server
// answers on is not.
func (s *Server) Listen() error {
	if len(s.path) > maxSocketPath {
		return fmt.Errorf("%w: %s is %d bytes, over the %d a unix socket path may have", ErrPathTooLong, s.path, len(s.path), maxSocketPath)
	}
	if c, err := net.DialTimeout("unix", s.path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: another parley server is running with this data_dir", s.path)
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control socket %s: removing the stale socket: %w", s.path, err)
	}
	ln, err := net.Listen("unix", s.path)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", s.path, err)
	}
	// data_dir is 0700 already, so nobody else can reach the socket in
	// the moment before this chmod.
	if err := os.Chmod(s.path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control socket %s: %w", s.path, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serve(ln)
	}()
	return nil
}

func (s *Server) serve(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("control socket: accept failed", "err", err)
			}
			return
		}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(conn)
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
			conn.Close()
		}()
	}
}

func (s *Server) handle(conn net.Conn) {
	conn.SetDeadline(time.Now().Add(requestTimeout))
	var req Request
	if err := readFrame(conn, s.limit, &req); err != nil {
		var big errTooBig
		if errors.As(err, &big) {
			_ = writeFrame(conn, Response{Error: big.Error()})
		}
		return
	}
	s.mu.Lock()
	h := s.handlers[req.Cmd]
	s.mu.Unlock()
	if h == nil {
		_ = writeFrame(conn, Response{Error: fmt.Sprintf("unknown command %q", req.Cmd)})
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, requestTimeout)
	defer cancel()
	res, err := h(ctx, req.Args)
	resp := Response{OK: err == nil}
	if err != nil {
		resp.Error = err.Error()
	} else if res != nil {
		if resp.Data, err = json.Marshal(res); err != nil {
			resp = Response{Error: "encoding the result: " + err.Error()}
		}
	}
	if err := writeFrame(conn, resp); err != nil {
		s.log.Debug("control socket: writing a response failed", "cmd", req.Cmd, "err", err)
	}
}

// Stop closes the socket, removes its file, and waits for the commands
// in progress (whose context it cancels).
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.cancel()
	ln := s.ln
	for c := range s.conns {
		c.SetDeadline(time.Now())
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close() // a unix listener removes its file on Close
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("control socket: commands still running: %w", ctx.Err())
	}
}
