package stream

import (
	"errors"
	"log/slog"
	"net"
	"time"
)

// Accept waits for the next connection on ln; it returns net.ErrClosed
// once ln is closed. Other errors (out of descriptors and the like) are
// logged and retried after a pause that grows to a second, as net/http
// does, rather than spinning.
func Accept(ln net.Listener, log *slog.Logger, what string) (net.Conn, error) {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err == nil {
			return nc, nil
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, net.ErrClosed
		}
		delay = min(max(2*delay, 5*time.Millisecond), time.Second)
		log.Warn(what+": accept failed", "err", err)
		time.Sleep(delay)
	}
}
