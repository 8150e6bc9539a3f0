//go:build !linux

package chaos

import "syscall"

// childAttr puts a child in its own process group (so that a kill reaches
// everything it started).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
