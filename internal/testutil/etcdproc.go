package testutil

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// etcdChildEnv, when set in the environment of the test binary, makes
// ServeEtcdChild serve etcd from that directory instead of running tests.
const etcdChildEnv = "CALICO_TESTUTIL_ETCD_CHILD"

// ServeEtcdChild must be the first call of TestMain in a package that uses
// StartEtcdProcess. In the child process StartEtcdProcess starts (the test
// binary itself), it serves etcd until killed and never returns; in the
// test process it returns at once.
func ServeEtcdChild() {
	dir := os.Getenv(etcdChildEnv)
	if dir == "" {
		return
	}
	e, err := startEtcd(dir, EtcdOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd child:", err)
		os.Exit(1)
	}
	fmt.Println(e.Endpoint) // the parent waits for this line
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	e.server.Close()
	os.Exit(0)
}

// EtcdProcess is a real single-member etcd in a child process, so a test
// can kill it with SIGKILL, stop it with SIGSTOP (to its clients, a
// partition: connections stay open and nothing answers), resume it, and
// start it again on the same data and the same endpoint.
type EtcdProcess struct {
	Endpoint string
	Dir      string
	t        testing.TB
	cmd      *exec.Cmd
	stderr   strings.Builder
}

// StartEtcdProcess starts etcd in a child process (see ServeEtcdChild);
// it is killed and its data removed at test end.
func StartEtcdProcess(t testing.TB) *EtcdProcess {
	t.Helper()
	dir, err := os.MkdirTemp("", "cep") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	p := &EtcdProcess{Dir: dir, t: t}
	t.Cleanup(func() {
		p.Kill()
		os.RemoveAll(dir)
	})
	p.Start()
	return p
}

// Start starts the server (again, after Kill) and waits until it serves.
func (p *EtcdProcess) Start() {
	p.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), etcdChildEnv+"="+p.Dir)
	cmd.Stderr = &p.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start etcd process: %v", err)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case ep := <-line:
		if ep == "" {
			_ = cmd.Wait()
			p.t.Fatalf("etcd process exited before serving: %s", p.stderr.String())
		}
		if p.Endpoint != "" && ep != p.Endpoint {
			p.t.Fatalf("etcd process restarted on %s, want %s", ep, p.Endpoint)
		}
		p.Endpoint = ep
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		p.t.Fatalf("etcd process not serving after 60s: %s", p.stderr.String())
	}
	p.cmd = cmd
}

// Kill sends SIGKILL and waits for the process to go.
func (p *EtcdProcess) Kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies only once running
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}

// Pause stops the process (SIGSTOP); Resume continues it.
func (p *EtcdProcess) Pause() { p.signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *EtcdProcess) Resume() { p.signal(syscall.SIGCONT) }

func (p *EtcdProcess) signal(s syscall.Signal) {
	p.t.Helper()
	if p.cmd == nil {
		p.t.Fatalf("etcd process is not running (signal %v)", s)
	}
	if err := p.cmd.Process.Signal(s); err != nil {
		p.t.Fatalf("signal %v to etcd process: %v", s, err)
	}
}
