// Package egress decides where a URL chosen by a tenant may lead: the base
// URL an account registers with its BYOK key (an Azure resource, a regional
// OpenAI endpoint). Such a URL is checked twice: when it is saved (CheckURL:
// https only, no credentials, query or fragment, no literal internal address)
// and when a connection is made (Dialer: every address the name resolves to
// must be public unicast), so a name that later resolves to 127.0.0.1 (DNS
// rebinding) reaches nothing internal either. An operator opts in to private
// destinations with AllowHosts and to plain http with AllowHTTP.
//
// Platform base URLs, set by the operator in the config, are trusted and do
// not go through this package.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
)

// Policy is the operator's rule for tenant-chosen URLs. The zero value (and
// a nil *Policy) is the strict default: https to public addresses only.
type Policy struct {
	// AllowHTTP accepts http:// base URLs (the key then travels in clear
	// text: for a provider on a private network, not the internet).
	AllowHTTP bool
	// AllowHosts lists destinations that may be private: host names
	// (matched exactly, case-insensitively, as written in the URL), IP
	// addresses or CIDR prefixes (matched against every resolved address).
	AllowHosts []string
	// Resolver looks up host names at dial time. Default:
	// net.DefaultResolver.
	Resolver *net.Resolver

	once     sync.Once
	err      error
	names    map[string]bool
	prefixes []netip.Prefix
}

// New compiles a policy, refusing allow-list entries that are neither a
// host name nor an address or prefix.
func New(allowHTTP bool, allowHosts []string) (*Policy, error) {
	p := &Policy{AllowHTTP: allowHTTP, AllowHosts: allowHosts}
	return p, p.compile()
}

// compile reads AllowHosts once; a policy built as a struct literal is
// compiled on first use (entries that are not hosts, addresses or prefixes
// are then ignored: New reports them).
func (p *Policy) compile() error {
	if p == nil {
		return nil
	}
	p.once.Do(func() { p.err = p.parseAllowHosts() })
	return p.err
}

func (p *Policy) parseAllowHosts() error {
	p.names = make(map[string]bool)
	for _, h := range p.AllowHosts {
		h = strings.TrimSpace(h)
		switch {
		case h == "":
			continue
		case strings.Contains(h, "/"):
			pfx, err := netip.ParsePrefix(h)
			if err != nil {
				return fmt.Errorf("byok_allow_hosts: %q is not a CIDR prefix", h)
			}
			p.prefixes = append(p.prefixes, pfx.Masked())
		default:
			if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
				a = a.Unmap()
				p.prefixes = append(p.prefixes, netip.PrefixFrom(a, a.BitLen()))
				continue
			}
			if strings.ContainsAny(h, ":@?#") {
				return fmt.Errorf("byok_allow_hosts: %q is not a host name, address or CIDR prefix", h)
			}
			p.names[strings.ToLower(strings.TrimSuffix(h, "."))] = true
		}
	}
	return nil
}

// URLError is a refused URL; its message says why, for the person who
// entered it.
type URLError struct{ Reason string }

func (e *URLError) Error() string { return "base_url " + e.Reason }

func refuse(format string, args ...any) error {
	return &URLError{Reason: fmt.Sprintf(format, args...)}
}

// CheckURL checks a tenant-chosen base URL when it is saved. It does not
// resolve names (that happens, and is checked, at every dial).
func (p *Policy) CheckURL(raw string) error {
	_ = p.compile()
	if raw == "" {
		return refuse("is empty")
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c == 0x7f || c == '\\' {
			return refuse("must not contain spaces, control characters or backslashes")
		}
	}
	if strings.ContainsAny(raw, "?#") {
		return refuse("must not have a query or a fragment: give the API root, like https://contoso.openai.azure.com")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return refuse("must be an absolute URL, like https://contoso.openai.azure.com")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.allowHTTP() {
			return refuse("must use https: over http the key would travel in clear text (the operator can allow http with byok_allow_http)")
		}
	default:
		return refuse("must be an https URL, like https://contoso.openai.azure.com")
	}
	if u.User != nil {
		return refuse("must not carry credentials (user:password@); send the key as api_key")
	}
	host := u.Hostname()
	if host == "" {
		return refuse("has no host")
	}
	if p.nameAllowed(host) {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if why := p.blocked(a); why != "" {
			return refuse("points at %s (%s), which BYOK credentials may not reach (the operator can allow it with byok_allow_hosts)", host, why)
		}
		return nil
	}
	if looksLikeIPv4(host) {
		return refuse("host %q is not a canonical IPv4 address: write an address as four decimal numbers (like 93.184.216.34) or use a host name", host)
	}
	lh := strings.ToLower(strings.TrimSuffix(host, "."))
	if lh == "localhost" || strings.HasSuffix(lh, ".localhost") || lh == "localhost.localdomain" {
		return refuse("points at %s, the gateway's own machine (the operator can allow it with byok_allow_hosts)", host)
	}
	if !strings.Contains(lh, ".") {
		return refuse("host %q is not a fully qualified domain name", host)
	}
	return nil
}

// looksLikeIPv4 reports whether host, which is not a canonical IP address,
// would still be read as an IPv4 address by some resolver or URL parser:
// its last label is a number (decimal, octal "0177" or hex "0x7f"), as in
// "127.1", "0x7f.0.0.1", "0177.0.0.1" or "2130706433" (all 127.0.0.1 for
// inet_aton and the WHATWG URL standard's "ends in a number" rule). No
// top-level domain is numeric, so such a host is never a real name; the
// gateway's own resolver would look it up in DNS, where an answer could
// point anywhere, so it is refused at save and at dial time alike.
func looksLikeIPv4(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if len(last) >= 2 && (last[:2] == "0x" || last[:2] == "0X") {
		last = last[2:]
		for i := 0; i < len(last); i++ {
			c := last[i] | 0x20
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

func (p *Policy) resolver() *net.Resolver {
	if p == nil || p.Resolver == nil {
		return net.DefaultResolver
	}
	return p.Resolver
}

func (p *Policy) allowHTTP() bool { return p != nil && p.AllowHTTP }

func (p *Policy) nameAllowed(host string) bool {
	return p != nil && len(p.names) > 0 && p.names[strings.ToLower(strings.TrimSuffix(host, "."))]
}

// special holds the address ranges that are not public unicast and that
// netip's predicates do not name (RFC 6890 and its IANA registries).
var special = []struct {
	p   netip.Prefix
	why string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "a \"this network\" address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	// IPv4-compatible (deprecated, RFC 4291 §2.5.5.1: ::127.0.0.1) and
	// IPv4-translated (RFC 2765: ::ffff:0:127.0.0.1) addresses embed an
	// IPv4 address that netip's predicates do not look into; :: and ::1
	// are named above.
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible IPv6 address"},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "an IPv4-translated IPv6 address"},
	{netip.MustParsePrefix("64:ff9b::/96"), "a NAT64 address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a NAT64 address"},
	{netip.MustParsePrefix("100::/64"), "a discard address"},
	{netip.MustParsePrefix("2001::/23"), "an IETF protocol address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("2002::/16"), "a 6to4 address"},
}

// blocked says why a is not a destination for a tenant's URL, or "".
func (p *Policy) blocked(a netip.Addr) string {
	a = a.Unmap()
	if p != nil {
		for _, pfx := range p.prefixes {
			if pfx.Contains(a) {
				return ""
			}
		}
	}
	switch {
	case a.IsLoopback():
		return "a loopback address"
	case a.IsUnspecified():
		return "the unspecified address"
	case a.IsMulticast():
		return "a multicast address"
	case a.IsLinkLocalUnicast():
		return "a link-local address"
	case a.IsPrivate():
		return "a private address"
	case !a.IsGlobalUnicast():
		return "not a unicast address"
	}
	for _, s := range special {
		if s.p.Contains(a) {
			return s.why
		}
	}
	return ""
}

// BlockedError is a connection the policy refused at dial time.
type BlockedError struct {
	Host string
	Addr netip.Addr
	Why  string
}

func (e *BlockedError) Error() string {
	if !e.Addr.IsValid() {
		return fmt.Sprintf("egress: %s is %s, which BYOK base URLs may not reach", e.Host, e.Why)
	}
	return fmt.Sprintf("egress: %s resolves to %s (%s), which BYOK base URLs may not reach", e.Host, e.Addr, e.Why)
}

// IsBlocked reports whether err is (or wraps) a dial-time refusal.
func IsBlocked(err error) bool {
	var be *BlockedError
	return errors.As(err, &be)
}

// Dialer returns a DialContext for an http.Transport that serves tenant
// URLs. It resolves the name itself and refuses the whole dial if any of its
// addresses is not allowed (no falling through to another address), then
// connects to the checked addresses; d.Control checks each address once
// more at connect time, so no path reaches an address the policy refuses.
func (p *Policy) Dialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	_ = p.compile()
	guarded := *d
	guarded.Control = func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("egress: unexpected address %q", address)
		}
		if why := p.blocked(ap.Addr()); why != "" {
			return &BlockedError{Host: address, Addr: ap.Addr().Unmap(), Why: why}
		}
		return nil
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		trusted := p.nameAllowed(host)
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{a}
		} else if !trusted && looksLikeIPv4(host) {
			return nil, &BlockedError{Host: host, Why: "not a canonical IPv4 address"}
		} else {
			ipnet := "ip"
			switch network {
			case "tcp4":
				ipnet = "ip4"
			case "tcp6":
				ipnet = "ip6"
			}
			if addrs, err = p.resolver().LookupNetIP(ctx, ipnet, host); err != nil {
				return nil, err
			}
		}
		dialer := d
		if !trusted {
			for _, a := range addrs {
				if why := p.blocked(a); why != "" {
					return nil, &BlockedError{Host: host, Addr: a.Unmap(), Why: why}
				}
			}
			dialer = &guarded
		}
		var first error
		for _, a := range addrs {
			c, err := dialer.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
			if err == nil {
				return c, nil
			}
			if IsBlocked(err) || ctx.Err() != nil {
				return nil, err
			}
			if first == nil {
				first = err
			}
		}
		if first == nil {
			first = fmt.Errorf("egress: %s has no addresses", host)
		}
		return nil, first
	}
}
