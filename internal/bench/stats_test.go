package bench

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", []time.Duration{7}, 50, 7},
		{"one p99", []time.Duration{7}, 99, 7},
		{"two p50", []time.Duration{1, 2}, 50, 1},
		{"two p99", []time.Duration{1, 2}, 99, 2},
		{"hundred p50", hundred, 50, 50 * time.Millisecond},
		{"hundred p99", hundred, 99, 99 * time.Millisecond},
		{"hundred p100", hundred, 100, 100 * time.Millisecond},
		{"hundred p1", hundred, 1, time.Millisecond},
		{"ten p99", hundred[:10], 99, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("%s: percentile(%v) = %v, want %v", tt.name, tt.p, got, tt.want)
		}
	}
}

func TestSummarizeSorts(t *testing.T) {
	s := summarize([]time.Duration{5, 1, 4, 2, 3})
	if s.N != 5 || s.P50 != 3 || s.P99 != 5 || s.Max != 5 {
		t.Errorf("summary = %+v", s)
	}
	if z := summarize(nil); z != (summary{}) {
		t.Errorf("empty summary = %+v", z)
	}
}

func TestPerSecond(t *testing.T) {
	tests := []struct {
		n    int64
		d    time.Duration
		want float64
	}{
		{100, 2 * time.Second, 50},
		{1, 500 * time.Millisecond, 2},
		{5, 0, 0},
		{5, -time.Second, 0},
	}
	for _, tt := range tests {
		if got := perSecond(tt.n, tt.d); got != tt.want {
			t.Errorf("perSecond(%d, %v) = %v, want %v", tt.n, tt.d, got, tt.want)
		}
	}
}
