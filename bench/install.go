package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// aptPackages are the Debian packages the benchmark uses.
var aptPackages = []string{"nginx", "varnish", "wrk", "nghttp2-client"}

func missingTools() []string {
	var missing []string
	for _, t := range []string{"wrk", "nginx", "varnishd", "taskset"} {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	return missing
}

// ensureTools installs the peers and wrk from Debian's packages when they
// are missing and we are root with apt-get. Packaged services never keep
// running: a temporary policy-rc.d stops apt from starting them, and any
// nginx or varnishd that appeared during the install is stopped anyway.
// It returns what is still missing.
func ensureTools(log io.Writer, install bool) []string {
	missing := missingTools()
	if len(missing) == 0 {
		return nil
	}
	_, aptErr := exec.LookPath("apt-get")
	switch {
	case !install:
		fmt.Fprintf(log, "bench: missing %s; -install=false, not installing\n", strings.Join(missing, ", "))
		return missing
	case os.Geteuid() != 0:
		fmt.Fprintf(log, "bench: missing %s; not root, so not installing (as root: apt-get install -y %s)\n",
			strings.Join(missing, ", "), strings.Join(aptPackages, " "))
		return missing
	case aptErr != nil:
		fmt.Fprintf(log, "bench: missing %s and no apt-get: install nginx, varnish and wrk by hand\n", strings.Join(missing, ", "))
		return missing
	}
	fmt.Fprintf(log, "bench: installing %s (missing: %s)\n", strings.Join(aptPackages, " "), strings.Join(missing, ", "))
	before := daemonPIDs()
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policy); os.IsNotExist(err) {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\n# bench: keep apt from starting services during the install\nexit 101\n"), 0o755); err == nil {
			defer os.Remove(policy)
		}
	}
	run := func(args ...string) {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			fmt.Fprintf(log, "bench: %s: %v\n%s\n", strings.Join(args, " "), err, lastLines(string(out), 10))
		}
	}
	run("apt-get", "update", "-qq")
	run(append([]string{"apt-get", "install", "-y", "-qq", "--no-install-recommends"}, aptPackages...)...)
	stopPackagedServices(log, before)
	missing = missingTools()
	if len(missing) > 0 {
		fmt.Fprintf(log, "bench: still missing after install: %s\n", strings.Join(missing, ", "))
	}
	return missing
}

// stopPackagedServices stops and disables the nginx and varnish services
// where systemd runs them, then ends any nginx or varnishd process that
// was not running before the install and was daemonized (by PID: apt
// started it for us).
func stopPackagedServices(log io.Writer, before []int) {
	if _, err := exec.LookPath("systemctl"); err == nil && isDir("/run/systemd/system") {
		for _, unit := range []string{"nginx", "varnish", "varnishncsa"} {
			_ = exec.Command("systemctl", "disable", "--now", unit).Run()
		}
	}
	time.Sleep(200 * time.Millisecond)
	for _, pid := range daemonPIDs() {
		// Daemons apt started were re-parented to init.
		if slices.Contains(before, pid) || pid == os.Getpid() {
			continue
		}
		if st, err := readStat(pid); err != nil || st.ppid != 1 {
			continue
		}
		fmt.Fprintf(log, "bench: stopping %s (pid %d) started by the package install\n", comm(pid), pid)
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
}

// daemonPIDs lists processes named nginx, varnishd or Varnish's child.
func daemonPIDs() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		switch comm(pid) {
		case "nginx", "varnishd", "cache-main", "varnishncsa":
			pids = append(pids, pid)
		}
	}
	return pids
}

func comm(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	return strings.TrimSpace(string(b))
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
