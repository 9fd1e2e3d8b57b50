package bench

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// CSIFigures describe the csi mode: what Client State Indication
// (XEP-0352) spares a phone in a pocket.
type CSIFigures struct {
	Pairs    int   `json:"pairs"`
	Sent     int64 `json:"sent"`     // presence updates and chat states sent to the inactive clients
	Received int64 `json:"received"` // what the inactive clients got, while inactive and after waking
	// WhileInactive is what reached them before they woke up: with CSI
	// working, nothing, so the radio could sleep.
	WhileInactive int64   `json:"received_while_inactive"`
	SparedPct     float64 `json:"spared_pct"`
}

// runCSI logs pairs in; the first of each pair declares itself inactive,
// the second sends it presence changes and chat states (directed, so no
// roster is needed) at the given rate; at the end the first becomes
// active again and the tool counts what it received.
func (r *runner) runCSI(ctx context.Context, res *Result) error {
	cfg := r.cfg
	r.cnt.setPhase("login")
	conns, logins := r.loginAll(ctx, cfg.Users, true)
	res.Logins = logins
	defer closeAll(conns)
	var pairs [][2]*xmppConn
	for i := 0; i+1 < len(conns); i += 2 {
		if conns[i] != nil && conns[i+1] != nil {
			pairs = append(pairs, [2]*xmppConn{conns[i], conns[i+1]})
		}
	}
	fig := &CSIFigures{Pairs: len(pairs)}
	res.CSI = fig
	if len(pairs) == 0 {
		return ctx.Err()
	}
	var received, whileInactive atomic.Int64
	var awake atomic.Bool
	var readers sync.WaitGroup
	for _, p := range pairs {
		phone := p[0]
		if err := phone.write([]byte("<presence/><inactive xmlns='urn:xmpp:csi:0'/>")); err != nil {
			return err
		}
		readers.Go(func() {
			for {
				el, err := phone.dec.Next()
				if err != nil {
					return
				}
				if (el.Name.Local == "presence" || el.Name.Local == "message") && el.Attr("from") != phone.jid {
					received.Add(1)
					if !awake.Load() {
						whileInactive.Add(1)
					}
					continue
				}
				r.answerIQ(phone, el)
			}
		})
		readers.Go(func() { r.drain(p[1]) })
	}
	time.Sleep(200 * time.Millisecond) // the inactive state is set

	r.cnt.setPhase("csi")
	start := time.Now().Add(50 * time.Millisecond)
	end := start.Add(cfg.Duration)
	var sent atomic.Int64
	var senders sync.WaitGroup
	shows := []string{"away", "chat", "dnd", "xa"}
	for k, p := range pairs {
		pc := newPacer(start, cfg.Rate, len(pairs), k)
		senders.Go(func() {
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			to := escapeText(p[0].jid)
			for j := 0; pc.due(j).Before(end) && pc.wait(ctx, timer, j); j++ {
				var st string
				if j%2 == 0 {
					st = "<presence to='" + to + "'><show>" + shows[j/2%len(shows)] + "</show><status>" + strconv.Itoa(j) + "</status></presence>"
				} else {
					st = "<message type='chat' to='" + to + "'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
				}
				if p[1].write([]byte(st)) != nil {
					return
				}
				sent.Add(1)
			}
		})
	}
	senders.Wait()
	time.Sleep(500 * time.Millisecond) // let the server see everything
	awake.Store(true)
	for _, p := range pairs {
		p[0].write([]byte("<active xmlns='urn:xmpp:csi:0'/>"))
	}
	time.Sleep(cfg.Grace)
	fig.Sent, fig.Received, fig.WhileInactive = sent.Load(), received.Load(), whileInactive.Load()
	if fig.Sent > 0 {
		fig.SparedPct = 100 * float64(fig.Sent-fig.Received) / float64(fig.Sent)
	}
	closeAll(conns)
	readers.Wait()
	return ctx.Err()
}
