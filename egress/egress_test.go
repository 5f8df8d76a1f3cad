package egress_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/egress/egresstest"
)

func TestCheckURL(t *testing.T) {
	strict, err := egress.New(false, nil)
	if err != nil {
		t.Fatal(err)
	}
	open, err := egress.New(true, []string{"10.0.0.0/8", "azure.corp", "fd00::1", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		url          string
		strict, open string // "" accepted, else a piece of the refusal
	}{
		{"https://contoso.openai.azure.com", "", ""},
		{"https://eu.api.openai.com/v1", "", ""},
		{"https://93.184.216.34:8443/openai", "", ""},
		{"https://[2606:4700::1111]/v1", "", ""},
		{"http://contoso.openai.azure.com", "must use https", ""},
		{"http://127.0.0.1:2019/stop#", "query or a fragment", "query or a fragment"},
		{"https://127.0.0.1:2019/stop", "loopback", ""},
		{"https://127.0.0.2/", "loopback", "loopback"},
		{"https://10.20.30.40/", "private", ""},
		{"https://192.168.1.1/", "private", "private"},
		{"https://172.16.0.1/", "private", "private"},
		{"https://[fd00::1]/", "private", ""},
		{"https://[fd00::2]/", "private", "private"},
		{"https://169.254.169.254/latest", "link-local", "link-local"},
		{"https://[fe80::1]/", "link-local", "link-local"},
		{"https://100.100.100.200/", "carrier-grade NAT", "carrier-grade NAT"},
		{"https://0.0.0.0/", "unspecified", "unspecified"},
		{"https://[::]/", "unspecified", "unspecified"},
		{"https://[::ffff:10.0.0.1]/", "private", ""},
		{"https://[64:ff9b::a00:1]/", "NAT64", "NAT64"},
		// IPv4-compatible and IPv4-translated IPv6 literals embed an IPv4
		// address (here 127.0.0.1, 10.0.0.1, 93.184.216.34).
		{"https://[::127.0.0.1]/", "IPv4-compatible", "IPv4-compatible"},
		{"https://[::7f00:1]:2019/", "IPv4-compatible", "IPv4-compatible"},
		{"https://[::a00:1]/", "IPv4-compatible", "IPv4-compatible"},
		{"https://[::93.184.216.34]/", "IPv4-compatible", "IPv4-compatible"},
		{"https://[::ffff:0:127.0.0.1]/", "IPv4-translated", "IPv4-translated"},
		// Non-canonical IPv4 (inet_aton forms): never a real host name.
		{"https://127.1/", "canonical IPv4", "canonical IPv4"},
		{"https://127.0.1/", "canonical IPv4", "canonical IPv4"},
		{"https://0x7f.0.0.1/", "canonical IPv4", "canonical IPv4"},
		{"https://0X7F.1/", "canonical IPv4", "canonical IPv4"},
		{"https://0177.0.0.1/", "canonical IPv4", "canonical IPv4"},
		{"https://2130706433/", "canonical IPv4", "canonical IPv4"},
		{"https://0x7f000001:8443/v1", "canonical IPv4", "canonical IPv4"},
		{"https://010.0.0.1/", "canonical IPv4", "canonical IPv4"},
		{"https://93.184.216.034/", "canonical IPv4", "canonical IPv4"},
		{"https://127.0.0.1./", "canonical IPv4", "canonical IPv4"},
		{"https://api.example.0x10/", "canonical IPv4", "canonical IPv4"},
		// A numeric label elsewhere is an ordinary name.
		{"https://1.api.example.com/", "", ""},
		{"https://0x7f.example.com/", "", ""},
		{"https://239.1.1.1/", "multicast", "multicast"},
		{"https://255.255.255.255/", "not a unicast", "not a unicast"},
		{"https://240.1.2.3/", "reserved", "reserved"},
		{"https://localhost/", "own machine", "own machine"},
		{"https://api.localhost/", "own machine", "own machine"},
		{"https://azure.corp/", "", ""},
		{"https://AZURE.corp./", "", ""},
		{"https://[fd00::1]:8443/", "private", ""},
		{"https://intranet/", "not a fully qualified", "not a fully qualified"},
		{"https://u:p@contoso.openai.azure.com", "credentials", "credentials"},
		{"https://contoso.openai.azure.com/?x=1", "query", "query"},
		{"https://contoso.openai.azure.com/#", "fragment", "fragment"},
		{"https://contoso.openai.azure.com/ x", "spaces", "spaces"},
		{"https://contoso.openai.azure.com\\@127.0.0.1/", "backslashes", "backslashes"},
		{"ftp://contoso.openai.azure.com", "https URL", "https URL"},
		{"contoso.openai.azure.com", "absolute URL", "absolute URL"},
		{"//contoso.openai.azure.com", "https URL", "https URL"},
		{"https:contoso", "absolute URL", "absolute URL"},
		{"", "empty", "empty"},
	}
	for _, c := range cases {
		for _, pc := range []struct {
			name string
			p    *egress.Policy
			want string
		}{{"strict", strict, c.strict}, {"nil", nil, c.strict}, {"open", open, c.open}} {
			err := pc.p.CheckURL(c.url)
			switch {
			case pc.want == "" && err != nil:
				t.Errorf("%s: %q refused: %v", pc.name, c.url, err)
			case pc.want != "" && err == nil:
				t.Errorf("%s: %q accepted, want a refusal naming %q", pc.name, c.url, pc.want)
			case pc.want != "" && !strings.Contains(err.Error(), pc.want):
				t.Errorf("%s: %q: %v, want it to name %q", pc.name, c.url, err, pc.want)
			}
			var ue *egress.URLError
			if err != nil && !errors.As(err, &ue) {
				t.Errorf("%s: %q: error %T is not a *URLError", pc.name, c.url, err)
			}
		}
	}
}

func TestNewRejectsBadAllowEntries(t *testing.T) {
	for _, h := range []string{"10.0.0.0/33", "not/a/cidr", "user@host", "host:8080", "a?b"} {
		if _, err := egress.New(false, []string{h}); err == nil || !strings.Contains(err.Error(), "byok_allow_hosts") {
			t.Errorf("allow entry %q: %v, want a byok_allow_hosts error", h, err)
		}
	}
}

// listener counts the connections it accepts.
func listener(t *testing.T) (port string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, accepted
}

func TestDialerRefusesInternalAddresses(t *testing.T) {
	port, accepted := listener(t)
	dns := egresstest.NewDNS(t, map[string][]netip.Addr{
		"rebind.example.com": {netip.MustParseAddr("127.0.0.1")},
		// One public and one internal address: the whole dial is refused,
		// never retried on the other address.
		"mixed.example.com":  {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("127.0.0.1")},
		"mapped.example.com": {netip.MustParseAddr("::ffff:127.0.0.1")},
		"v6.example.com":     {netip.MustParseAddr("::1")},
		"allowed.corp":       {netip.MustParseAddr("127.0.0.1")},
		"compat.example.com": {netip.MustParseAddr("::127.0.0.1")},
		// A DNS server may answer for a name that looks like an address
		// (Go's resolver asks it for hex forms): the dialer never asks.
		"0x7f.0.0.1": {netip.MustParseAddr("127.0.0.1")},
	})
	strict := &egress.Policy{Resolver: dns.Resolver()}
	byName := &egress.Policy{Resolver: dns.Resolver(), AllowHosts: []string{"allowed.corp"}}
	byCIDR := &egress.Policy{Resolver: dns.Resolver(), AllowHosts: []string{"127.0.0.0/8"}}
	d := &net.Dialer{Timeout: 2 * time.Second}
	ctx := context.Background()

	for _, host := range []string{"rebind.example.com", "mixed.example.com", "mapped.example.com", "v6.example.com", "127.0.0.1", "allowed.corp",
		"compat.example.com", "::127.0.0.1", "127.1", "0x7f.0.0.1", "0177.0.0.1", "2130706433"} {
		c, err := strict.Dialer(d)(ctx, "tcp", net.JoinHostPort(host, port))
		if err == nil {
			c.Close()
			t.Errorf("strict: dialing %s succeeded", host)
			continue
		}
		var be *egress.BlockedError
		if !errors.As(err, &be) || !egress.IsBlocked(err) {
			t.Errorf("strict: dialing %s: %v (%T), want a BlockedError", host, err, err)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("%d connections reached the internal listener", n)
	}

	for _, c := range []struct {
		p    *egress.Policy
		host string
	}{{byName, "allowed.corp"}, {byCIDR, "rebind.example.com"}, {byCIDR, "127.0.0.1"}} {
		conn, err := c.p.Dialer(d)(ctx, "tcp", net.JoinHostPort(c.host, port))
		if err != nil {
			t.Errorf("allowed %s: %v", c.host, err)
			continue
		}
		conn.Close()
	}
	// An allowed range does not make a non-canonical IPv4 host dialable:
	// it is refused before any lookup, whatever DNS would answer.
	for _, host := range []string{"127.1", "0x7f.0.0.1"} {
		if c, err := byCIDR.Dialer(d)(ctx, "tcp", net.JoinHostPort(host, port)); err == nil || !egress.IsBlocked(err) || !strings.Contains(err.Error(), "canonical") {
			if c != nil {
				c.Close()
			}
			t.Errorf("byCIDR: dialing %s: %v, want refused as not canonical", host, err)
		}
	}
	// byName allows the name, not the address behind other names.
	if c, err := byName.Dialer(d)(ctx, "tcp", net.JoinHostPort("rebind.example.com", port)); err == nil {
		c.Close()
		t.Error("a name allowance let another name reach its address")
	}

	// Rebinding: the name answers a public address first, then 127.0.0.1;
	// every dial resolves anew and is checked anew.
	dns.Set("flip.example.com", netip.MustParseAddr("127.0.0.1"))
	if c, err := strict.Dialer(d)(ctx, "tcp", net.JoinHostPort("flip.example.com", port)); err == nil || !egress.IsBlocked(err) {
		if c != nil {
			c.Close()
		}
		t.Errorf("rebound name: %v, want blocked", err)
	}
	// A dial returns once the kernel completed the handshake; the
	// listener's accept loop may count it a moment later.
	want := int32(3)
	deadline := time.Now().Add(5 * time.Second)
	for accepted.Load() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // and one more would have shown by now
	if n := accepted.Load(); n != want {
		t.Errorf("%d connections accepted, want %d (the allowed dials only)", n, want)
	}
}
