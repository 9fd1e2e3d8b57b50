package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"parley/internal/config"
	"parley/internal/control"
	"parley/internal/jid"
)

// listFlag collects a flag given several times (--attach a --attach b).
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// maxNotifyText bounds a message read from standard input: a notice,
// not a log file.
const maxNotifyText = 64 << 10

func cmdNotify(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("notify", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (TOML)")
	message := fs.String("message", "", "the text (read from standard input when not given)")
	typ := fs.String("type", "chat", "message type: chat, normal or headline")
	var attach listFlag
	fs.Var(&attach, "attach", "a file to send (repeatable)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError{"notify needs at least one JID"}
	}
	switch *typ {
	case "chat", "normal", "headline":
	default:
		return usageError{fmt.Sprintf("--type must be chat, normal or headline, not %q", *typ)}
	}
	for _, p := range pos {
		if _, err := jid.Parse(p); err != nil {
			return fmt.Errorf("%q is not a valid JID: %w", p, err)
		}
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	text := *message
	// Standard input is read only when there is nothing else to send,
	// so `parley notify --attach photo.jpg admin@x` does not wait on a
	// terminal.
	if text == "" && len(attach) == 0 {
		b, err := io.ReadAll(io.LimitReader(stdin, maxNotifyText+1))
		if err != nil {
			return fmt.Errorf("reading the message from standard input: %w", err)
		}
		if len(b) > maxNotifyText {
			return fmt.Errorf("the message on standard input is over %d bytes", maxNotifyText)
		}
		text = strings.TrimRight(string(b), "\r\n")
		if strings.TrimSpace(text) == "" {
			return fmt.Errorf("the message is empty: give --message TEXT or pipe it to standard input")
		}
	}
	sock := control.SocketPath(cfg.DataDir)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var urls []string
	for _, path := range attach {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("--attach: %w", err)
		}
		var res control.StoreResult
		if err := control.Call(ctx, sock, control.CmdStore, control.StoreArgs{Name: filepath.Base(path), Data: data}, &res); err != nil {
			return err
		}
		urls = append(urls, res.URL)
	}
	if err := control.Call(ctx, sock, control.CmdNotify, control.NotifyArgs{To: pos, Message: text, Type: *typ, URLs: urls}, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sent to %s\n", strings.Join(pos, ", "))
	return nil
}
