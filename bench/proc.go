package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat.
// It is 100 on every Linux architecture Go supports.
const clockTicks = 100

// process is a server (or load generator) the harness started, in its own
// process group so that it and everything it forks can be stopped at once.
type process struct {
	name string
	cmd  *exec.Cmd
	env  []string // added to the harness's environment
	log  string   // combined stdout and stderr
	done chan struct{}
	err  error // set when done is closed
}

// procs is every process the harness started; stopAll ends them.
type procs struct {
	mu   sync.Mutex
	list []*process
}

// start runs argv pinned to cpu (taskset) with its output in logPath.
// cpu < 0 means not pinned.
func (ps *procs) start(name string, cpu int, env []string, logPath string, argv ...string) (*process, error) {
	if cpu >= 0 {
		argv = append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, env: env, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// commandLine is p's environment additions and argv, quoted for a shell.
func (p *process) commandLine() string {
	return shellJoin(append(slices.Clone(p.env), p.cmd.Args...))
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends p and every process it forked: SIGTERM to its process group
// and to any descendant that left it, then SIGKILL after a grace period.
func (p *process) stop() {
	if p.exited() {
		return
	}
	pids := descendants(p.pid())
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	for _, pid := range pids {
		if alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
	}
}

// tail is the end of p's log, for error messages.
func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// stopAll stops every process started, newest first.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop()
	}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// descendants lists pid and every process below it.
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(n)
		if err != nil {
			continue
		}
		children[st.ppid] = append(children[st.ppid], n)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

type procStat struct {
	ppid         int
	utime, stime int64 // clock ticks, all threads, dead ones included
}

// readStat parses /proc/PID/stat. The command name may hold spaces and
// parentheses, so fields are counted from the last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(string(b))
}

func parseStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, errors.New("short stat")
	}
	var st procStat
	var err1, err2, err3 error
	st.ppid, err1 = strconv.Atoi(f[1])
	st.utime, err2 = strconv.ParseInt(f[11], 10, 64)
	st.stime, err3 = strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return procStat{}, err
	}
	return st, nil
}

// cpuTime is the user+system CPU time of pids.
func cpuTime(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		if st, err := readStat(pid); err == nil {
			ticks += st.utime + st.stime
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// rss is the resident memory (VmRSS) of pids, in bytes.
func rss(pids []int) int64 {
	var total int64
	for _, pid := range pids {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if err != nil {
			continue
		}
		total += parseVmRSS(string(b))
	}
	return total
}

func parseVmRSS(status string) int64 {
	for line := range strings.Lines(status) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// pinSelf binds every thread of this process to cpu. Threads started
// later inherit the mask from the thread that creates them.
func pinSelf(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return fmt.Errorf("pinning thread %d to cpu %d: %w", tid, cpu, err)
		}
	}
	return nil
}

// coreStat is one core's time from /proc/stat, in clock ticks.
type coreStat struct{ busy, total int64 }

// coreTimes reads cpu's line of /proc/stat (all cores when cpu < 0).
func coreTimes(cpu int) coreStat {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return coreStat{}
	}
	want := "cpu "
	if cpu >= 0 {
		want = "cpu" + strconv.Itoa(cpu) + " "
	}
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, want) {
			continue
		}
		var st coreStat
		for i, f := range strings.Fields(line)[1:] {
			n, _ := strconv.ParseInt(f, 10, 64)
			if i >= 8 { // guest time is already counted in user
				break
			}
			st.total += n
			if i != 3 && i != 4 { // idle, iowait
				st.busy += n
			}
		}
		return st
	}
	return coreStat{}
}

// busySince is the busy fraction of the core since prev.
func (c coreStat) busySince(prev coreStat) float64 {
	if c.total <= prev.total {
		return 0
	}
	return float64(c.busy-prev.busy) / float64(c.total-prev.total)
}
