package main

import (
	"bufio"
	"bytes"
	"encoding/json"
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

// proc is a child process the bench started. Every child runs in its own
// process group and gets SIGKILL if the bench dies (Pdeathsig), so nothing
// outlives a run, even one killed with SIGKILL.
type proc struct {
	name  string
	cmd   *exec.Cmd
	admin string // Caddy's admin address; "" for the fake
	log   string
	done  chan struct{}
	err   error
}

// procs tracks every child and the temp dir, and stops them exactly once.
type procs struct {
	mu      sync.Mutex
	list    []*proc
	dir     string
	stopped bool
}

var children = &procs{}

func (ps *procs) start(name, bin string, args, env []string, admin string) (*proc, error) {
	logPath := filepath.Join(ps.dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.stopped {
		lf.Close()
		return nil, errors.New("stopping")
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, admin: admin, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	ps.list = append(ps.list, p)
	return p, nil
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

// stop asks Caddy to stop through its admin API (or sends SIGTERM), then
// kills the process group if it is still there after a few seconds.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	if p.admin != "" {
		c := &http.Client{Timeout: 2 * time.Second}
		if resp, err := c.Post("http://"+p.admin+"/stop", "application/json", nil); err == nil {
			resp.Body.Close()
		}
	} else {
		syscall.Kill(-p.pid(), syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	syscall.Kill(-p.pid(), syscall.SIGKILL) // the group, in case of grandchildren
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
	}
}

// stopAll stops every child (newest first) and removes the temp dir.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	if ps.stopped {
		ps.mu.Unlock()
		return
	}
	ps.stopped = true
	list := ps.list
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for i := len(list) - 1; i >= 0; i-- {
		wg.Add(1)
		go func(p *proc) { defer wg.Done(); p.stop() }(list[i])
	}
	wg.Wait()
	if ps.dir != "" {
		os.RemoveAll(ps.dir)
	}
}

// tail returns the last n lines of a child's log.
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
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer %s within %s; its log ends with:\n%s", p.name, url, timeout, p.tail(20))
}

// portFree reports whether 127.0.0.1:port can be listened on.
func portFree(port int) error {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	return ln.Close()
}

// --- /proc readers ---

// memInfo is a process's memory from /proc/<pid>/status, in kB.
type memInfo struct {
	rss, hwm   int64 // VmRSS, VmHWM (peak, resettable)
	anon, file int64 // RssAnon (heap, stacks), RssFile (mapped files: bbolt's mmap)
	shmem      int64 // RssShmem
}

func memKB(pid int) memInfo {
	var m memInfo
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			m.rss = kbField(line)
		case strings.HasPrefix(line, "VmHWM:"):
			m.hwm = kbField(line)
		case strings.HasPrefix(line, "RssAnon:"):
			m.anon = kbField(line)
		case strings.HasPrefix(line, "RssFile:"):
			m.file = kbField(line)
		case strings.HasPrefix(line, "RssShmem:"):
			m.shmem = kbField(line)
		}
	}
	return m
}

func kbField(line string) int64 {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0
	}
	v, _ := strconv.ParseInt(f[1], 10, 64)
	return v
}

// resetHWM resets the peak RSS (VmHWM) of pid to its current RSS
// (Linux >= 4.0, echo 5 > /proc/<pid>/clear_refs).
func resetHWM(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// cpuTime is the user+system CPU time pid has used (all threads).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck
}

// memStats reads the Go runtime's cumulative allocation counters from an
// expvar endpoint (/debug/vars: Caddy's admin API, and the fake).
func memStats(addr string) (mallocs, bytes uint64, ok bool) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/debug/vars")
	if err != nil {
		return 0, 0, false
	}
	defer resp.Body.Close()
	var v struct {
		Memstats struct {
			Mallocs    uint64
			TotalAlloc uint64
		} `json:"memstats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return 0, 0, false
	}
	return v.Memstats.Mallocs, v.Memstats.TotalAlloc, true
}

// acceptedConns is how many connections the fake upstream has accepted.
func acceptedConns(fakeAddr string) int64 {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + fakeAddr + "/debug/vars")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var v struct {
		Accepted int64 `json:"accepted_conns"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return -1
	}
	return v.Accepted
}

// adminCall sends a JSON request to Caddy's admin API.
func adminCall(method, url, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit: 1,000 slow
// streams need ~1,000 descriptors here and ~2,000 in the proxy.
func raiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}
