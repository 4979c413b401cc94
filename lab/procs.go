package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one run of a program the lab starts (an edge, a dnsgeo,
// versitygw, Pebble), in its namespace, with its output in a log file.
// It is in a process group of its own, killed with the group, and dies
// with the lab (PR_SET_PDEATHSIG) should the lab be killed.
type proc struct {
	name    string
	ns      *netns
	bin     string
	args    []string
	env     []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the run ends
	pids []int         // of every run
}

// start runs the program; the previous run, if any, must have ended.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(p.logPath), 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	fmt.Fprintf(logf, "--- %s: %s %s\n", time.Now().Format(time.RFC3339Nano), p.bin, strings.Join(p.args, " "))
	cmd := p.ns.command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	p.pids = append(p.pids, cmd.Process.Pid)
	return nil
}

// running reports whether the current run has not ended.
func (p *proc) running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// pid is the current run's process id, 0 when not started.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// signal sends sig to the process group of the current run.
func (p *proc) signal(sig syscall.Signal) {
	if pid := p.pid(); pid > 0 && p.running() {
		_ = syscall.Kill(-pid, sig)
	}
}

// kill ends the run at once (SIGKILL to its group) and waits for it.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	p.wait(context.Background())
}

// stop asks the program to stop (SIGTERM), and kills it after timeout.
func (p *proc) stop(timeout time.Duration) {
	p.signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := p.wait(ctx); err != nil {
		p.kill()
	}
}

// wait waits for the current run to end.
func (p *proc) wait(ctx context.Context) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// exited returns an error when the current run has ended, with the end
// of its log; nil while it runs.
func (p *proc) exited() error {
	if p.running() {
		return nil
	}
	return fmt.Errorf("%s exited:\n%s", p.name, p.logTail())
}

// logTail returns the last lines of the program's log.
func (p *proc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 3 << 10
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// procs is every program the lab started, to stop them all.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

func (ps *procs) add(p *proc) *proc {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.list = append(ps.list, p)
	return p
}

// pids returns the process ids of every run of every program.
func (ps *procs) pids() []int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []int
	for _, p := range ps.list {
		p.mu.Lock()
		out = append(out, p.pids...)
		p.mu.Unlock()
	}
	return out
}

// stopAll stops every program at once (SIGTERM, then SIGKILL after
// timeout) and waits for all; it returns the pids of any it could not
// make exit.
func (ps *procs) stopAll(timeout time.Duration) error {
	ps.mu.Lock()
	list := ps.list
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(timeout)
		}()
	}
	wg.Wait()
	var errs []error
	for _, p := range list {
		if p.running() {
			errs = append(errs, fmt.Errorf("%s (pid %d) still running", p.name, p.pid()))
		}
	}
	return errors.Join(errs...)
}

// childEnv is the environment of the programs the lab starts: the lab's
// own without proxies (every request stays in the lab) and with extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
			"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}
