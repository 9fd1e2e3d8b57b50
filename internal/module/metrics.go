package module

import "time"

// Gauge is a value a module reports for monitoring (e.g. bytes stored),
// read when the metrics are scraped. Name is the Prometheus name.
type Gauge struct {
	Name, Help string
	Value      func() float64
}

// Timer is an operation a module times (e.g. a database write). The
// server sets Observe before Start; until then it may be nil.
type Timer struct {
	Name, Help string
	Observe    func(time.Duration)
}

// Time records how long since start, when the server asked for it.
func (t *Timer) Time(start time.Time) {
	if t != nil && t.Observe != nil {
		t.Observe(time.Since(start))
	}
}

// Measured is implemented by a module that has metrics of its own.
type Measured interface {
	Metrics() (gauges []Gauge, timers []*Timer)
}
