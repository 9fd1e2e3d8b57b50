package server

import (
	"net"
	"net/netip"
	"sync"
)

// perAddressListener refuses (closes at once) a connection from an
// address that already holds max open ones, so that one address cannot
// take every descriptor of a listener: 300 slow uploads from one address
// once held 600. IPv6 addresses count per /64, what one host usually
// gets to choose from.
type perAddressListener struct {
	net.Listener

	mu   sync.Mutex
	max  int // 0 = no limit; counted all the same, so a reload may set one
	open map[netip.Addr]int
}

func limitPerAddress(ln net.Listener, max int) *perAddressListener {
	return &perAddressListener{Listener: ln, max: max, open: map[netip.Addr]int{}}
}

// setMax changes the limit (a reload); open connections stay.
func (l *perAddressListener) setMax(max int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.max = max
}

func (l *perAddressListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		a := addressKey(c.RemoteAddr())
		l.mu.Lock()
		full := l.max > 0 && l.open[a] >= l.max
		if !full {
			l.open[a]++
		}
		l.mu.Unlock()
		if full {
			c.Close()
			continue
		}
		return &countedConn{Conn: c, release: sync.OnceFunc(func() { l.release(a) })}, nil
	}
}

func (l *perAddressListener) release(a netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[a]--; l.open[a] <= 0 {
		delete(l.open, a)
	}
}

func addressKey(addr net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Addr{} // not IP: all such connections share one count
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// countedConn gives its place back once, on the first Close.
type countedConn struct {
	net.Conn
	release func()
}

func (c *countedConn) Close() error {
	c.release()
	return c.Conn.Close()
}
