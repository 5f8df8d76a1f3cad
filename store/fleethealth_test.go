package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
)

// outageWriters keeps n admin writers going (each retries as soon as it is
// answered) until stop is closed; it returns how many writes were refused.
func outageWriters(s *Store, n int, stop <-chan struct{}) (wait func() int64) {
	var refused atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.PutCredential("acme", "openai", fmt.Sprintf("sk-during-outage-%d-%d-0000000000", w, i), "", Extras{}); errors.Is(err, ErrUnavailable) {
					refused.Add(1)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	return func() int64 { wg.Wait(); return refused.Load() }
}

// After etcd comes back, admin writes recover within about a second of
// etcd being ready, even when writers kept calling during the outage.
func TestFleetWritesRecoverQuicklyAfterAnOutage(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "a", masterKey(1))
	mustAccount(t, a, "acme")
	c.StopAll()
	stop := make(chan struct{})
	wait := outageWriters(a, 3, stop)
	time.Sleep(8 * time.Second)
	if err := c.RestartAll(); err != nil {
		t.Fatal(err)
	}
	ready := time.Now()
	close(stop)
	refused := wait()
	var err error
	for {
		start := time.Now()
		if _, err = a.PutCredential("acme", "openai", "sk-after-the-outage-000000000000", "", Extras{}); err == nil {
			break
		}
		if time.Since(ready) > 30*time.Second {
			t.Fatalf("writes did not recover within 30 s: %v", err)
		}
		t.Logf("write refused %v after etcd was ready (it took %v): %v", time.Since(ready).Round(time.Millisecond), time.Since(start).Round(time.Millisecond), err)
		time.Sleep(10 * time.Millisecond)
	}
	recovered := time.Since(ready)
	t.Logf("%d writes refused during the 8 s outage; the first write after etcd was ready succeeded %v later", refused, recovered.Round(time.Millisecond))
	if recovered > 1500*time.Millisecond {
		t.Fatalf("admin writes took %v to recover after etcd was ready, want about a second", recovered)
	}
}

// An etcd outage is said: one log line when it starts (noticed by the
// watch going silent, with no write needed), one when it ends with its
// duration, the status, and the outage count; writes during it are refused
// at once instead of each waiting out its timeout.
func TestFleetEtcdOutageIsSaid(t *testing.T) {
	c := etcdtest.Start(t, 1)
	core, logs := observer.New(zap.InfoLevel)
	a, err := OpenFleet(dbPath(t), masterKey(1), Options{}, FleetOptions{Client: etcdtest.Client(t, c.Endpoint(0)), InstanceID: "a",
		WatchdogInterval: 200 * time.Millisecond, WriteTimeout: time.Second, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	mustAccount(t, a, "acme")
	if st := a.Fleet(); st.EtcdReachable == nil || !*st.EtcdReachable || st.EtcdUnreachableSince != nil || st.EtcdOutages != 0 {
		t.Fatalf("status before: %+v", st)
	}
	c.StopAll()
	stopped := time.Now()
	noticed := testfix.WaitFor(t, 10*time.Second, "the outage is noticed", func() bool { st := a.Fleet(); return !*st.EtcdReachable })
	t.Logf("outage noticed %v after etcd stopped, without a write", noticed.Round(time.Millisecond))
	st := a.Fleet()
	if st.EtcdUnreachableSince == nil || st.EtcdUnreachableSince.Before(stopped.Add(-time.Second)) || st.EtcdOutages != 1 {
		t.Fatalf("status during: %+v", st)
	}
	down := logs.FilterMessageSnippet("etcd is unreachable").All()
	if len(down) != 1 || down[0].Level != zap.WarnLevel {
		t.Fatalf("log lines at the start of the outage: %+v", logs.All())
	}
	for i := 0; i < 3; i++ {
		start := time.Now()
		if _, err := a.PutCredential("acme", "openai", canaryKey, "", Extras{}); !errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), canaryFragment) {
			t.Fatalf("write during the outage: %v", err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("a write during a known outage took %v to be refused", d)
		}
	}
	if n := len(logs.FilterMessageSnippet("etcd is unreachable").All()); n != 1 {
		t.Fatalf("%d lines for one outage", n)
	}
	if err := c.RestartAll(); err != nil {
		t.Fatal(err)
	}
	back := testfix.WaitFor(t, 5*time.Second, "etcd is seen again", func() bool { return *a.Fleet().EtcdReachable })
	t.Logf("etcd seen again %v after it was ready", back.Round(time.Millisecond))
	if back > 1500*time.Millisecond {
		t.Fatalf("recovery noticed after %v, want about a second at most", back)
	}
	up := logs.FilterMessageSnippet("etcd is reachable again").All()
	if len(up) != 1 || up[0].ContextMap()["writes_refused"] != int64(3) {
		t.Fatalf("log lines at the end of the outage: %+v", up)
	}
	if _, ok := up[0].ContextMap()["outage"]; !ok {
		t.Fatal("the recovery line does not say how long the outage lasted")
	}
	if st := a.Fleet(); st.EtcdUnreachableSince != nil || st.EtcdOutages != 1 {
		t.Fatalf("status after: %+v", st)
	}
	if _, err := a.PutCredential("acme", "openai", "sk-after-0000000000000000", "", Extras{}); err != nil {
		t.Fatalf("write after the outage: %v", err)
	}
}
