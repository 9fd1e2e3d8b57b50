// Package check looks at a parley installation the way `prosodyctl
// check` does: the config, the certificates of every domain, DNS, the
// listeners' ports, TLS settings and file permissions. Each check gives
// one line: ok, warn (advice) or fail (something that stops clients or
// servers from connecting).
package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"parley/internal/config"
	"parley/internal/invites"
	"parley/internal/tlsconf"
)

// Level is the outcome of one check.
type Level int

const (
	OK Level = iota
	Warn
	Fail
)

func (l Level) String() string { return [...]string{"ok", "warn", "fail"}[l] }

// Result is one line of the report.
type Result struct {
	Level Level
	What  string // the thing checked: "config", "certificate example.org", ...
	Msg   string
}

// ExpiryWarning is how close to its end a certificate draws a warning.
const ExpiryWarning = 14 * 24 * time.Hour

// Options are what the checks need besides the config.
type Options struct {
	Now      time.Time
	Resolver *net.Resolver // nil: net.DefaultResolver
	// PIDFile names the file where a running parley keeps its process
	// id; a port held by that process counts as free.
	PIDFile string
}

// Run runs every check on the config file at path ("" for the
// defaults) and returns the results in order.
func Run(ctx context.Context, path string, o Options) []Result {
	var out []Result
	add := func(l Level, what, format string, args ...any) {
		out = append(out, Result{l, what, fmt.Sprintf(format, args...)})
	}
	name := path
	if name == "" {
		name = "the built-in defaults"
	}
	cfg, err := config.Load(path)
	if err != nil {
		add(Fail, "config", "%s: %v", name, strings.ReplaceAll(err.Error(), "\n", "; "))
		return out
	}
	add(OK, "config", "%s is valid", name)
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	out = append(out, certificates(cfg, o.Now)...)
	out = append(out, dns(ctx, cfg, o.Resolver)...)
	out = append(out, ports(cfg, o.PIDFile)...)
	out = append(out, tlsSettings(cfg)...)
	out = append(out, permissions(cfg)...)
	out = append(out, keyFile(cfg))
	out = append(out, clusterLinks(ctx, cfg)...)
	if cfg.Registration.Open && cfg.Registration.PerAddressPerHour == 0 {
		add(Warn, "registration", "open registration without registration.per_address_per_hour: anyone can create accounts without limit")
	} else {
		add(OK, "registration", "open=%v, per_address_per_hour=%d", cfg.Registration.Open, cfg.Registration.PerAddressPerHour)
	}
	out = append(out, admins(cfg)...)
	return out
}

// admins names who may run the admin commands: the config's admins and
// those admin invites made (parley invite admins, unadmin).
func admins(cfg config.Config) []Result {
	list, err := invites.Open(cfg.DataDir).Admins()
	if err != nil {
		return []Result{{Fail, "admins", err.Error()}}
	}
	names := slices.Clone(cfg.Admins)
	for _, a := range list {
		names = append(names, a.JID+" (invite "+a.Invite+")")
	}
	if len(names) == 0 {
		return []Result{{OK, "admins", "none: nobody can run the admin commands over XMPP (set admins, or parley invite create --admin)"}}
	}
	return []Result{{OK, "admins", strings.Join(names, ", ")}}
}

// Print writes one line per result and reports whether the report
// passes: no failure, and with strict no warning either.
func Print(w io.Writer, rs []Result, strict bool) bool {
	pass := true
	for _, r := range rs {
		fmt.Fprintf(w, "%-4s  %s: %s\n", r.Level, r.What, r.Msg)
		if r.Level == Fail || (strict && r.Level == Warn) {
			pass = false
		}
	}
	return pass
}

func certificates(cfg config.Config, now time.Time) []Result {
	var out []Result
	add := func(l Level, what, format string, args ...any) {
		out = append(out, Result{l, what, fmt.Sprintf(format, args...)})
	}
	selfSignedDir := filepath.Join(cfg.DataDir, "tls")
	if cfg.TLS.ACME {
		// What ACME obtains is checked by the CA; parley renews it.
		add(OK, "certificates", "obtained and renewed with ACME from %s for %s", cfg.TLS.ACMECA, strings.Join(cfg.Domains(), ", "))
		if cfg.TLS.Cert == "" && cfg.TLS.Dir == "" {
			return out
		}
	}
	if cfg.TLS.Cert == "" && cfg.TLS.Dir == "" {
		if _, err := os.Stat(filepath.Join(selfSignedDir, "selfsigned.crt")); errors.Is(err, fs.ErrNotExist) {
			add(Warn, "certificates", "none configured: parley makes a self-signed certificate on first start, which clients and other servers do not trust")
			return out
		}
	}
	certs, err := tlsconf.NewCerts(tlsconf.Source{
		Cert: cfg.TLS.Cert, Key: cfg.TLS.Key, Dir: cfg.TLS.Dir,
		SelfSignedDir: selfSignedDir, Hosts: cfg.AllHosts(), ReadOnly: true,
	})
	if err != nil {
		add(Fail, "certificates", "%v", err)
		return out
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	// A private federation's CA (s2s.ca_file) is trusted too.
	if cfg.S2S.CAFile != "" {
		if pem, err := os.ReadFile(cfg.S2S.CAFile); err == nil {
			roots.AppendCertsFromPEM(pem)
		}
	}
	for _, d := range cfg.Domains() {
		l, msg := certificate(certs.ForDomain(d), d, roots, now)
		add(l, "certificate "+d, "%s", msg)
	}
	return out
}

// certificate checks that cert is usable for domain: it names it, is in
// force and not about to end, and its chain leads to a trusted root.
func certificate(cert *tls.Certificate, domain string, roots *x509.CertPool, now time.Time) (Level, string) {
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return Fail, fmt.Sprintf("does not parse: %v", err)
		}
	}
	desc := fmt.Sprintf("issued by %q, valid until %s", leaf.Issuer.CommonName, leaf.NotAfter.UTC().Format(time.DateOnly))
	if err := leaf.VerifyHostname(domain); err != nil {
		return Fail, fmt.Sprintf("does not name %s (it names %s)", domain, strings.Join(leaf.DNSNames, ", "))
	}
	if now.After(leaf.NotAfter) {
		return Fail, fmt.Sprintf("expired on %s", leaf.NotAfter.UTC().Format(time.DateTime))
	}
	if now.Before(leaf.NotBefore) {
		return Fail, fmt.Sprintf("not valid before %s", leaf.NotBefore.UTC().Format(time.DateTime))
	}
	selfSigned := leaf.Issuer.String() == leaf.Subject.String() &&
		leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	_, verr := leaf.Verify(x509.VerifyOptions{DNSName: domain, Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	switch {
	case verr != nil && selfSigned:
		return Warn, "self-signed: clients warn, and servers that require valid certificates refuse it; " + desc
	case verr != nil:
		return Fail, fmt.Sprintf("the chain is incomplete or not trusted (%v); %s", verr, desc)
	case leaf.NotAfter.Sub(now) < ExpiryWarning:
		return Warn, fmt.Sprintf("expires in %d days; %s", int(leaf.NotAfter.Sub(now).Hours()/24), desc)
	}
	return OK, desc
}

// public reports whether name can have DNS records in the public DNS.
func public(name string) bool {
	if net.ParseIP(name) != nil || !strings.Contains(name, ".") {
		return false
	}
	for _, suffix := range []string{".localhost", ".local", ".test", ".onion", ".invalid", ".example", ".internal", ".lan", ".home.arpa"} {
		if strings.HasSuffix(name, suffix) {
			return false
		}
	}
	return true
}

func dns(ctx context.Context, cfg config.Config, r *net.Resolver) []Result {
	var out []Result
	for _, h := range cfg.Hosts {
		what := "dns " + h
		if !public(h) {
			out = append(out, Result{OK, what, "skipped: not a public name"})
			continue
		}
		lookup := func(service string) (bool, error) {
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, addrs, err := r.LookupSRV(c, service, "tcp", h)
			return len(addrs) > 0, err
		}
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		ips, aerr := r.LookupHost(c, h)
		cancel()
		if unanswered(aerr) {
			out = append(out, Result{OK, what, "skipped: no DNS resolver answers"})
			continue
		}
		var missing []string
		for _, svc := range []string{"xmpp-client", "xmpps-client", "xmpp-server"} {
			found, err := lookup(svc)
			if unanswered(err) {
				continue
			}
			if !found {
				missing = append(missing, "_"+svc+"._tcp."+h)
			}
		}
		switch {
		case len(missing) == 3 && len(ips) == 0:
			out = append(out, Result{Fail, what, "no SRV records and no A/AAAA record: clients and servers cannot find " + h})
		case len(missing) > 0 && slices.Contains(missing, "_xmpp-client._tcp."+h) && slices.Contains(missing, "_xmpp-server._tcp."+h) && len(ips) > 0:
			out = append(out, Result{Warn, what, fmt.Sprintf("no SRV records (%s): clients and servers fall back to %s's A/AAAA records on ports 5222 and 5269", strings.Join(missing, ", "), h)})
		case len(missing) > 0:
			out = append(out, Result{Warn, what, "missing SRV records: " + strings.Join(missing, ", ")})
		default:
			out = append(out, Result{OK, what, "SRV records for clients, direct TLS and servers"})
		}
	}
	return out
}

// unanswered reports whether err means no resolver could be asked (as
// opposed to an answer that the name has no such record).
func unanswered(err error) bool {
	var de *net.DNSError
	if errors.As(err, &de) {
		return de.IsTimeout || de.IsTemporary && !de.IsNotFound
	}
	return err != nil && !errors.As(err, &de)
}

func ports(cfg config.Config, pidFile string) []Result {
	var out []Result
	running := pidIn(pidFile)
	for _, l := range []struct{ key, addr string }{
		{"listen.c2s", cfg.Listen.C2S}, {"listen.c2s_direct_tls", cfg.Listen.C2SDirectTLS},
		{"listen.s2s", cfg.Listen.S2S}, {"listen.https", cfg.Listen.HTTPS}, {"listen.admin", cfg.Listen.Admin},
	} {
		if l.addr == "" {
			continue
		}
		what := "port " + l.key
		if strings.HasSuffix(l.addr, ":0") {
			out = append(out, Result{OK, what, l.addr + ": any free port"})
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		switch {
		case err == nil:
			ln.Close()
			out = append(out, Result{OK, what, l.addr + " is free"})
		case errors.Is(err, syscall.EADDRINUSE) && running > 0 && listensOn(running, l.addr):
			out = append(out, Result{OK, what, fmt.Sprintf("%s is held by the running parley (pid %d)", l.addr, running)})
		case errors.Is(err, syscall.EADDRINUSE):
			out = append(out, Result{Fail, what, l.addr + " is in use by another program"})
		case errors.Is(err, syscall.EACCES):
			out = append(out, Result{Fail, what, l.addr + ": permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)"})
		default:
			out = append(out, Result{Fail, what, fmt.Sprintf("%s cannot be used: %v", l.addr, err)})
		}
	}
	return out
}

// pidIn returns the process id in pidFile, 0 when there is none.
func pidIn(pidFile string) int {
	if pidFile == "" {
		return 0
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// listensOn reports whether process pid holds a socket listening on
// addr's port (Linux: the listening sockets of /proc/net/tcp and tcp6
// against the process's descriptors), so that a stale pid file cannot
// vouch for another program.
func listensOn(pid int, addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return false
	}
	want := fmt.Sprintf(":%04X", p)
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			// local_address is field 1, st field 3 (0A: LISTEN), inode field 9.
			if len(fields) > 9 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && inodes[target] {
			return true
		}
	}
	return false
}

func tlsSettings(cfg config.Config) []Result {
	var out []Result
	if cfg.TLS.RequireStartTLS {
		out = append(out, Result{OK, "tls", "TLS 1.2 at least (1.3 preferred), forward secrecy only; clients must use TLS"})
	} else {
		out = append(out, Result{Warn, "tls", "tls.require_starttls is off: clients may log in without encryption"})
	}
	if cfg.Listen.S2S != "" && !cfg.S2S.RequireEncryption {
		out = append(out, Result{Warn, "tls s2s", "s2s.require_encryption is off: other servers may talk to this one unencrypted"})
	}
	return out
}

// permissions: the data directory must be usable by parley and closed
// to others (0700), and secret files 0600.
func permissions(cfg config.Config) []Result {
	var out []Result
	fi, err := os.Stat(cfg.DataDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return append(out, Result{OK, "data_dir", cfg.DataDir + " does not exist yet; parley creates it (0700)"})
	case err != nil:
		return append(out, Result{Fail, "data_dir", err.Error()})
	case !fi.IsDir():
		return append(out, Result{Fail, "data_dir", cfg.DataDir + " is not a directory"})
	}
	if err := writable(cfg.DataDir); err != nil {
		out = append(out, Result{Fail, "data_dir", fmt.Sprintf("%s is not writable: %v", cfg.DataDir, err)})
	} else if fi.Mode().Perm()&0o077 != 0 {
		out = append(out, Result{Warn, "data_dir", fmt.Sprintf("%s is %04o; make it 0700 (chmod 700), it holds keys and messages", cfg.DataDir, fi.Mode().Perm())})
	} else {
		out = append(out, Result{OK, "data_dir", fmt.Sprintf("%s is %04o", cfg.DataDir, fi.Mode().Perm())})
	}
	secrets := []string{cfg.KeyPath(), filepath.Join(cfg.DataDir, "tls", "selfsigned.key")}
	if cfg.Storage.Driver == "sqlite" {
		secrets = append(secrets, cfg.Storage.DSN)
	}
	if cfg.TLS.Key != "" {
		secrets = append(secrets, cfg.TLS.Key)
	}
	for _, f := range secrets {
		fi, err := os.Stat(f)
		if err != nil {
			continue // not made yet
		}
		if fi.Mode().Perm()&0o077 != 0 {
			out = append(out, Result{Warn, "secret file", fmt.Sprintf("%s is %04o; make it 0600", f, fi.Mode().Perm())})
		}
	}
	return out
}

// keyFile warns when the server-wide key sits inside data_dir: whoever
// copies that directory then has the key with the data it seals.
func keyFile(cfg config.Config) Result {
	path := cfg.KeyPath()
	if inside(cfg.DataDir, path) {
		return Result{Warn, "key_file", fmt.Sprintf("%s is inside data_dir: a copy of the data directory then unseals the server-key data (vCards, PEP items, rooms, uploads); set storage.key_file to a file elsewhere (another disk, a tmpfs filled at boot)", path)}
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return Result{OK, "key_file", path + " does not exist yet; parley creates it (0600) on first start"}
	} else if err != nil {
		return Result{Fail, "key_file", fmt.Sprintf("%s cannot be used: %v", path, err)}
	}
	return Result{OK, "key_file", path + " is outside data_dir"}
}

// inside reports whether path lies within dir, symbolic links resolved
// where they exist.
func inside(dir, path string) bool {
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			return filepath.Clean(p)
		}
		if r, err := filepath.EvalSymlinks(a); err == nil {
			return r
		}
		// The file may not exist yet: resolve its directory.
		if r, err := filepath.EvalSymlinks(filepath.Dir(a)); err == nil {
			return filepath.Join(r, filepath.Base(a))
		}
		return a
	}
	rel, err := filepath.Rel(abs(dir), abs(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func writable(dir string) error {
	f, err := os.CreateTemp(dir, ".parley-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
