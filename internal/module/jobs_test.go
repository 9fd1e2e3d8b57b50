package module

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestEveryRunsUntilStopped(t *testing.T) {
	r := NewRegistry()
	var runs atomic.Int32
	started := make(chan struct{}, 100)
	r.Every(time.Millisecond, func(context.Context) {
		runs.Add(1)
		select {
		case started <- struct{}{}:
		default:
		}
	})
	// It runs at once and then again on its period.
	for i := 0; i < 3; i++ {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatalf("the job ran %d times", runs.Load())
		}
	}
	// A run in progress is waited for; the context tells it to hurry.
	blocked := make(chan struct{})
	r.Every(time.Hour, func(ctx context.Context) {
		close(blocked)
		<-ctx.Done()
	})
	<-blocked
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.StopJobs(ctx); err != nil {
		t.Fatalf("StopJobs: %v", err)
	}
	after := runs.Load()
	time.Sleep(20 * time.Millisecond)
	if runs.Load() != after {
		t.Error("the job ran after StopJobs returned")
	}
	r.Every(time.Millisecond, func(context.Context) { t.Error("a job registered after the stop ran") })
	time.Sleep(20 * time.Millisecond)
	if err := r.StopJobs(ctx); err != nil {
		t.Errorf("second StopJobs: %v", err)
	}
}

func TestStopJobsGivesUpAtTheDeadline(t *testing.T) {
	r := NewRegistry()
	release := make(chan struct{})
	defer close(release)
	running := make(chan struct{})
	r.Every(time.Hour, func(context.Context) { close(running); <-release })
	<-running
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.StopJobs(ctx); err == nil {
		t.Error("StopJobs returned nil while a job would not stop")
	}
}

func TestRetentionInterval(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		time.Millisecond:   time.Second,
		time.Minute:        6 * time.Second,
		7 * 24 * time.Hour: time.Hour,
		10 * time.Hour:     time.Hour,
		100 * time.Second:  10 * time.Second,
	} {
		if got := RetentionInterval(in); got != want {
			t.Errorf("RetentionInterval(%v) = %v, want %v", in, got, want)
		}
	}
}

type fakeRoster struct{ NoRoster }

func TestRegistryRoster(t *testing.T) {
	r := NewRegistry()
	if r.Roster() != (NoRoster{}) {
		t.Fatal("a registry without a roster module has a roster")
	}
	r.SetRoster(fakeRoster{})
	if r.Roster() != (fakeRoster{}) {
		t.Fatal("the roster set is not the one returned")
	}
	defer func() {
		if recover() == nil {
			t.Error("a second roster was accepted")
		}
	}()
	r.SetRoster(fakeRoster{})
}
