package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"parley/internal/bench"
)

const benchUsage = `Usage: parley bench [flags]

An XMPP load generator for servers on this machine (loopback only; it
accepts any TLS certificate). Progress goes to stderr once a second, the
figures to stdout as JSON.

Modes:
  login+chat  log --users clients in, pairs (1-2, 3-4, ...) exchange chat
              messages at --rate messages/s in total for --duration
  idle        log --connections in (accounts reused, distinct resources)
              from 127.0.0.1..127.0.0.<--source-addrs>, hold them --hold
  login       a login burst: log --connections in and out again, --concurrency
              at a time (after an unmeasured --warmup pass)
  register    create the accounts by in-band registration (XEP-0077)
  csi         pairs: the first of each declares itself inactive (XEP-0352),
              the second sends it presence changes and chat states at
              --rate in total for --duration; reports what CSI spared

A parley under test wants [limits] preauth_connections_per_address = 0:
by default it lets one address have only 20 connections that have not
logged in yet, fewer than --concurrency logins in flight.

Example:
  parley bench --mode login+chat --server 127.0.0.1:5222 --users 200 \
    --user-format 'user%d@localhost' --password-format 'pass%d' \
    --rate 1000 --duration 30s --server-pid 1234

Flags:
`

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var cfg bench.Config
	fs.StringVar(&cfg.Mode, "mode", bench.ModeLoginChat, "login+chat, idle, login or register")
	fs.StringVar(&cfg.Addr, "server", "127.0.0.1:5222", "the server's STARTTLS client address (loopback)")
	fs.IntVar(&cfg.Users, "users", 10, "number of accounts")
	fs.IntVar(&cfg.First, "first", 1, "number of the first account")
	fs.StringVar(&cfg.UserFormat, "user-format", "user%d@localhost", "account JIDs, with one %d")
	fs.StringVar(&cfg.PasswordFormat, "password-format", "pass%d", "passwords, with at most one %d")
	fs.StringVar(&cfg.Mechanism, "mech", bench.MechPLAIN, "SASL mechanism: PLAIN or SCRAM-SHA-1")
	fs.Float64Var(&cfg.Rate, "rate", 100, "login+chat: messages per second over all clients")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "login+chat: how long to send")
	fs.DurationVar(&cfg.Grace, "grace", 5*time.Second, "login+chat: how long a message may still arrive after the end")
	fs.IntVar(&cfg.Connections, "connections", 0, "idle, login: connections (default: --users)")
	fs.DurationVar(&cfg.Hold, "hold", 10*time.Second, "idle: how long to hold the connections")
	fs.IntVar(&cfg.SourceAddrs, "source-addrs", 1, "spread connections over 127.0.0.1..127.0.0.N (about 28,000 per address)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 50, "logins in flight at once")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "limit for one login or registration, and for one blocked write")
	fs.BoolVar(&cfg.Warmup, "warmup", true, "login: log every account in once before the measured burst (fills the client's SCRAM cache)")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "the server's process id, to report its memory and CPU time from /proc")
	fs.BoolVar(&cfg.StreamManagement, "sm", false, "login+chat: clients use stream management (XEP-0198) and ask for an ack every 5 messages")
	quiet := fs.Bool("quiet", false, "no progress lines")
	help := fs.Bool("help", false, "show this help")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *help {
		fs.SetOutput(stdout)
		io.WriteString(stdout, benchUsage)
		fs.PrintDefaults()
		return nil
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("bench takes no arguments, got %q", pos[0])}
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	limit, err := raiseFileLimit()
	if err != nil {
		return err
	}
	conns := max(cfg.Connections, cfg.Users)
	if uint64(conns)+64 > limit {
		return fmt.Errorf("%d connections need more descriptors than this process may open (%d)", conns, limit)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, cfg)
	if res != nil {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(res); jerr != nil {
			return fmt.Errorf("writing results: %w", jerr)
		}
	}
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// raiseFileLimit lifts the soft descriptor limit to the hard one, since
// every connection is a descriptor, and returns the limit now in force.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("reading the descriptor limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("raising the descriptor limit to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}
