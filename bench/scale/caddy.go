package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// gateway is one Caddy process with Agent Router: its site (the data
// plane) and its admin endpoint, both on loopback.
type gateway struct {
	*proc
	site, admin string // host:port
	// etcd is its fleet's etcd client URL; "" single node.
	etcd string
}

// master is the fleet's (and the single node's) master key.
var master = func() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}()

// maxTxnOps is the etcd transaction bound of the fleet, etcd's and the
// instances' (max_txn_ops): a bulk call of 1,400 tenants is about 25,000
// operations.
const maxTxnOps = 30000

// newGateway writes the Caddyfile of an instance named name in dir: the
// store in dir (and, with etcdURL, fleet mode on it), the openai provider
// at the fake upstream.
func newGateway(bin, dir, name, fakeURL, etcdURL string) (*gateway, error) {
	home := filepath.Join(dir, name)
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	g := &gateway{site: fmt.Sprintf("127.0.0.1:%d", freePort()), admin: fmt.Sprintf("127.0.0.1:%d", freePort()), etcd: etcdURL}
	fleet := ""
	if etcdURL != "" {
		fleet = fmt.Sprintf("\t\tstore etcd {\n\t\t\tendpoints %s\n\t\t\tinstance_id %s\n\t\t\tmax_txn_ops %d\n\t\t}\n", etcdURL, name, maxTxnOps)
	}
	conf := fmt.Sprintf(`{
	admin %s
	persist_config off
	auto_https off
	agent_router {
		store %s
		master_key {env.AGENT_ROUTER_MASTER_KEY}
%s	}
}

http://%s {
	agent_router {
		provider openai {
			base_url %s/v1
		}
	}
}
`, g.admin, filepath.Join(home, "agent_router.db"), fleet, g.site, fakeURL)
	path := filepath.Join(home, "Caddyfile")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	env := append(os.Environ(), "AGENT_ROUTER_MASTER_KEY="+master,
		"XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"))
	g.proc = &proc{name: name, bin: bin, args: []string{"run", "--config", path, "--adapter", "caddyfile"}, env: env,
		log: filepath.Join(home, "caddy.log")}
	return g, nil
}

// run starts the instance and waits for its admin endpoint.
func (g *gateway) run() error {
	if err := g.start(); err != nil {
		return err
	}
	return waitHTTP(g.proc, "http://"+g.admin+"/config/", 60*time.Second)
}

func (g *gateway) adminURL(path string) string { return "http://" + g.admin + "/agent_router/" + path }

// startEtcd starts one etcd member in dir with the limits a bulk load
// needs, and returns its client URL.
func startEtcd(bin, dir string) (*proc, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	c, p := freePort(), freePort()
	client := fmt.Sprintf("http://127.0.0.1:%d", c)
	peer := fmt.Sprintf("http://127.0.0.1:%d", p)
	args := []string{"--name", "e1", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "e1=" + peer,
		fmt.Sprintf("--max-txn-ops=%d", maxTxnOps), "--max-request-bytes=8388608", // 8 MiB: a call of 1,400 tenants is ~3.5 MiB
		"--quota-backend-bytes=8589934592", "--auto-compaction-mode=periodic", "--auto-compaction-retention=5m",
		"--warning-apply-duration=10s", // etcd formats a whole slow transaction to log it
		"--log-level=warn"}
	e := &proc{name: "etcd", bin: bin, args: args, env: os.Environ(), log: filepath.Join(dir, "etcd.log")}
	if err := e.start(); err != nil {
		return nil, "", err
	}
	return e, client, waitHTTP(e, client+"/health", 30*time.Second)
}

// adminClient talks to the admin endpoints; dataClient to the sites.
var (
	adminClient = &http.Client{Timeout: 120 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	dataClient  = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
)

func adminDo(method, url, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := adminClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := readAll(resp.Body)
	return resp.StatusCode, b, err
}
