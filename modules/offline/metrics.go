package offline

import (
	"context"
	"math"
	"time"

	"parley/internal/module"
)

// Metrics reports the messages waiting for their recipients.
func (m *Module) Metrics() ([]module.Gauge, []*module.Timer) {
	return []module.Gauge{{
		Name: "parley_offline_messages",
		Help: "Messages stored for accounts that were offline, not yet delivered (XEP-0160).",
		Value: func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n, err := m.store.Total(ctx)
			if err != nil {
				return math.NaN() // unknown, not zero
			}
			return float64(n)
		},
	}}, nil
}
