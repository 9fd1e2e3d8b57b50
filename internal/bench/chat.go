package bench

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"parley/internal/xmlstream"
)

// bodyPrefix marks the load tool's messages; the rest of the body is the
// send time in nanoseconds since the run's epoch (monotonic clock).
const bodyPrefix = "parley-bench "

// receiver is what one client's reader goroutine collected; only that
// goroutine writes it until it has finished.
type receiver struct {
	latencies []time.Duration
	last      time.Duration // receipt time of the last counted message, since epoch
}

func (r *runner) runChat(ctx context.Context, res *Result) error {
	cfg := r.cfg
	r.cnt.setPhase("login")
	before := r.sampleServer()
	conns, logins := r.loginAll(ctx, cfg.Users, true)
	res.Logins = logins
	afterLogin := r.sampleServer()

	// Client i talks with i^1; a pair chats only if both logged in.
	var senders []int
	for i := 0; i+1 < len(conns); i += 2 {
		if conns[i] != nil && conns[i+1] != nil {
			senders = append(senders, i, i+1)
		}
	}
	chat := &ChatFigures{Clients: len(senders), TargetRate: cfg.Rate, DurationSec: cfg.Duration.Seconds(), GraceSec: cfg.Grace.Seconds()}
	res.Chat = chat
	if len(senders) == 0 {
		closeAll(conns)
		res.Server = r.serverFigures(before, afterLogin, r.sampleServer(), logins.OK)
		return ctx.Err()
	}

	// Leave the goroutines a moment to start so the first messages are
	// not all late.
	start := time.Now().Add(100 * time.Millisecond)
	end := start.Add(cfg.Duration)
	countUntil := end.Add(cfg.Grace).Sub(r.epoch)

	if cfg.StreamManagement {
		for i, c := range conns {
			if c != nil && c.enableSM() != nil {
				r.cnt.sendErrs.Add(1)
				c.close()
				conns[i] = nil
			}
		}
	}

	recv := make([]receiver, len(conns))
	var readers sync.WaitGroup
	for i, c := range conns {
		if c == nil {
			continue
		}
		readers.Go(func() { r.receive(c, &recv[i], countUntil) })
	}

	r.cnt.setPhase("chat")
	sendCtx, cancelSend := context.WithDeadline(ctx, end)
	var sendWG sync.WaitGroup
	for k, i := range senders {
		p := newPacer(start, cfg.Rate, len(senders), k)
		chat.Scheduled += int64(p.countBefore(end))
		sendWG.Go(func() { r.send(sendCtx, conns[i], conns[i^1].jid, p, end) })
	}
	sendWG.Wait()
	cancelSend()

	// Wait for stragglers until all arrived or the grace period ended.
	r.cnt.setPhase("grace")
	graceEnd := end.Add(cfg.Grace)
	tick := time.NewTicker(10 * time.Millisecond)
	for r.cnt.delivered.Load() < r.cnt.sent.Load() && time.Now().Before(graceEnd) && ctx.Err() == nil {
		<-tick.C
	}
	tick.Stop()
	endSample := r.sampleServer()

	r.cnt.setPhase("close")
	closeAll(conns)
	readers.Wait()

	var all []time.Duration
	var last time.Duration
	for i := range recv {
		all = append(all, recv[i].latencies...)
		last = max(last, recv[i].last)
	}
	s := summarize(all)
	for _, c := range conns {
		if c != nil {
			chat.SMAcked += int64(c.acked.Load())
		}
	}
	chat.Sent = r.cnt.sent.Load()
	chat.Delivered = int64(s.N)
	chat.Lost = max(chat.Sent-chat.Delivered, 0)
	chat.ErrorsReceived = r.cnt.errorsRecv.Load()
	chat.SendErrors = r.cnt.sendErrs.Load()
	chat.DeliveredPerSec = perSecond(chat.Delivered, last-start.Sub(r.epoch))
	chat.P50Ms, chat.P99Ms, chat.MaxMs = ms(s.P50), ms(s.P99), ms(s.Max)

	res.Server = r.serverFigures(before, afterLogin, endSample, logins.OK)
	if res.Server != nil {
		cpu := endSample.CPU - afterLogin.CPU
		res.Server.CPUChatSec = cpu.Seconds()
		if chat.Delivered > 0 {
			res.Server.CPUPerMessageUs = float64(cpu.Microseconds()) / float64(chat.Delivered)
		}
	}
	return ctx.Err()
}

func closeAll(conns []*xmppConn) {
	for _, c := range conns {
		if c != nil {
			c.close()
		}
	}
}

// send sends chat messages to peer on p's schedule until end. A write
// that blocks longer than the login timeout ends this sender: the server
// is not reading.
func (r *runner) send(ctx context.Context, c *xmppConn, peer string, p pacer, end time.Time) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	head := []byte("<message type='chat' to='" + escapeText(peer) + "' id='")
	var buf []byte
	for j := 0; ; j++ {
		if !p.due(j).Before(end) || !p.wait(ctx, timer, j) {
			return
		}
		buf = append(buf[:0], head...)
		buf = strconv.AppendInt(buf, int64(j), 10)
		buf = append(buf, "'><body>"+bodyPrefix...)
		buf = strconv.AppendInt(buf, int64(time.Since(r.epoch)), 10)
		buf = append(buf, "</body></message>"...)
		if r.cfg.StreamManagement && j%smAskEvery == smAskEvery-1 {
			buf = append(buf, "<r xmlns='"+nsSM+"'/>"...)
		}
		c.wmu.Lock()
		c.raw.SetWriteDeadline(time.Now().Add(r.cfg.Timeout))
		err := c.writeLocked(buf)
		c.wmu.Unlock()
		if err != nil {
			r.cnt.sendErrs.Add(1)
			return
		}
		r.cnt.sent.Add(1)
	}
}

// receive reads until the connection ends, counting the load tool's
// messages that arrive before countUntil (since epoch).
func (r *runner) receive(c *xmppConn, rc *receiver, countUntil time.Duration) {
	for {
		el, err := c.dec.Next()
		if err != nil {
			return
		}
		if el.Name.Space == nsSM {
			r.answerSM(c, el)
			continue
		}
		if r.cfg.StreamManagement {
			c.inH++
		}
		if el.Name.Local != "message" {
			r.answerIQ(c, el)
			continue
		}
		if el.Attr("type") == "error" {
			r.cnt.errorsRecv.Add(1)
			continue
		}
		body := el.Child(nsClient, "body")
		if body == nil {
			continue
		}
		sent, ok := parseBody(body.Text())
		if !ok {
			continue
		}
		now := time.Since(r.epoch)
		if now > countUntil {
			continue
		}
		rc.latencies = append(rc.latencies, now-sent)
		rc.last = now
		r.cnt.delivered.Add(1)
	}
}

// smAskEvery is how many messages a sender sends between ack requests.
const smAskEvery = 5

// answerSM answers the server's ack requests and records its acks.
func (r *runner) answerSM(c *xmppConn, el *xmlstream.Element) {
	switch el.Name.Local {
	case "r":
		c.write([]byte("<a xmlns='" + nsSM + "' h='" + strconv.FormatUint(uint64(c.inH), 10) + "'/>"))
	case "a":
		if h, err := strconv.ParseUint(el.Attr("h"), 10, 32); err == nil {
			c.acked.Store(uint32(h))
		}
	}
}

// parseBody returns the send time carried by a load-tool message body.
func parseBody(s string) (time.Duration, bool) {
	rest, ok := strings.CutPrefix(s, bodyPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(n), true
}
