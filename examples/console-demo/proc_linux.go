package main

import "syscall"

// childAttr puts Caddy in its own process group (Ctrl-C reaches the demo,
// which stops Caddy gracefully) and ends it if the demo dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
