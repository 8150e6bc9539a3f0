package chaos

import "syscall"

// childAttr puts a child in its own process group (so that a kill reaches
// everything it started) and has the kernel SIGKILL it if the test binary
// dies without running its cleanups (a -timeout panic).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
