//go:build !linux

package main

import "syscall"

// childAttr: elsewhere Caddy shares the demo's process group, so Ctrl-C
// reaches both and each stops by itself.
func childAttr() *syscall.SysProcAttr { return nil }
