package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process (Caddy or etcd). It runs in its own process group
// with a parent-death signal, so nothing outlives the program, even when
// it is killed with SIGKILL.
type proc struct {
	name string
	bin  string
	args []string
	env  []string
	log  string

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// children are every process started, stopped once at the end.
var children struct {
	sync.Mutex
	list    []*proc
	stopped bool
}

func (p *proc) start() error {
	lf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	children.Lock()
	defer children.Unlock()
	if children.stopped {
		lf.Close()
		return errors.New("stopping")
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return err
	}
	p.cmd, p.done, p.err = cmd, make(chan struct{}), nil
	go func() {
		err := cmd.Wait()
		lf.Close()
		p.err = err
		close(p.done)
	}()
	children.list = append(children.list, p)
	return nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM (Caddy and etcd stop gracefully on it), then kills
// the group if it is still there after 10 s.
func (p *proc) stop() {
	if p.cmd == nil || p.exited() {
		return
	}
	syscall.Kill(p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
	syscall.Kill(-p.pid(), syscall.SIGKILL)
	<-p.done
}

func stopChildren() {
	children.Lock()
	children.stopped = true
	list := children.list
	children.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop()
	}
}

// tail is the end of a child's log.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitHTTP polls url until it answers 2xx, the process exits or timeout.
func waitHTTP(p *proc, url string, timeout time.Duration) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(url); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return nil
			}
		}
		if p.exited() {
			return fmt.Errorf("%s exited (%v); its log ends with:\n%s", p.name, p.err, p.tail(20))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer %s within %s; its log ends with:\n%s", p.name, url, timeout, p.tail(20))
}

// freePort is a loopback port nothing listens on (it could be taken
// between this call and its use; nothing else here binds ports).
func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// build builds a binary of package pkg into dir, with the project's tags.
func build(dir, name, pkg string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-tags", "nobadger,nomysql,nopgx", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %v", pkg, err)
	}
	return out, nil
}

// rssAnon is a process's anonymous resident memory (heap, stacks), in
// bytes, from /proc/<pid>/status.
func rssAnon(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "RssAnon:"); ok {
			fs := strings.Fields(v)
			if len(fs) > 0 {
				kb, _ := strconv.ParseInt(fs[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	fs := strings.Fields(string(b))
	if len(fs) < 3 {
		return "?"
	}
	return strings.Join(fs[:3], " ")
}
