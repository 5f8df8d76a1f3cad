// Package egresstest serves DNS answers on loopback, so tests can make a
// host name resolve wherever they want (to 127.0.0.1, as a rebinding
// attacker would) without touching the machine's resolver.
package egresstest

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is a loopback DNS server answering A and AAAA questions from a table.
type DNS struct {
	conn net.PacketConn
	mu   sync.Mutex
	zone map[string][]netip.Addr
}

// NewDNS serves zone (host name → addresses) until the test ends. Unknown
// names get NXDOMAIN.
func NewDNS(t testing.TB, zone map[string][]netip.Addr) *DNS {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &DNS{conn: conn, zone: make(map[string][]netip.Addr)}
	for name, addrs := range zone {
		d.Set(name, addrs...)
	}
	go d.serve()
	t.Cleanup(func() { conn.Close() })
	return d
}

// Set changes what name resolves to, from the next question on.
func (d *DNS) Set(name string, addrs ...netip.Addr) {
	d.mu.Lock()
	d.zone[strings.ToLower(strings.TrimSuffix(name, "."))] = addrs
	d.mu.Unlock()
}

// Resolver returns a resolver that asks only this server.
func (d *DNS) Resolver() *net.Resolver {
	addr := d.conn.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", addr)
	}}
}

func (d *DNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if out, ok := d.answer(buf[:n]); ok {
			d.conn.WriteTo(out, from)
		}
	}
}

func (d *DNS) answer(q []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, false
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil, false
	}
	question := qs[0]
	name := strings.ToLower(strings.TrimSuffix(question.Name.String(), "."))
	d.mu.Lock()
	addrs, known := d.zone[name]
	d.mu.Unlock()
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(question) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	rrh := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 0}
	for _, a := range addrs {
		switch {
		case question.Type == dnsmessage.TypeA && a.Is4():
			if b.AResource(rrh, dnsmessage.AResource{A: a.As4()}) != nil {
				return nil, false
			}
		case question.Type == dnsmessage.TypeAAAA && a.Is6():
			if b.AAAAResource(rrh, dnsmessage.AAAAResource{AAAA: a.As16()}) != nil {
				return nil, false
			}
		}
	}
	out, err := b.Finish()
	return out, err == nil
}
