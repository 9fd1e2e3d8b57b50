//go:build !linux

package c2s

import (
	"log/slog"
	"time"
)

// Without epoll, idle sessions keep their goroutine.
type parker struct{}

const parkAfter = time.Duration(0)

func newParker(*slog.Logger) *parker { return nil }
func (*parker) park(*conn) bool      { return false }
func (*parker) unpark(*conn)         {}
func (*parker) close()               {}
