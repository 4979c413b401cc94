package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// netns is a named network namespace (ip netns). A nil *netns is the
// lab's own namespace: its methods then just run what they are given.
//
// Sockets belong to the namespace they are created in, whatever thread
// uses them later, so the lab listens and dials inside a namespace by
// switching one locked OS thread into it for the socket call
// (setns(2)), and back. Go never starts new threads from a locked one,
// so no other goroutine ever runs in a namespace by accident.
type netns struct {
	name string
	fd   int // open /var/run/netns/NAME
}

// homeNS is the lab's own namespace, to switch back to.
var homeNS = sync.OnceValues(func() (int, error) {
	return unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
})

// newNetns creates the namespace name.
func newNetns(ctx context.Context, name string) (*netns, error) {
	if _, err := homeNS(); err != nil {
		return nil, fmt.Errorf("opening the lab's own network namespace: %w", err)
	}
	if err := ip(ctx, "netns", "add", name); err != nil {
		return nil, err
	}
	fd, err := unix.Open("/var/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = ip(context.WithoutCancel(ctx), "netns", "del", name)
		return nil, fmt.Errorf("opening namespace %s: %w", name, err)
	}
	n := &netns{name: name, fd: fd}
	if err := n.ip(ctx, "link", "set", "lo", "up"); err != nil {
		n.delete()
		return nil, err
	}
	return n, nil
}

// run calls f with the calling goroutine's thread inside the namespace.
func (n *netns) run(f func() error) error {
	if n == nil {
		return f()
	}
	home, err := homeNS()
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering namespace %s: %w", n.name, err)
	}
	ferr := f()
	if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
		// The thread stays locked and dies with this goroutine rather
		// than run anything else in the wrong namespace.
		return fmt.Errorf("leaving namespace %s: %w", n.name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// listen opens a TCP listener inside the namespace.
func (n *netns) listen(addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.run(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// listenUDP opens a UDP socket inside the namespace.
func (n *netns) listenUDP(addr string) (*net.UDPConn, error) {
	var pc *net.UDPConn
	err := n.run(func() error {
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		pc, err = net.ListenUDP("udp", ua)
		return err
	})
	return pc, err
}

// dial connects from inside the namespace, from local (when valid).
func (n *netns) dial(ctx context.Context, network, addr string, local net.Addr) (net.Conn, error) {
	var c net.Conn
	d := net.Dialer{LocalAddr: local}
	err := n.run(func() (err error) {
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// ip runs ip(8) inside the namespace ("ip -n NAME ...").
func (n *netns) ip(ctx context.Context, args ...string) error {
	if n == nil {
		return ip(ctx, args...)
	}
	return ip(ctx, append([]string{"-n", n.name}, args...)...)
}

// command returns cmd set up to run inside the namespace (ip netns exec
// replaces itself with the program, so the pid is the program's).
func (n *netns) command(bin string, args ...string) *exec.Cmd {
	if n == nil {
		return exec.Command(bin, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", n.name, bin}, args...)...)
}

// delete removes the namespace, and with it its interfaces (and their
// veth peers) and every socket still open in it.
func (n *netns) delete() error {
	if n == nil {
		return nil
	}
	unix.Close(n.fd)
	return ip(context.Background(), "netns", "del", n.name)
}

func (n *netns) String() string {
	if n == nil {
		return "(the lab's namespace)"
	}
	return n.name
}

// ip runs ip(8) with args.
func ip(ctx context.Context, args ...string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// Names of what the lab creates carry its pid, so that a run can tell
// what a killed run left behind (its pid is gone) from what a running one
// uses.
var (
	staleNetns  = regexp.MustCompile(`^edgelab(\d+)-`)
	staleBridge = regexp.MustCompile(`^elab(\d+)$`)
	staleDir    = regexp.MustCompile(`^edge-lab-(\d+)-`)
)

// alive reports whether the process pid (a string) may still run.
func alive(pid string) bool {
	n, err := strconv.Atoi(pid)
	if err != nil || n == os.Getpid() {
		return true
	}
	err = syscall.Kill(n, 0)
	return err == nil || err == syscall.EPERM
}

// removeStaleDirs deletes the run directories of lab runs whose process
// no longer exists (a run killed with SIGKILL cannot remove its own).
func removeStaleDirs(logf func(string, ...any)) {
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		if m := staleDir.FindStringSubmatch(e.Name()); m != nil && e.IsDir() && !alive(m[1]) {
			if err := os.RemoveAll(filepath.Join(os.TempDir(), e.Name())); err == nil {
				logf("removed %s, left by a lab run that is gone", filepath.Join(os.TempDir(), e.Name()))
			}
		}
	}
}

// removeStale deletes namespaces and bridges left by lab runs whose
// process no longer exists, and says what it removed.
func removeStale(ctx context.Context, logf func(string, ...any)) {
	if out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
			if m := staleNetns.FindStringSubmatch(name); m != nil && !alive(m[1]) {
				if err := ip(ctx, "netns", "del", name); err == nil {
					logf("removed namespace %s, left by a lab run that is gone", name)
				}
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "ip", "-o", "link", "show", "type", "bridge").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name := strings.TrimSuffix(f[1], ":")
			if m := staleBridge.FindStringSubmatch(name); m != nil && !alive(m[1]) {
				if err := ip(ctx, "link", "del", name); err == nil {
					logf("removed bridge %s, left by a lab run that is gone", name)
				}
			}
		}
	}
}
