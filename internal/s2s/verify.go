package s2s

import (
	"context"
	"fmt"
	"time"

	"parley/internal/stanza"
	"parley/internal/stream"
)

// verifyDialback asks the authoritative server of originating whether key
// is the key it made for a stream with id that it opened to receiving
// (XEP-0220 §2.3). It uses a connection of its own, closed at once, so
// that verification never waits behind a stream being negotiated.
func (s *Service) verifyDialback(ctx context.Context, receiving, originating, id, key string) (bool, error) {
	p, err := s.dialPeer(ctx, receiving, originating)
	if err != nil {
		return false, err
	}
	defer func() {
		p.nc.SetWriteDeadline(time.Now().Add(time.Second))
		p.write([]byte(stream.Close))
		p.nc.Close()
	}()
	stop := context.AfterFunc(ctx, func() { p.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := p.write(appendDialback(nil, "verify", receiving, originating, id, "", key)); err != nil {
		return false, err
	}
	for {
		el, err := p.dec.Next()
		if err != nil {
			return false, err
		}
		if el.Name.Space == stanza.NSStream && el.Name.Local == "error" {
			return false, fmt.Errorf("s2s: %s ended the verification stream: %s", originating, streamErrorCondition(el))
		}
		if el.Name.Space != nsDialback || el.Name.Local != "verify" || el.Attr("id") != id {
			continue
		}
		if !sameDomain(el.Attr("from"), originating) || !sameDomain(el.Attr("to"), receiving) {
			continue
		}
		switch el.Attr("type") {
		case "valid":
			return true, nil
		case "invalid":
			return false, nil
		}
		return false, fmt.Errorf("s2s: %s could not verify the key (%s)", originating, dialbackErrorCondition(el))
	}
}
