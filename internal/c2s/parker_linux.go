package c2s

import (
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// parker holds idle sessions without a goroutine. A session that has
// received nothing for parkAfter registers its socket here and lets its
// goroutine end; one goroutine waits on an epoll set for all of them and
// starts a new goroutine for a session when its socket becomes readable,
// when its read deadline comes (idle ping) or when another goroutine
// kicks it (end, resumption). A parked session then costs only its heap
// state: no stack (issue 4: memory per idle connection).
//
// The epoll set is separate from the Go runtime's: the socket stays
// registered with the runtime's poller too, and is only read by the
// session's goroutine.
type parker struct {
	epfd int
	log  *slog.Logger

	mu     sync.Mutex
	parked map[uint64]*conn // by park id, which the epoll event carries
	nextID uint64
	closed bool

	stop chan struct{}
	done chan struct{}
}

// parkAfter is how long a session waits on its own before it parks: long
// enough that a chatting client never parks, short enough that idle
// connections soon cost no stack.
const parkAfter = 5 * time.Second

// pollInterval bounds how long the parker's epoll wait blocks, so that
// close is noticed without a wake-up descriptor.
const pollInterval = 500 // milliseconds

func newParker(log *slog.Logger) *parker {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		log.Warn("c2s: no epoll set; idle sessions keep their goroutine", "err", err)
		return nil
	}
	p := &parker{epfd: epfd, log: log, parked: make(map[uint64]*conn),
		stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

// park registers c and reports true, after which c's goroutine must
// return without touching c; false means c was kicked meanwhile (or the
// parker is closing) and its goroutine must go on.
func (p *parker) park(c *conn) bool {
	if p == nil {
		return false
	}
	rc := c.recordConn()
	if rc == nil || rc.raw == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || c.kicked.Load() {
		return false
	}
	p.nextID++
	id := p.nextID
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
	var err error
	if cerr := rc.raw.Control(func(fd uintptr) {
		err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	}); cerr != nil {
		err = cerr
	}
	if err != nil {
		return false
	}
	c.parkID, c.parkRC = id, rc
	p.parked[id] = c
	if dl := rc.readDeadline(); !dl.IsZero() {
		c.parkTimer = time.AfterFunc(time.Until(dl), func() { p.unpark(c) })
	}
	return true
}

// unpark wakes c if it is parked.
func (p *parker) unpark(c *conn) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if c.parkID != 0 && p.parked[c.parkID] == c {
		p.wakeLocked(c)
	}
	p.mu.Unlock()
}

func (p *parker) wakeLocked(c *conn) {
	delete(p.parked, c.parkID)
	rc := c.parkRC
	c.parkID, c.parkRC = 0, nil
	if c.parkTimer != nil {
		c.parkTimer.Stop()
		c.parkTimer = nil
	}
	// The socket may be closed already (it left the set then). c.mu is
	// not taken here: tryResume holds it while it wakes a session.
	_ = rc.raw.Control(func(fd uintptr) {
		_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
	go c.loop()
}

func (p *parker) run() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(p.epfd, events, pollInterval)
		select {
		case <-p.stop:
			return
		default:
		}
		if err != nil {
			if err != syscall.EINTR {
				p.log.Error("c2s: waiting for parked sessions failed", "err", err)
				time.Sleep(time.Duration(pollInterval) * time.Millisecond)
			}
			continue
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if c := p.parked[id]; c != nil {
				p.wakeLocked(c)
			}
		}
		p.mu.Unlock()
	}
}

// close stops parking. The server has woken and ended every session
// before, so nothing is parked any more.
func (p *parker) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for _, c := range p.parked {
		p.wakeLocked(c)
	}
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	syscall.Close(p.epfd)
}
