package bench

import (
	"context"
	"testing"
	"time"
)

func TestPacerSchedule(t *testing.T) {
	start := time.Unix(1000, 0)
	// 200 senders sharing 1000 messages/s: each sends every 200 ms,
	// sender k starting k ms after start.
	p := newPacer(start, 1000, 200, 7)
	tests := []struct {
		j    int
		want time.Duration
	}{
		{0, 7 * time.Millisecond},
		{1, 207 * time.Millisecond},
		{5, 1007 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := p.due(tt.j).Sub(start); got != tt.want {
			t.Errorf("due(%d) = %v, want %v", tt.j, got, tt.want)
		}
	}
	counts := []struct {
		at   time.Duration
		want int
	}{
		{0, 0},
		{7 * time.Millisecond, 0}, // strictly before
		{8 * time.Millisecond, 1},
		{207 * time.Millisecond, 1},
		{208 * time.Millisecond, 2},
		{time.Second, 5},
		{10 * time.Second, 50},
	}
	for _, tt := range counts {
		if got := p.countBefore(start.Add(tt.at)); got != tt.want {
			t.Errorf("countBefore(%v) = %d, want %d", tt.at, got, tt.want)
		}
	}
}

// The senders together must offer the total rate evenly: every 100 ms
// window holds the same number of messages, not bursts on shared ticks.
func TestPacersSpreadEvenly(t *testing.T) {
	start := time.Unix(1000, 0)
	const senders, rate = 200, 1000.0
	perWindow := make(map[int]int)
	total := 0
	for k := range senders {
		p := newPacer(start, rate, senders, k)
		for j := 0; p.due(j).Before(start.Add(2 * time.Second)); j++ {
			perWindow[int(p.due(j).Sub(start)/(100*time.Millisecond))]++
			total++
		}
	}
	if total != 2000 {
		t.Fatalf("2 s at 1000/s scheduled %d messages", total)
	}
	for w := range 20 {
		if perWindow[w] != 100 {
			t.Errorf("window %d holds %d messages, want 100", w, perWindow[w])
		}
	}
}

func TestPacerWait(t *testing.T) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	p := newPacer(start, 100, 1, 0) // every 10 ms
	if !p.wait(context.Background(), timer, 3) {
		t.Fatal("wait returned false without cancellation")
	}
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Errorf("message 3 released after %v, want at least 30 ms", el)
	}
	// A message already late is released at once.
	if !p.wait(context.Background(), timer, 0) {
		t.Fatal("late message not released")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	far := newPacer(time.Now().Add(time.Hour), 1, 1, 0)
	if far.wait(ctx, timer, 0) {
		t.Error("wait returned true after cancellation")
	}
}
