package server

import (
	"io"
	"net"
	"testing"
	"time"
)

func TestPerAddressListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := limitPerAddress(raw, 2)
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func(local string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	take := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}
	closedByServer := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return err == io.EOF
	}
	dial("127.0.0.1")
	first := take()
	dial("127.0.0.1")
	take()
	third := dial("127.0.0.1")
	if !closedByServer(third) {
		t.Fatal("a third connection from one address was not closed")
	}
	// Another address has places of its own.
	dial("127.0.0.2")
	take()
	// A closed connection gives its place back, once.
	first.Close()
	first.Close()
	dial("127.0.0.1")
	take()
	if !closedByServer(dial("127.0.0.1")) {
		t.Fatal("a place was given back twice")
	}
}
