// Package etcdtest starts real etcd clusters in-process for tests: members
// of go.etcd.io/etcd/server/v3/embed on loopback, with free ports and
// temporary data directories, that a test can stop, restart and compact.
// No etcd binary is needed.
package etcdtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Cluster is a running etcd cluster of embedded members.
type Cluster struct {
	t       testing.TB
	mu      sync.Mutex
	members []*member
}

type member struct {
	name       string
	dir        string
	client     url.URL // what clients dial: the forwarder
	listen     url.URL // where the member listens for clients
	peer       url.URL
	fwd        *forwarder
	cluster    string
	etcd       *embed.Etcd
	everServed bool
	closing    chan struct{} // closed when a killed member's listeners are closed
	limits     Limits
}

// Limits are etcd server limits a test may raise (zero: etcd's default).
type Limits struct {
	// MaxTxnOps is --max-txn-ops (default 128).
	MaxTxnOps uint
	// MaxRequestBytes is --max-request-bytes (default 1.5 MiB).
	MaxRequestBytes uint
	// QuotaBackendBytes is --quota-backend-bytes (default 2 GiB).
	QuotaBackendBytes int64
	// WarningApplyDuration is --warning-apply-duration (default 100ms):
	// etcd logs a request that took longer to apply, formatting all of it
	// first (seconds of CPU for large transactions).
	WarningApplyDuration time.Duration
}

// Start starts an n-member cluster and waits until it serves; it is
// stopped when the test ends.
func Start(t testing.TB, n int) *Cluster { return StartWith(t, n, Limits{}) }

// StartWith is Start with server limits (the scale benchmark loads a
// large store in big transactions).
func StartWith(t testing.TB, n int, lim Limits) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	var initial []string
	urls := freeURLs(t, 3*n)
	for i := 0; i < n; i++ {
		m := &member{name: fmt.Sprintf("m%d", i), dir: t.TempDir(), client: urls[3*i], listen: urls[3*i+1], peer: urls[3*i+2], limits: lim}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peer.String())
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, m := range c.members {
		m.cluster = strings.Join(initial, ",")
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = m.start() }()
	}
	wg.Wait()
	t.Cleanup(c.Close)
	for _, err := range errs {
		if err != nil {
			t.Fatalf("starting etcd: %v", err)
		}
	}
	return c
}

// freeURLs returns n distinct free loopback addresses (held open together
// while they are picked, so none repeats).
func freeURLs(t testing.TB, n int) []url.URL {
	var out []url.URL
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		out = append(out, url.URL{Scheme: "http", Host: l.Addr().String()})
	}
	return out
}

func (m *member) start() error {
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{m.listen}, []url.URL{m.client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{m.peer}, []url.URL{m.peer}
	cfg.InitialCluster = m.cluster
	cfg.InitialClusterToken = "agentrouter-test"
	cfg.TickMs, cfg.ElectionMs = 50, 500
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// Compaction is driven by the tests (Compact); production sets
	// --auto-compaction-retention.
	cfg.AutoCompactionMode, cfg.AutoCompactionRetention = "revision", "0"
	if m.limits.MaxTxnOps > 0 {
		cfg.MaxTxnOps = m.limits.MaxTxnOps
	}
	if m.limits.MaxRequestBytes > 0 {
		cfg.MaxRequestBytes = m.limits.MaxRequestBytes
	}
	if m.limits.QuotaBackendBytes > 0 {
		cfg.QuotaBackendBytes = m.limits.QuotaBackendBytes
	}
	if m.limits.WarningApplyDuration > 0 {
		cfg.WarningApplyDuration = m.limits.WarningApplyDuration
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return fmt.Errorf("etcd member %s did not become ready", m.name)
	}
	fwd, err := forward(m.client.Host, m.listen.Host)
	if err != nil {
		e.Close()
		return err
	}
	m.etcd, m.everServed, m.fwd = e, true, fwd
	return nil
}

// forwarder relays a member's client port, so that Kill can cut its
// connections as a dead process would (the embedded server drains them for
// seconds).
type forwarder struct {
	l     net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool
}

func forward(from, to string) (*forwarder, error) {
	var l net.Listener
	var err error
	for try := 0; try < 50; try++ {
		if l, err = net.Listen("tcp", from); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	f := &forwarder{l: l, conns: make(map[net.Conn]struct{})}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go f.relay(c, to)
		}
	}()
	return f, nil
}

func (f *forwarder) track(cs ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return false
	}
	for _, c := range cs {
		f.conns[c] = struct{}{}
	}
	return true
}

func (f *forwarder) relay(c net.Conn, to string) {
	u, err := net.Dial("tcp", to)
	if err != nil {
		c.Close()
		return
	}
	if !f.track(c, u) {
		c.Close()
		u.Close()
		return
	}
	go func() { io.Copy(u, c); u.Close(); c.Close() }()
	io.Copy(c, u)
	c.Close()
	u.Close()
}

func (f *forwarder) close() {
	f.mu.Lock()
	f.done = true
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	f.l.Close()
	for c := range conns {
		c.Close()
	}
}

// Endpoints are the client URLs of every member.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.client.String())
	}
	return out
}

// Endpoint is the client URL of member i.
func (c *Cluster) Endpoint(i int) string { return c.members[i].client.String() }

// DataDir is member i's data directory.
func (c *Cluster) DataDir(i int) string { return c.members[i].dir }

// Size is the number of members.
func (c *Cluster) Size() int { return len(c.members) }

// Client returns a client of every member, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return Client(t, c.Endpoints()...)
}

// Client returns a client of the given endpoints only (a member, or a
// cluster started elsewhere), closed when the test ends. Its keepalive
// notices a hung member within about two seconds.
func Client(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second,
		DialKeepAliveTime: time.Second, DialKeepAliveTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Leader returns the index of the member that leads, or -1.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.members {
		if m.etcd != nil && m.etcd.Server.Leader() == m.etcd.Server.MemberID() {
			return i
		}
	}
	return -1
}

// WaitLeader waits until a running member leads and returns its index.
func (c *Cluster) WaitLeader(d time.Duration) int {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if l := c.Leader(); l >= 0 {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
	return -1
}

// Stop stops member i (its data directory stays).
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	m := c.members[i]
	e := m.etcd
	m.etcd = nil
	c.mu.Unlock()
	if e != nil {
		m.fwd.close()
		e.Close()
	}
}

// Kill stops member i abruptly: the raft node halts without handing over
// leadership, as when its process dies; then its listeners close.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	m := c.members[i]
	e := m.etcd
	m.etcd = nil
	c.mu.Unlock()
	if e != nil {
		// Cut every client connection at once (what clients see when
		// the process dies), and halt raft without handing over
		// leadership.
		m.fwd.close()
		e.Server.HardStop()
		// Closing the listeners waits for gRPC streams to drain (seconds):
		// do it in the background; Restart waits for it.
		done := make(chan struct{})
		m.closing = done
		go func() { e.Close(); close(done) }()
	}
}

// Freeze halts member i's raft node but leaves its client connections open
// and unanswered, as a member cut off from its peers by a partition, or a
// hung process, looks to its clients. Restart brings it back.
func (c *Cluster) Freeze(i int) {
	c.mu.Lock()
	m := c.members[i]
	e := m.etcd
	m.etcd = nil
	c.mu.Unlock()
	if e != nil {
		e.Server.HardStop()
		done := make(chan struct{})
		m.closing = done
		go func() {
			// Keep the connections hanging for a while before closing.
			time.Sleep(10 * time.Second)
			m.fwd.close()
			e.Close()
			close(done)
		}()
	}
}

// Restart starts a stopped member i again on the same ports and data.
func (c *Cluster) Restart(i int) error {
	m := c.members[i]
	c.mu.Lock()
	running := m.etcd != nil
	c.mu.Unlock()
	if running {
		return nil
	}
	if m.closing != nil {
		<-m.closing
		m.closing = nil
	}
	// Retry briefly: the old listeners' ports may take a moment to free.
	var err error
	for try := 0; try < 20; try++ {
		if err = m.startLocked(c); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func (m *member) startLocked(c *Cluster) error {
	if err := m.start(); err != nil {
		return err
	}
	return nil
}

// StopAll stops every member.
func (c *Cluster) StopAll() {
	for i := range c.members {
		c.Stop(i)
	}
}

// RestartAll restarts every stopped member, concurrently (a lone member
// of a 3-member cluster cannot become ready without quorum).
func (c *Cluster) RestartAll() error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.members))
	for i := range c.members {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.Restart(i) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Compact compacts the cluster's history up to its current revision and
// returns that revision.
func (c *Cluster) Compact(t testing.TB, cli *clientv3.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "compact-probe")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// Close stops every member.
func (c *Cluster) Close() { c.StopAll() }
