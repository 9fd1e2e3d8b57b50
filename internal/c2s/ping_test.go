package c2s

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"parley/internal/jid"
	"parley/internal/stream"
	"parley/internal/xmlstream"
)

// A server paused (SIGSTOP, a frozen VM) past its ping deadline finds,
// when it resumes, the deadline gone and the client's answer waiting in
// the socket. It reads the answer instead of ending the session.
func TestPingAnswerBufferedAtDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	cfg := &Config{IdleTimeout: time.Minute, PingTimeout: time.Minute, MaxOutput: 1 << 20,
		Log: slog.New(slog.DiscardHandler)}
	c := newConn(cfg, server, false, func() {})
	c.dec = xmlstream.NewDecoder(server, xmlstream.Limits{MaxStanzaBytes: 1 << 16})
	c.out = stream.NewOutQueue(server, cfg.MaxOutput, time.Second)
	c.full = jid.MustParse("a@localhost/r")
	c.bound = true
	client.Write([]byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"))
	if _, err := c.dec.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	// The ping is out, the answer is in the socket, and the deadline
	// has passed: the state in which the paused process wakes up.
	client.Write([]byte("<iq type='result' id='" + pingID + "'/>"))
	time.Sleep(50 * time.Millisecond) // the answer reaches the server's socket
	c.pinged, c.deadline = true, true
	server.SetReadDeadline(time.Now().Add(-time.Second))

	done := make(chan error, 1)
	go func() { done <- c.stanzaLoop() }()
	time.Sleep(300 * time.Millisecond) // long enough to read the answer
	client.Close()
	select {
	case err := <-done:
		var se *stream.Error
		if errors.As(err, &se) && se.Condition == "connection-timeout" {
			t.Fatal("the session ended with connection-timeout although the answer was buffered")
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Logf("the loop ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stanza loop did not end when the client left")
	}
	if c.pinged {
		t.Fatal("the answer to the ping was not taken")
	}
}
