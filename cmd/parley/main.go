// Command parley is the XMPP server and its admin tool in one binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.parleyVersion=...".
var parleyVersion = "0.1.0-dev"

const usage = `parley: an XMPP server

Usage:
  parley serve [--config FILE]                 run the server
  parley user add JID [--password PW]          create an account (password from stdin without --password)
  parley user passwd JID [--password PW]       change a password (through the running server, which keeps a logged-in user's key)
  parley user del JID                          delete an account and its data
  parley user list [DOMAIN]                    list accounts
  parley import PATH...                        import XEP-0227 files or directories of them (Prosody, ejabberd, parley export)
  parley export [--user JID]... [--rooms] DIR  write every account (or those given) as XEP-0227 files, one per user
  parley user disable|enable JID               stop or allow an account's logins (disable ends its sessions)
  parley sessions [JID]                        list the running server's sessions
  parley kick JID                              end an account's sessions (or one, by full JID)
  parley announce [--online|--all] TEXT        message every online session, or every account
  parley invite create [--host DOMAIN] [--uses N] [--expires 7d] [--contact JID] [--admin]
                                               print an invite link (xmpp:DOMAIN?register;preauth=TOKEN),
                                               and with [listen] https its landing page
  parley invite list | revoke ID               list the valid invites, or revoke one
  parley invite admins | unadmin JID           list the admins (config and invites), or take
                                               back what an admin invite gave
  parley notify [--message TEXT] [--attach FILE]... [--type chat|normal|headline] JID...
                                               send a message from the server's own JID
                                               (text from standard input without --message)
  parley bench --mode login+chat|idle|login|register --server ADDR ...
                                               load-test an XMPP server (see bench/BENCHMARK.md)
  parley check [--strict]                      check config, certificates, DNS, ports, permissions
                                               (exit 1 on a failure; --strict: on a warning too)
  parley version                               print the version and the build's commit

Every command takes --config FILE; without it parley serves "localhost"
with its data in ./parley-data.
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.As(err, new(errCheckFailed)) {
			os.Exit(1) // the report said why
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "parley: %v\n\n%s", err, usage)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "parley: %v\n", err)
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr)
	case "user":
		return cmdUser(ctx, args[1:], stdin, stdout)
	case "check":
		return cmdCheck(ctx, args[1:], stdout)
	case "import":
		return cmdImport(ctx, args[1:], stdout, stderr)
	case "export":
		return cmdExport(ctx, args[1:], stdout, stderr)
	case "sessions", "kick", "announce":
		return cmdSessions(ctx, args[0], args[1:], stdout)
	case "invite":
		return cmdInvite(ctx, args[1:], stdout)
	case "notify":
		return cmdNotify(ctx, args[1:], stdin, stdout)
	case "bench":
		return cmdBench(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, versionLine())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

// parseFlags parses flags that may come before or after the positional
// arguments, so `parley user add JID --password x` works as people type it.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
