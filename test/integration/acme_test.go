package integration

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveDNS answers every A question with 127.0.0.1 and every other
// question with no record, over TCP (which Pebble uses) and UDP on one
// loopback port: the names Pebble validates all lead to the parley under
// test. It stops with the test.
func serveDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := dnsAnswer(buf[:n]); resp != nil {
				pc.WriteTo(resp, addr)
			}
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				for {
					var n uint16
					if binary.Read(c, binary.BigEndian, &n) != nil {
						return
					}
					q := make([]byte, n)
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					resp := dnsAnswer(q)
					if resp == nil {
						return
					}
					c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(resp))))
					c.Write(resp)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// dnsAnswer builds the response to a one-question DNS query (RFC 1035
// §4.1), or nil for something it cannot read.
func dnsAnswer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil
	}
	i := 12
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil
	}
	question := q[12 : i+5]
	qtype := binary.BigEndian.Uint16(q[i+1 : i+3])
	resp := make([]byte, 0, 64)
	resp = append(resp, q[0], q[1], 0x81, 0x80, 0, 1) // id, response + recursion, 1 question
	if qtype == 1 {
		resp = append(resp, 0, 1) // one answer
	} else {
		resp = append(resp, 0, 0)
	}
	resp = append(resp, 0, 0, 0, 0)
	resp = append(resp, question...)
	if qtype == 1 {
		resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1)
	}
	return resp
}

// startPebble runs Let's Encrypt's test CA (go tool pebble) on loopback,
// validating challenges on httpPort and tlsPort of the names serveDNS
// resolves, issuing certificates that live for validity. It returns the
// directory URL and the file of the root its own HTTPS uses.
func startPebble(t *testing.T, httpPort, tlsPort string, validity time.Duration) (dir, rootFile string) {
	t.Helper()
	ca := newTestCA(t, "pebble https root")
	d := t.TempDir()
	crt, key := filepath.Join(d, "pebble.crt"), filepath.Join(d, "pebble.key")
	ca.issue(crt, key, time.Now().Add(24*time.Hour), "localhost")
	listen, mgmt := freeLoopbackPort(t), freeLoopbackPort(t)
	hp, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt,
		"certificate": crt, "privateKey": key,
		"httpPort": atoi(t, httpPort), "tlsPort": atoi(t, tlsPort),
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
		"retryAfter": map[string]int{"authz": 1, "order": 1},
		"profiles":   map[string]any{"default": map[string]any{"description": "short-lived, for the test", "validityPeriod": int(validity.Seconds())}},
	}})
	cfg := filepath.Join(d, "pebble.json")
	if err := os.WriteFile(cfg, hp, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "go", "tool", "pebble", "-config", cfg, "-dnsserver", serveDNS(t))
	cmd.Dir = srcRoot
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	logFile := filepath.Join(d, "pebble.log")
	lf, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		lf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("pebble log:\n%s", b)
		}
	})
	// The first run compiles pebble.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not listen on %s", listen)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, port := hostPort(listen)
	return "https://localhost:" + port + "/dir", ca.file
}

func atoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestACMEWithPebble: with [tls] acme, parley obtains certificates for
// its host and its group chat service from Pebble, answering the
// challenges on its own listeners (TLS-ALPN-01 on the HTTPS listener, or
// HTTP-01 on http_acme), keeps them in data_dir, and renews them before
// they expire; a session logged in all along stays.
func TestACMEWithPebble(t *testing.T) {
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) { testACME(t, challenge) })
	}
}

func testACME(t *testing.T, challenge string) {
	httpsAddr, httpAddr := freeLoopbackPort(t), freeLoopbackPort(t)
	_, httpsPort := hostPort(httpsAddr)
	_, httpPort := hostPort(httpAddr)
	dirURL, root := startPebble(t, httpPort, httpsPort, 40*time.Second)
	const host = "chat.example.com"
	// Only the listener of the challenge under test.
	listen := fmt.Sprintf("https = %q\n", httpsAddr)
	if challenge == "http-01" {
		listen = fmt.Sprintf("http_acme = %q\n", httpAddr)
	}
	s := startServer(t, serverOpts{hosts: []string{host}, extra: listen + fmt.Sprintf(
		"[tls]\nacme = true\nacme_email = \"admin@example.com\"\nacme_ca = %q\nacme_ca_root = %q\nacme_renewal_check = \"2s\"\n",
		dirURL, root)})
	s.addUser("ann@"+host, "pw")
	c := dialRaw(t, s.starttls)
	c.login("ann@"+host, "pw", "desk")

	issued := func(name string, wait time.Duration, other string) string {
		t.Helper()
		deadline := time.Now().Add(wait)
		for {
			leaf := presented(t, s.direct, name, false)
			serial := leaf.SerialNumber.String()
			if strings.Contains(leaf.Issuer.CommonName, "Pebble") && serial != other {
				if leaf.VerifyHostname(name) != nil {
					t.Fatalf("the certificate for %s names %v", name, leaf.DNSNames)
				}
				return serial
			}
			if time.Now().After(deadline) {
				t.Fatalf("no new certificate from Pebble for %s after %v (issuer %q); parley log:\n%s", name, wait, leaf.Issuer.CommonName, s.Stderr())
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	first := issued(host, 2*time.Minute, "")
	issued("conference."+host, time.Minute, "")
	if ms, _ := filepath.Glob(filepath.Join(s.dir, "data", "acme", "certificates", "*", host, host+".crt")); len(ms) == 0 {
		t.Errorf("the certificate is not kept in data_dir/acme")
	}
	// 40 s certificates enter their renewal window after about 27 s.
	issued(host, 2*time.Minute, first)
	if !strings.Contains(s.Stderr(), "acme: certificate obtained") {
		t.Errorf("the log does not tell about the certificates:\n%s", s.Stderr())
	}
	c.send("<iq type='get' id='p1' to='" + host + "'><ping xmlns='urn:xmpp:ping'/></iq>")
	if r := c.expectIQ("p1"); !strings.Contains(r, `type="result"`) {
		t.Fatalf("the session logged in before the certificates changed: %s", r)
	}
}
