// Package bench is an XMPP load generator that works against any server:
// it logs many clients in over STARTTLS, has pairs of them exchange chat
// messages at a fixed rate or holds idle connections, and reports
// throughput, latency and, given the server's process id, the server's
// memory and CPU time per connection and per message.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"parley/internal/xmlstream"
)

// Modes of a run.
const (
	ModeLoginChat = "login+chat" // log in, then pairs exchange messages
	ModeIdle      = "idle"       // log in and hold connections
	ModeLogin     = "login"      // a login burst: log in and out as fast as the server allows
	ModeRegister  = "register"   // create the accounts by in-band registration
	ModeCSI       = "csi"        // what client state indication spares an inactive client
)

// Config describes one run. Zero values take the defaults of
// (Config).withDefaults.
type Config struct {
	Mode           string
	Addr           string // the server's STARTTLS client listener; must be a loopback address
	UserFormat     string // fmt format with one %d, e.g. "user%d@localhost"
	PasswordFormat string // fmt format with at most one %d, e.g. "pass%d"
	Users          int    // accounts First .. First+Users-1
	First          int
	Mechanism      string        // MechPLAIN or MechSCRAMSHA1
	Rate           float64       // login+chat: messages per second over all clients
	Duration       time.Duration // login+chat: how long messages are sent
	Grace          time.Duration // login+chat: how long after the end a message may still arrive
	Connections    int           // idle, login: connections; accounts are reused with distinct resources; 0 means Users
	Hold           time.Duration // idle: how long connections are held
	SourceAddrs    int           // connections are spread over 127.0.0.1 .. 127.0.0.SourceAddrs
	Concurrency    int           // logins (or registrations) in flight at once
	Timeout        time.Duration // for one whole login or registration
	Warmup         bool          // login: log every account in once, unmeasured, before the burst
	ServerPID      int           // read the server's /proc entries when > 0
	// StreamManagement: login+chat clients enable XEP-0198 and ask for
	// an ack every few messages, as mobile clients do, so the run pays
	// for acknowledgements that wait for storage (group commit).
	StreamManagement bool
	Progress         io.Writer // a progress line every ProgressEvery; nil for none
	ProgressEvery    time.Duration
}

func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeLoginChat
	}
	if c.UserFormat == "" {
		c.UserFormat = "user%d@localhost"
	}
	if c.PasswordFormat == "" {
		c.PasswordFormat = "pass%d"
	}
	if c.Mechanism == "" {
		c.Mechanism = MechPLAIN
	}
	if c.Connections <= 0 {
		c.Connections = c.Users
	}
	if c.SourceAddrs <= 0 {
		c.SourceAddrs = 1
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 50
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Grace <= 0 {
		c.Grace = 5 * time.Second
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = time.Second
	}
	return c
}

func (c Config) validate() error {
	switch c.Mode {
	case ModeLoginChat, ModeIdle, ModeLogin, ModeRegister, ModeCSI:
	default:
		return fmt.Errorf("unknown mode %q (want %s, %s, %s, %s or %s)", c.Mode, ModeLoginChat, ModeIdle, ModeLogin, ModeRegister, ModeCSI)
	}
	if c.Mechanism != MechPLAIN && c.Mechanism != MechSCRAMSHA1 {
		return fmt.Errorf("unknown mechanism %q (want %s or %s)", c.Mechanism, MechPLAIN, MechSCRAMSHA1)
	}
	if c.Users <= 0 {
		return errors.New("users must be at least 1")
	}
	if strings.Count(c.UserFormat, "%d") != 1 || strings.Count(c.UserFormat, "%") != 1 {
		return fmt.Errorf("user format %q must contain exactly one %%d", c.UserFormat)
	}
	if strings.Count(c.PasswordFormat, "%") != strings.Count(c.PasswordFormat, "%d") || strings.Count(c.PasswordFormat, "%d") > 1 {
		return fmt.Errorf("password format %q may contain one %%d and no other verb", c.PasswordFormat)
	}
	if c.SourceAddrs > 254 {
		return errors.New("source addresses must be at most 254 (127.0.0.1 .. 127.0.0.254)")
	}
	if c.Mode == ModeLoginChat || c.Mode == ModeCSI {
		if c.Users < 2 {
			return errors.New(c.Mode + " needs at least 2 users, one pair")
		}
		if c.Rate <= 0 || c.Duration <= 0 {
			return errors.New(c.Mode + " needs a positive rate and duration")
		}
	}
	return checkLoopback(c.Addr)
}

// checkLoopback refuses targets off this machine: a load generator aimed
// elsewhere is a denial of service, and every figure it gives is only
// meaningful against a server on the same host anyway.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("server address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("server address %q is not a loopback IP address; parley bench only targets servers on this machine", addr)
	}
	return nil
}

// Result is what a run measured; it is printed as JSON.
type Result struct {
	Mode          string         `json:"mode"`
	Addr          string         `json:"addr"`
	Mechanism     string         `json:"mechanism"`
	Accounts      int            `json:"accounts"`
	Connections   int            `json:"connections"`
	Registrations *LoginFigures  `json:"registrations,omitempty"`
	Logins        *LoginFigures  `json:"logins,omitempty"`
	Chat          *ChatFigures   `json:"chat,omitempty"`
	Idle          *IdleFigures   `json:"idle,omitempty"`
	CSI           *CSIFigures    `json:"csi,omitempty"`
	Server        *ServerFigures `json:"server,omitempty"`
	ClientCPUSec  float64        `json:"client_cpu_s"` // this process, user+system, whole run
	WallSec       float64        `json:"wall_s"`
}

// LoginFigures describe a phase of logins (or registrations).
type LoginFigures struct {
	OK         int     `json:"ok"`
	Failed     int     `json:"failed"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	PerSec     float64 `json:"per_s"`
	P50Ms      float64 `json:"latency_p50_ms"`
	P99Ms      float64 `json:"latency_p99_ms"`
	MaxMs      float64 `json:"latency_max_ms"`
}

// ChatFigures describe the message phase of login+chat.
type ChatFigures struct {
	Clients         int     `json:"clients"` // logged-in clients in complete pairs
	TargetRate      float64 `json:"target_rate"`
	DurationSec     float64 `json:"duration_s"`
	GraceSec        float64 `json:"grace_s"`
	Scheduled       int64   `json:"scheduled"` // what the rate and duration ask for
	Sent            int64   `json:"sent"`
	Delivered       int64   `json:"delivered"` // received by the right client within the grace period
	Lost            int64   `json:"lost"`      // sent minus delivered
	ErrorsReceived  int64   `json:"errors_received"`
	SendErrors      int64   `json:"send_errors"`
	DeliveredPerSec float64 `json:"delivered_per_s"`
	P50Ms           float64 `json:"latency_p50_ms"`
	P99Ms           float64 `json:"latency_p99_ms"`
	MaxMs           float64 `json:"latency_max_ms"`
	// SMAcked: messages the server acknowledged (XEP-0198), with --sm.
	SMAcked int64 `json:"sm_acked,omitempty"`
}

// IdleFigures describe the hold phase of idle.
type IdleFigures struct {
	HoldSec     float64 `json:"hold_s"`
	SourceAddrs int     `json:"source_addrs"`
	Held        int     `json:"held"`    // still open at the end of the hold
	Dropped     int     `json:"dropped"` // closed by the server during the hold
}

// ServerFigures come from the server's /proc entries: before the logins,
// after them, and at the end (after the messages' grace period, or the
// idle hold).
type ServerFigures struct {
	PID              int     `json:"pid"`
	RSSBeforeKiB     int64   `json:"rss_before_kib"`
	RSSAfterLoginKiB int64   `json:"rss_after_login_kib"`
	RSSEndKiB        int64   `json:"rss_end_kib"`
	RSSPerConnKiB    float64 `json:"rss_per_conn_kib"` // idle: (end-before)/held; otherwise (after login-before)/logins
	CPULoginSec      float64 `json:"cpu_login_s"`
	CPUPerLoginUs    float64 `json:"cpu_per_login_us"`
	CPUChatSec       float64 `json:"cpu_chat_s,omitempty"`
	CPUPerMessageUs  float64 `json:"cpu_per_message_us,omitempty"` // server CPU during the chat phase / delivered
}

// counters are the live figures the progress line shows.
type counters struct {
	phase                atomic.Pointer[string]
	loginsOK, loginsFail atomic.Int64
	open                 atomic.Int64
	sent, delivered      atomic.Int64
	errorsRecv, sendErrs atomic.Int64
}

func (c *counters) setPhase(p string) { c.phase.Store(&p) }

type runner struct {
	cfg      Config
	accounts []account
	d        *dialer
	cnt      counters
	epoch    time.Time // message timestamps are monotonic offsets from here
}

// Run carries out one benchmark run. It returns partial figures with an
// error only when the run could not start; failed logins and lost
// messages are figures, not errors.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &runner{
		cfg:   cfg,
		d:     &dialer{addr: cfg.Addr, mech: cfg.Mechanism, timeout: cfg.Timeout, salts: newSaltCache()},
		epoch: time.Now(),
	}
	for i := range cfg.Users {
		n := cfg.First + i
		pw := cfg.PasswordFormat
		if strings.Contains(pw, "%d") {
			pw = fmt.Sprintf(pw, n)
		}
		acc, err := parseAccount(fmt.Sprintf(cfg.UserFormat, n), pw)
		if err != nil {
			return nil, err
		}
		r.accounts = append(r.accounts, acc)
	}
	if cfg.ServerPID > 0 {
		if _, err := ReadProc(cfg.ServerPID); err != nil {
			return nil, err
		}
	}
	r.cnt.setPhase("start")
	res := &Result{Mode: cfg.Mode, Addr: cfg.Addr, Mechanism: cfg.Mechanism, Accounts: cfg.Users, Connections: cfg.Connections}
	if cfg.Mode == ModeLoginChat || cfg.Mode == ModeRegister {
		res.Connections = cfg.Users
	}
	cpu0 := processCPU()

	stopProgress := r.startProgress()
	var err error
	switch cfg.Mode {
	case ModeRegister:
		res.Registrations = r.registerAll(ctx)
	case ModeLogin:
		err = r.runLogin(ctx, res)
	case ModeIdle:
		err = r.runIdle(ctx, res)
	case ModeCSI:
		err = r.runCSI(ctx, res)
	case ModeLoginChat:
		err = r.runChat(ctx, res)
	}
	stopProgress()
	res.ClientCPUSec = (processCPU() - cpu0).Seconds()
	res.WallSec = time.Since(r.epoch).Seconds()
	return res, err
}

// startProgress prints a line every ProgressEvery until the returned
// function is called, which waits for the printer to finish.
func (r *runner) startProgress() (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(r.cfg.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.printProgress()
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		r.printProgress()
	}
}

func (r *runner) printProgress() {
	c := &r.cnt
	fmt.Fprintf(r.cfg.Progress, "bench %5.1fs %-8s logins %d ok %d failed | open %d | sent %d delivered %d errors %d\n",
		time.Since(r.epoch).Seconds(), *c.phase.Load(), c.loginsOK.Load(), c.loginsFail.Load(), c.open.Load(),
		c.sent.Load(), c.delivered.Load(), c.errorsRecv.Load()+c.sendErrs.Load())
}

// processCPU is this process's user+system time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sampleServer reads the server's figures, or the zero sample without a
// pid. A server that died mid-run leaves its last figures at zero.
func (r *runner) sampleServer() ProcSample {
	if r.cfg.ServerPID <= 0 {
		return ProcSample{}
	}
	s, err := ReadProc(r.cfg.ServerPID)
	if err != nil {
		return ProcSample{}
	}
	return s
}

func (r *runner) serverFigures(before, afterLogin, end ProcSample, logins int) *ServerFigures {
	if r.cfg.ServerPID <= 0 {
		return nil
	}
	f := &ServerFigures{
		PID:              r.cfg.ServerPID,
		RSSBeforeKiB:     before.RSSKiB,
		RSSAfterLoginKiB: afterLogin.RSSKiB,
		RSSEndKiB:        end.RSSKiB,
		CPULoginSec:      (afterLogin.CPU - before.CPU).Seconds(),
	}
	if logins > 0 {
		f.RSSPerConnKiB = float64(afterLogin.RSSKiB-before.RSSKiB) / float64(logins)
		f.CPUPerLoginUs = float64((afterLogin.CPU - before.CPU).Microseconds()) / float64(logins)
	}
	return f
}

// sourceAddr is the local address of connection i.
func (r *runner) sourceAddr(i int) net.Addr {
	if r.cfg.SourceAddrs <= 1 {
		return nil
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%r.cfg.SourceAddrs))}
}

// loginAll logs in n connections, Concurrency at a time; connection i
// uses account i mod Users and resource "bench<i>". With keep it returns
// the connections (nil where the login failed), otherwise it closes each
// right after its login.
func (r *runner) loginAll(ctx context.Context, n int, keep bool) ([]*xmppConn, *LoginFigures) {
	conns := make([]*xmppConn, n)
	lat := make([][]time.Duration, r.cfg.Concurrency)
	var next atomic.Int64
	var errOnce sync.Once
	var firstErr string
	var failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range r.cfg.Concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				c, err := r.d.login(ctx, r.sourceAddr(i), r.accounts[i%len(r.accounts)], fmt.Sprintf("bench%d", i))
				if err != nil {
					failed.Add(1)
					r.cnt.loginsFail.Add(1)
					errOnce.Do(func() { firstErr = fmt.Sprintf("%s: %v", r.accounts[i%len(r.accounts)].bare(), err) })
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
				r.cnt.loginsOK.Add(1)
				if keep {
					conns[i] = c
					r.cnt.open.Add(1)
				} else {
					c.close()
				}
			}
		})
	}
	wg.Wait()
	return conns, loginFigures(lat, int(failed.Load()), firstErr, time.Since(start))
}

func loginFigures(lat [][]time.Duration, failed int, firstErr string, elapsed time.Duration) *LoginFigures {
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	s := summarize(all)
	return &LoginFigures{
		OK: s.N, Failed: failed, FirstError: firstErr,
		Seconds: elapsed.Seconds(), PerSec: perSecond(int64(s.N), elapsed),
		P50Ms: ms(s.P50), P99Ms: ms(s.P99), MaxMs: ms(s.Max),
	}
}

func (r *runner) registerAll(ctx context.Context) *LoginFigures {
	r.cnt.setPhase("register")
	lat := make([][]time.Duration, r.cfg.Concurrency)
	var next, failed atomic.Int64
	var errOnce sync.Once
	var firstErr string
	start := time.Now()
	var wg sync.WaitGroup
	for w := range r.cfg.Concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(r.accounts) || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				if err := r.d.register(ctx, r.accounts[i]); err != nil {
					failed.Add(1)
					r.cnt.loginsFail.Add(1)
					errOnce.Do(func() { firstErr = err.Error() })
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
				r.cnt.loginsOK.Add(1)
			}
		})
	}
	wg.Wait()
	return loginFigures(lat, int(failed.Load()), firstErr, time.Since(start))
}

func (r *runner) runLogin(ctx context.Context, res *Result) error {
	if r.cfg.Warmup {
		r.cnt.setPhase("warmup")
		r.loginAll(ctx, min(r.cfg.Connections, len(r.accounts)), false)
		r.cnt.loginsOK.Store(0)
		r.cnt.loginsFail.Store(0)
	}
	r.cnt.setPhase("login")
	before := r.sampleServer()
	_, res.Logins = r.loginAll(ctx, r.cfg.Connections, false)
	after := r.sampleServer()
	res.Server = r.serverFigures(before, after, after, res.Logins.OK)
	if res.Server != nil {
		// Every connection was closed again: memory per connection
		// means nothing here.
		res.Server.RSSPerConnKiB = 0
	}
	return ctx.Err()
}

func (r *runner) runIdle(ctx context.Context, res *Result) error {
	r.cnt.setPhase("login")
	before := r.sampleServer()
	conns, logins := r.loginAll(ctx, r.cfg.Connections, true)
	res.Logins = logins
	afterLogin := r.sampleServer()

	var readers sync.WaitGroup
	var dropped atomic.Int64
	var closing atomic.Bool
	for _, c := range conns {
		if c == nil {
			continue
		}
		readers.Go(func() {
			r.drain(c)
			r.cnt.open.Add(-1)
			if !closing.Load() {
				dropped.Add(1)
			}
		})
	}
	r.cnt.setPhase("hold")
	select {
	case <-time.After(r.cfg.Hold):
	case <-ctx.Done():
	}
	end := r.sampleServer()
	held := int(r.cnt.open.Load())
	closing.Store(true)
	r.cnt.setPhase("close")
	for _, c := range conns {
		if c != nil {
			c.close()
		}
	}
	readers.Wait()

	res.Idle = &IdleFigures{HoldSec: r.cfg.Hold.Seconds(), SourceAddrs: r.cfg.SourceAddrs, Held: held, Dropped: int(dropped.Load())}
	res.Server = r.serverFigures(before, afterLogin, end, logins.OK)
	if res.Server != nil && held > 0 {
		res.Server.RSSPerConnKiB = float64(end.RSSKiB-before.RSSKiB) / float64(held)
	}
	return ctx.Err()
}

// drain reads and discards what the server sends, answering pings so a
// server that checks liveness keeps the connection, until the connection
// ends.
func (r *runner) drain(c *xmppConn) {
	for {
		el, err := c.dec.Next()
		if err != nil {
			return
		}
		r.answerIQ(c, el)
	}
}

// answerIQ answers a server's ping with a result and any other request
// with service-unavailable, as RFC 6120 §8.4 requires of every entity.
func (r *runner) answerIQ(c *xmppConn, el *xmlstream.Element) {
	if el.Name.Local != "iq" {
		return
	}
	if typ := el.Attr("type"); typ != "get" && typ != "set" {
		return
	}
	id, from := escapeText(el.Attr("id")), escapeText(el.Attr("from"))
	var reply string
	if el.Child(nsPing, "ping") != nil {
		reply = "<iq type='result' id='" + id + "' to='" + from + "'/>"
	} else {
		reply = "<iq type='error' id='" + id + "' to='" + from + "'><error type='cancel'><service-unavailable xmlns='" +
			nsStanzas + "'/></error></iq>"
	}
	c.wmu.Lock()
	c.raw.SetWriteDeadline(time.Now().Add(r.cfg.Timeout))
	c.writeLocked([]byte(reply))
	c.wmu.Unlock()
}
