package labtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent"
)

// AgentConfig is the Config of an in-process daemon for node n: kernel
// work bound to n's namespace, files in n.Dir, the node's address given
// explicitly, VXLAN backend, no default pool, no TCP listeners.
func (n *Node) AgentConfig() agent.Config {
	return agent.Config{
		Store:            n.Lab.Store,
		NodeName:         n.Name,
		NetNS:            n.NS,
		NodenameFile:     n.NodenameFile(),
		MTUFile:          n.MTUFile(),
		RunDir:           n.RunDir(),
		IP:               n.IP.String(),
		Backend:          agent.BackendVXLAN,
		NoDefaultPools:   true,
		DisableListeners: true,
	}
}

// RunningAgent is an in-process daemon.
type RunningAgent struct {
	*agent.Agent
	Log      *SyncBuffer
	cancel   context.CancelFunc
	finished chan struct{}
	err      error
}

// StartAgent runs a daemon for n in-process with cfg (see AgentConfig)
// and stops it at test end. Its log goes to the returned Log buffer.
func (n *Node) StartAgent(cfg agent.Config) *RunningAgent {
	t := n.Lab.T
	t.Helper()
	buf := &SyncBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatalf("new agent for %s: %v", n.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &RunningAgent{Agent: a, Log: buf, cancel: cancel, finished: make(chan struct{})}
	go func() {
		r.err = a.Run(ctx)
		close(r.finished)
	}()
	t.Cleanup(func() { _ = r.Stop() })
	return r
}

// Stop cancels the daemon and waits for Run to return (the dataplane stays).
func (r *RunningAgent) Stop() error {
	r.cancel()
	<-r.finished
	return r.err
}

// WaitReady waits for the first complete apply.
func (r *RunningAgent) WaitReady(timeout time.Duration) error {
	select {
	case <-r.Ready():
		return nil
	case <-r.finished:
		return fmt.Errorf("agent stopped before it was ready: %v", r.err)
	case <-time.After(timeout):
		return fmt.Errorf("agent not ready after %v: %+v", timeout, r.Status())
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Applet names BinDir provides, all links to one calico binary.
var applets = []string{"calico-node", "calico-ipam", "calicoctl"}

// BinDir returns a directory holding calico and its applet links
// (calico-node, calico-ipam, calicoctl): $CALICO_BIN when it is set (make
// test), else a static build of this module made once per test process
// (removed by RunTests).
func BinDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("CALICO_BIN"); d != "" {
		for _, name := range append([]string{"calico"}, applets...) {
			if _, err := os.Stat(filepath.Join(d, name)); err != nil {
				t.Fatalf("CALICO_BIN=%s: %v", d, err)
			}
		}
		return d
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "labtest-bin")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(buildDir, "calico"), "github.com/onecalico/calico")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
			return
		}
		for _, name := range applets {
			if err := os.Symlink("calico", filepath.Join(buildDir, name)); err != nil {
				buildErr = err
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("build calico: %v", buildErr)
	}
	return buildDir
}

// Binary returns the path of a calico-node executable (see BinDir).
func Binary(t testing.TB) string {
	t.Helper()
	return filepath.Join(BinDir(t), "calico-node")
}

// RunTests runs m and removes the binary Binary built, for TestMain.
func RunTests(m *testing.M) int {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	return code
}

// Process is a calico-node process running inside a node's namespace.
type Process struct {
	Node   *Node
	Cmd    *exec.Cmd
	PID    int
	Stderr *SyncBuffer
	Start  time.Time
	done   chan struct{}
	err    error
}

// Env is the environment of a calico-node process for n (the same
// settings as AgentConfig, plus extra "K=V" entries, which win).
func (n *Node) Env(extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"NODENAME=" + n.Name,
		"ETCD_ENDPOINTS=" + n.Lab.Endpoint,
		"DATASTORE_TYPE=etcdv3",
		"IP=" + n.IP.String(),
		"CALICO_NETWORKING_BACKEND=vxlan",
		"NO_DEFAULT_POOLS=true",
		"CALICO_NODENAME_FILE=" + n.NodenameFile(),
		"CALICO_MTU_FILE=" + n.MTUFile(),
		"CALICO_RUN_DIR=" + n.RunDir(),
		"FELIX_LOGSEVERITYSCREEN=Info",
	}
	return append(env, extra...)
}

// StartProcess starts bin (a calico-node) with `ip netns exec` in n's
// namespace and env (see Env). ip execs the program, so PID is the
// daemon's. The process is stopped (SIGTERM) at test end.
func (n *Node) StartProcess(bin string, env []string) *Process {
	t := n.Lab.T
	t.Helper()
	p := &Process{Node: n, Stderr: &SyncBuffer{}, done: make(chan struct{})}
	p.Cmd = exec.Command("ip", "netns", "exec", filepath.Base(n.NS), bin)
	p.Cmd.Env = env
	// If the test process dies without its cleanups (a timeout panic, a
	// kill), the daemon must not outlive it.
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	p.Cmd.Stdout = io.Discard
	p.Cmd.Stderr = p.Stderr
	p.Start = time.Now()
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start calico-node for %s: %v", n.Name, err)
	}
	p.PID = p.Cmd.Process.Pid
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if _, err := p.Stop(10 * time.Second); err != nil {
			t.Errorf("stop calico-node %s: %v", n.Name, err)
		}
	})
	return p
}

// Stop sends SIGTERM and waits for the exit; it returns the exit code.
func (p *Process) Stop(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
	default:
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(timeout):
			_ = p.Cmd.Process.Kill()
			<-p.done
			return -1, fmt.Errorf("no exit %v after SIGTERM; log:\n%s", timeout, p.Stderr)
		}
	}
	return p.Cmd.ProcessState.ExitCode(), nil
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Status asks the daemon through its control socket.
func (p *Process) Status() (agent.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return agent.QueryStatus(ctx, filepath.Join(p.Node.RunDir(), agent.ControlSocketName))
}

// WaitReady polls the control socket (1 ms steps) until the daemon is
// ready, and returns how long after Start that was.
func (p *Process) WaitReady(timeout time.Duration) (time.Duration, error) {
	var last error
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.Exited() {
			return 0, fmt.Errorf("calico-node exited: %v; log:\n%s", p.err, p.Stderr)
		}
		s, err := p.Status()
		if err == nil && s.Ready {
			return time.Since(p.Start), nil
		}
		if err == nil {
			err = fmt.Errorf("not ready: %+v", s)
		}
		last = err
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("not ready after %v: %v; log:\n%s", timeout, last, p.Stderr)
}

// ProcStats are a process's memory and CPU figures from /proc.
type ProcStats struct {
	RSSKiB, HWMKiB int64
	CPU            time.Duration // utime + stime
}

// Stats reads /proc/<pid>/status and /proc/<pid>/stat.
func Stats(pid int) (ProcStats, error) {
	var s ProcStats
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			s.RSSKiB, _ = strconv.ParseInt(f[1], 10, 64)
		case "VmHWM:":
			s.HWMKiB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name (which may contain spaces) start at
	// field 3; utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 {
		return s, errors.New("malformed stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	s.CPU = time.Duration(ut+st) * time.Second / clkTck
	return s, nil
}
