package caddymodule

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/peer"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// EtcdConfig switches the agent_router app to fleet mode: several Caddy
// instances behind a load balancer share accounts, API keys, sealed BYOK
// credentials (ciphertext only: every instance needs the same master key,
// and one with another key refuses to start), byok_only policies,
// credential health, console users and sessions, the routing-profile
// bindings of API keys and /v1/responses ids through etcd v3. A rotation on
// any instance is served by every instance within the watch latency
// (milliseconds). The request log, usage rollups and "last used" clocks
// stay in each instance's own store file; the admin API merges them across
// the live members.
//
// When etcd is unreachable the gateway keeps serving from its last
// snapshot and admin writes answer 503; it recovers without a restart.
// Changing these settings needs a restart, like the master key.
type EtcdConfig struct {
	// Endpoints are the etcd client URLs, e.g. https://10.0.0.1:2379.
	Endpoints []string `json:"endpoints,omitempty"`
	// Prefix is the key prefix of Agent Router's records; several fleets
	// may share one etcd with different prefixes. Default:
	// /agentrouter/v1/
	Prefix string `json:"prefix,omitempty"`
	// TLS configures client TLS: a CA bundle to verify etcd with, and a
	// client certificate for etcd's client-cert authentication.
	TLS *EtcdTLS `json:"tls,omitempty"`
	// Username and Password authenticate with etcd's RBAC. Keep the
	// password out of the config with {env.ETCD_PASSWORD}.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// DialTimeout bounds connecting to etcd and the first read at
	// startup: an unreachable etcd fails provisioning after this long.
	// Default: 5s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// InstanceID names this instance among the fleet's members. Default:
	// the host name and process id.
	InstanceID string `json:"instance_id,omitempty"`
	// PeerListen is the host:port of this instance's peer listener, where
	// the other instances read its request log and usage for fleet-wide
	// answers (the admin API's and the console's logs and usage). It
	// serves those two reads only, each request signed with a key derived
	// from the shared master key (anything else is refused), so Caddy's
	// admin endpoint can stay on localhost. Bind it to an address the
	// other instances reach on a private network. Without it, fleet-wide
	// reads report this instance as not answering.
	PeerListen string `json:"peer_listen,omitempty"`
	// PeerAddress is the host:port the other instances dial to reach
	// PeerListen, when it differs (a wildcard listen address, NAT).
	// Default: PeerListen, which then needs a specific host.
	PeerAddress string `json:"peer_address,omitempty"`
	// MaxTxnOps is the most operations one etcd transaction may hold:
	// etcd's own --max-txn-ops, whose default (128) is this one's. Raise
	// both together: it bounds a bulk creation (POST
	// /agent_router/tenants takes max_txn_ops / 3 records per call in
	// fleet mode, at most 10,000), and a value above etcd's makes such a
	// call fail with 413 ("split the call") when etcd refuses it.
	// Default: 128.
	MaxTxnOps int `json:"max_txn_ops,omitempty"`
	// AdminAddress is no longer used: the fleet reads go to PeerListen.
	// A config that still sets it is refused, with a message saying so.
	AdminAddress string `json:"admin_address,omitempty"`
}

// EtcdTLS is the client TLS configuration for etcd. Paths are files.
type EtcdTLS struct {
	CA         string `json:"ca,omitempty"`
	Cert       string `json:"cert,omitempty"`
	Key        string `json:"key,omitempty"`
	ServerName string `json:"server_name,omitempty"`
}

// resolved returns a copy with placeholders replaced and defaults set.
func (c *EtcdConfig) resolved(repl *caddy.Replacer) (EtcdConfig, error) {
	r := *c
	r.Endpoints = nil
	for _, e := range c.Endpoints {
		e = repl.ReplaceAll(e, "")
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return r, fmt.Errorf("etcd endpoint %q: want http(s)://host:port", e)
		}
		r.Endpoints = append(r.Endpoints, e)
	}
	if len(r.Endpoints) == 0 {
		return r, errors.New("etcd: no endpoints")
	}
	r.Prefix = repl.ReplaceAll(c.Prefix, "")
	if r.Prefix == "" {
		r.Prefix = store.DefaultFleetPrefix
	}
	if !strings.HasSuffix(r.Prefix, "/") {
		r.Prefix += "/"
	}
	r.Username = repl.ReplaceAll(c.Username, "")
	r.Password = repl.ReplaceAll(c.Password, "")
	r.InstanceID = repl.ReplaceAll(c.InstanceID, "")
	if c.AdminAddress != "" {
		return r, errors.New("etcd admin_address is no longer used: the instances read each other's request logs and usage on their own authenticated listener; set peer_listen (and keep Caddy's admin endpoint on localhost)")
	}
	r.PeerListen = repl.ReplaceAll(c.PeerListen, "")
	r.PeerAddress = repl.ReplaceAll(c.PeerAddress, "")
	if r.PeerListen != "" {
		host, port, err := net.SplitHostPort(r.PeerListen)
		if err != nil {
			return r, fmt.Errorf("etcd peer_listen %q: want host:port", r.PeerListen)
		}
		if r.PeerAddress == "" {
			if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
				return r, fmt.Errorf("etcd peer_listen %q listens on every address: set peer_address to the host:port the other instances dial", r.PeerListen)
			}
			if port == "0" {
				r.PeerAddress = "" // the bound port, once listening
			} else {
				r.PeerAddress = r.PeerListen
			}
		}
	} else if r.PeerAddress != "" {
		return r, errors.New("etcd peer_address needs peer_listen")
	}
	if r.DialTimeout <= 0 {
		r.DialTimeout = caddy.Duration(5 * time.Second)
	}
	if r.MaxTxnOps < 0 {
		return r, fmt.Errorf("etcd max_txn_ops %d: want etcd's --max-txn-ops, a positive number (default 128)", r.MaxTxnOps)
	}
	if c.TLS != nil {
		t := *c.TLS
		t.CA, t.Cert, t.Key, t.ServerName = repl.ReplaceAll(t.CA, ""), repl.ReplaceAll(t.Cert, ""), repl.ReplaceAll(t.Key, ""), repl.ReplaceAll(t.ServerName, "")
		r.TLS = &t
	}
	return r, nil
}

// signature identifies the settings (the password only hashed), so that a
// reload with different ones is noticed.
func (c EtcdConfig) signature() string {
	h := sha256.New()
	fmt.Fprintf(h, "%q %q %q %q %q %q %q %d", c.Endpoints, c.Prefix, c.Username, c.Password, c.InstanceID, c.PeerListen, c.PeerAddress, c.MaxTxnOps)
	if c.TLS != nil {
		fmt.Fprintf(h, " %q %q %q %q", c.TLS.CA, c.TLS.Cert, c.TLS.Key, c.TLS.ServerName)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// client builds the etcd client.
func (c EtcdConfig) client(logger *zap.Logger) (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: time.Duration(c.DialTimeout),
		// Drop a blackholed endpoint (etcd-io/etcd#7941).
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Username:             c.Username,
		Password:             c.Password,
		// etcd's --max-request-bytes decides how large a request may be
		// (1.5 MiB by default); the client's own 2 MiB default would cut
		// a bulk creation short even where etcd was raised for it.
		MaxCallSendMsgSize: 10 << 20,
		// The client's retry warnings would flood the log during an
		// outage; the store reports what matters.
		Logger: logger.WithOptions(zap.IncreaseLevel(zap.ErrorLevel)),
	}
	if c.TLS != nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLS.ServerName}
		if c.TLS.CA != "" {
			pem, err := os.ReadFile(c.TLS.CA)
			if err != nil {
				return nil, fmt.Errorf("etcd tls ca: %v", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("etcd tls ca: no PEM certificate in %s", c.TLS.CA)
			}
		}
		if c.TLS.Cert != "" || c.TLS.Key != "" {
			pair, err := tls.LoadX509KeyPair(c.TLS.Cert, c.TLS.Key)
			if err != nil {
				return nil, fmt.Errorf("etcd tls client certificate: %v", err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client: %v", err)
	}
	return cli, nil
}

// openFleet opens the store at path in fleet mode, with its peer listener
// (nil without peer_listen): both live as long as the store, across config
// reloads.
func (c EtcdConfig) openFleet(path string, key []byte, opts store.Options, logger *zap.Logger) (*store.Store, *clientv3.Client, *http.Server, error) {
	var ln net.Listener
	advertise := c.PeerAddress
	if c.PeerListen != "" {
		var err error
		if ln, err = net.Listen("tcp", c.PeerListen); err != nil {
			return nil, nil, nil, fmt.Errorf("fleet mode: peer_listen: %v", err)
		}
		if advertise == "" {
			advertise = ln.Addr().String()
		}
	}
	fail := func(err error) (*store.Store, *clientv3.Client, *http.Server, error) {
		if ln != nil {
			ln.Close()
		}
		return nil, nil, nil, err
	}
	cli, err := c.client(logger)
	if err != nil {
		return fail(err)
	}
	s, err := store.OpenFleet(path, key, opts, store.FleetOptions{
		Client: cli, Prefix: c.Prefix, InstanceID: c.InstanceID, PeerAddress: advertise,
		LoadTimeout: time.Duration(c.DialTimeout), Logger: logger, MaxTxnOps: c.MaxTxnOps,
	})
	if err != nil {
		cli.Close()
		return fail(fmt.Errorf("fleet mode: etcd at %s: %w", strings.Join(c.Endpoints, ", "), err))
	}
	if ln == nil {
		return s, cli, nil, nil
	}
	peerLog := logger.Named("peer")
	srv := &http.Server{
		Handler: &peer.Handler{Store: func() *store.Store { return s }, Refused: func(remote, why string) {
			peerLog.Warn("refused a fleet peer request", zap.String("remote", remote), zap.String("reason", why))
		}},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(peerLog.WithOptions(zap.IncreaseLevel(zap.ErrorLevel))),
	}
	go srv.Serve(ln)
	peerLog.Info("serving the fleet's peer reads", zap.String("listen", ln.Addr().String()), zap.String("address", advertise))
	return s, cli, srv, nil
}

// unmarshalEtcd parses the block of "store etcd { ... }":
//
//	store etcd {
//		endpoints     <url>...      # repeatable
//		prefix        <prefix>      # default /agentrouter/v1/
//		tls {
//			ca          <file>
//			cert        <file>
//			key         <file>
//			server_name <name>
//		}
//		username      <name>
//		password      <password>    # e.g. {env.ETCD_PASSWORD}
//		dial_timeout  <duration>    # default 5s
//		instance_id   <id>          # default host name and pid
//		peer_listen   <host:port>   # this instance's signed peer reads (logs, usage)
//		peer_address  <host:port>   # what the others dial, if not peer_listen
//		max_txn_ops   <n>           # etcd's --max-txn-ops, default 128; raise both together
//	}
func unmarshalEtcd(d *caddyfile.Dispenser) (*EtcdConfig, error) {
	c := new(EtcdConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "endpoints":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			c.Endpoints = append(c.Endpoints, args...)
		case "tls":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			c.TLS = new(EtcdTLS)
			for n := d.Nesting(); d.NextBlock(n); {
				o := d.Val()
				if !d.NextArg() {
					return nil, d.ArgErr()
				}
				v := d.Val()
				if d.NextArg() {
					return nil, d.ArgErr()
				}
				switch o {
				case "ca":
					c.TLS.CA = v
				case "cert":
					c.TLS.Cert = v
				case "key":
					c.TLS.Key = v
				case "server_name":
					c.TLS.ServerName = v
				default:
					return nil, d.Errf("unrecognized etcd tls option: %s", o)
				}
			}
		case "prefix", "username", "password", "dial_timeout", "instance_id", "admin_address", "peer_listen", "peer_address", "max_txn_ops":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			v := d.Val()
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			switch opt {
			case "prefix":
				if !strings.HasPrefix(v, "/") {
					return nil, d.Errf("etcd prefix must start with /: %q", v)
				}
				c.Prefix = v
			case "username":
				c.Username = v
			case "password":
				c.Password = v
			case "instance_id":
				c.InstanceID = v
			case "admin_address":
				return nil, d.Err("etcd admin_address is no longer used: the instances read each other's request logs and usage on their own authenticated listener; set peer_listen <host:port> (and keep Caddy's admin endpoint on localhost)")
			case "peer_listen":
				c.PeerListen = v
			case "peer_address":
				c.PeerAddress = v
			case "max_txn_ops":
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					return nil, d.Errf("max_txn_ops: want a positive number (etcd's --max-txn-ops), got %q", v)
				}
				c.MaxTxnOps = n
			case "dial_timeout":
				dur, err := caddy.ParseDuration(v)
				if err != nil || dur <= 0 {
					return nil, d.Errf("dial_timeout: invalid duration %q", v)
				}
				c.DialTimeout = caddy.Duration(dur)
			}
		default:
			return nil, d.Errf("unrecognized etcd option: %s", opt)
		}
	}
	if len(c.Endpoints) == 0 {
		return nil, d.Err("store etcd: endpoints are required")
	}
	return c, nil
}
