package bench

import (
	"slices"
	"time"
)

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method, so the result is always an observed value; 0 for
// no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted)) + 0.999999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// summary is what the report says about a set of latencies.
type summary struct {
	P50, P99, Max time.Duration
	N             int
}

// summarize sorts samples in place and returns their percentiles.
func summarize(samples []time.Duration) summary {
	slices.Sort(samples)
	s := summary{N: len(samples), P50: percentile(samples, 50), P99: percentile(samples, 99)}
	if len(samples) > 0 {
		s.Max = samples[len(samples)-1]
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// perSecond is n over d, 0 when d is not positive.
func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
