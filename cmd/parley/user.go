package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"parley/internal/accounts"
	"parley/internal/config"
	"parley/internal/control"
	"parley/internal/jid"
	"parley/internal/server"
	"parley/internal/storage"
	"parley/internal/vault"
)

func cmdUser(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"user needs a subcommand: add, del, passwd, disable, enable or list"}
	}
	sub := args[0]
	fs := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (TOML)")
	password := fs.String("password", "", "the password (read from standard input when not given)")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	store, err := server.OpenStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("opening storage: %w", err)
	}
	defer store.Close()
	// No blind key: this vault only makes and wraps keys, it never
	// looks anything up.
	v := vault.New(store.Keys(), nil, vault.Options{})
	defer v.Stop()
	accts := accounts.New(store, v)

	if sub == "list" {
		if len(pos) > 1 {
			return usageError{"user list takes at most a domain"}
		}
		domain := ""
		if len(pos) == 1 {
			domain = pos[0]
		}
		users, err := accts.List(ctx, domain)
		if err != nil {
			return err
		}
		for _, u := range users {
			fmt.Fprintln(stdout, u)
		}
		return nil
	}

	if len(pos) != 1 {
		return usageError{fmt.Sprintf("user %s needs exactly one JID", sub)}
	}
	bare, err := jid.Parse(pos[0])
	if err != nil || bare.Local() == "" || !bare.IsBare() {
		return fmt.Errorf("%q is not an account address of the form user@domain", pos[0])
	}
	if !slices.Contains(cfg.Hosts, bare.Domain()) {
		return fmt.Errorf("%s is not one of the configured hosts %v", bare.Domain(), cfg.Hosts)
	}
	switch sub {
	case "add", "passwd":
		pw := *password
		if pw == "" {
			if pw, err = readPassword(stdin); err != nil {
				return err
			}
		}
		if sub == "add" {
			err = accts.Create(ctx, bare, pw)
			if errors.Is(err, storage.ErrExists) {
				return fmt.Errorf("%s already exists", bare)
			}
			break
		}
		// A running server may hold the user's key: it changes the
		// password itself, keeping the key when it holds it.
		var res control.PasswdResult
		cerr := callServer(ctx, cfg, control.CmdPasswd, control.PasswdArgs{JID: bare.String(), Password: pw}, &res)
		lost := res.SealedLost
		if errors.Is(cerr, control.ErrNotRunning) {
			// This process never holds the user's key: the account
			// starts over with a new one.
			lost, err = accts.ChangePassword(ctx, bare, pw)
		} else if cerr != nil {
			return cerr
		}
		switch {
		case err != nil:
		case lost:
			fmt.Fprintf(stdout, "%s: password changed; sealed data lost: the archive, offline messages and other data sealed for %s can no longer be read\n", bare, bare)
		case cerr == nil:
			fmt.Fprintf(stdout, "%s: password changed; the running server held the user's key and wrapped it under the new password: no sealed data lost\n", bare)
		}
	case "del", "disable":
		// A running server ends the account's sessions and forgets its
		// key at once, so nothing more is sealed under it; without one
		// there are neither.
		cmd := map[string]string{"del": control.CmdDeleteUser, "disable": control.CmdDisableUser}[sub]
		var n control.CountResult
		cerr := callServer(ctx, cfg, cmd, control.AccountArgs{JID: bare.String()}, &n)
		switch {
		case errors.Is(cerr, control.ErrNotRunning) && sub == "del":
			err = accts.Delete(ctx, bare)
		case errors.Is(cerr, control.ErrNotRunning):
			err = accts.SetDisabled(ctx, bare, true)
		case cerr != nil:
			return cerr
		case n.Count > 0:
			fmt.Fprintf(stdout, "%s: %d sessions ended\n", bare, n.Count)
		}
	case "enable":
		err = accts.SetDisabled(ctx, bare, false)
	default:
		return usageError{fmt.Sprintf("unknown user subcommand %q", sub)}
	}
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%s does not exist", bare)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s done\n", bare, sub)
	return nil
}

// callServer sends one account command to the server running for cfg;
// control.ErrNotRunning when there is none. Its refusal (an unknown
// account, a bad password) is the command's error, in its own words.
func callServer(ctx context.Context, cfg config.Config, cmd string, args, result any) error {
	err := control.Call(ctx, control.SocketPath(cfg.DataDir), cmd, args, result)
	if err != nil && !errors.Is(err, control.ErrNotRunning) {
		return fmt.Errorf("through the running server: %w", err)
	}
	return err
}

// readPassword takes the first line of standard input, so that scripts can
// pipe a password without it showing in the process list.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("the password is empty")
	}
	return pw, nil
}
