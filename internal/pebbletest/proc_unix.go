//go:build unix

package pebbletest

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the server in a process group of its own, so that
// killProcessGroup also reaches any children it starts.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func killProcessGroup(cmd *exec.Cmd) {
	// The group id is the leader's pid; a negative pid signals the group.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
