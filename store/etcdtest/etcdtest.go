// Package etcdtest starts real etcd clusters in-process for tests: members
// of go.etcd.io/etcd/server/v3/embed on loopback, with free ports and
// temporary data directories, that a test can stop, restart and compact.
// No etcd binary is needed.
package etcdtest

import (
	"context"
	"fmt"
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
	client     url.URL
	peer       url.URL
	cluster    string
	etcd       *embed.Etcd
	everServed bool
}

// Start starts an n-member cluster and waits until it serves; it is
// stopped when the test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	var initial []string
	for i := 0; i < n; i++ {
		m := &member{name: fmt.Sprintf("m%d", i), dir: t.TempDir(), client: freeURL(t), peer: freeURL(t)}
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

func freeURL(t testing.TB) url.URL {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}
}

func (m *member) start() error {
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{m.client}, []url.URL{m.client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{m.peer}, []url.URL{m.peer}
	cfg.InitialCluster = m.cluster
	cfg.InitialClusterToken = "agentrouter-test"
	cfg.TickMs, cfg.ElectionMs = 50, 500
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// Compaction is driven by the tests (Compact); production sets
	// --auto-compaction-retention.
	cfg.AutoCompactionMode, cfg.AutoCompactionRetention = "revision", "0"
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
	m.etcd, m.everServed = e, true
	return nil
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
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second,
		DialKeepAliveTime: 2 * time.Second, DialKeepAliveTimeout: 2 * time.Second, Logger: zap.NewNop()})
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
		e.Close()
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
