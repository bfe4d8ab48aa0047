package testutil

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EtcdCluster is a real etcd cluster as operators run one: every member a
// `calico etcd` process (the product's own server, started with etcd's
// static-cluster flags), TLS with certificates from a throwaway CA made
// here, clients and members alike must present a certificate. Members run
// in a network namespace of their own and talk to each other on its
// loopback (https; etcd's peer transport does not do TLS over unix
// sockets); they serve clients on unix sockets in one temporary directory,
// which node namespaces reach like any file. Root is needed (the
// namespace).
type EtcdCluster struct {
	Dir     string
	NS      string // the members' network namespace
	Members []*EtcdMember
	// The CA that signed the members' certificates, and a client
	// certificate and key it accepts.
	CACertFile, CertFile, KeyFile string
	t                             testing.TB
	bin                           string
	opts                          EtcdClusterOptions
	dataDir                       string // where the members' data directories are
}

// EtcdClusterOptions tune a cluster for what a test simulates.
type EtcdClusterOptions struct {
	// DataIn, when set, is a directory (e.g. /dev/shm, a tmpfs) to keep
	// the members' data in instead of the cluster's directory. Three
	// members on one disk fsync every commit three times over on the same
	// device, which three machines would not; on tmpfs fsync costs nothing.
	DataIn string
	// HeartbeatMS and ElectionMS are the members' --heartbeat-interval and
	// --election-timeout (0: etcd's 100 and 1000 ms).
	HeartbeatMS, ElectionMS int
	// Pprof serves /debug/pprof on the members' client sockets.
	Pprof bool
}

// EtcdMember is one member process.
type EtcdMember struct {
	Name     string
	Endpoint string // unixs:///<dir>/<name>.sock:0
	peerPort int
	c        *EtcdCluster
	cmd      *exec.Cmd
	stderr   lockedBuffer
	ready    chan struct{}
}

// StartEtcdCluster starts an n-member cluster from the calico binary in
// binDir (a make-built one: the server is embedded by `make build`) and
// waits until every member serves. Members are killed and the data removed
// at test end.
func StartEtcdCluster(t testing.TB, binDir string, n int) *EtcdCluster {
	t.Helper()
	return StartEtcdClusterWith(t, binDir, n, EtcdClusterOptions{})
}

// StartEtcdClusterWith is StartEtcdCluster with options.
func StartEtcdClusterWith(t testing.TB, binDir string, n int, opts EtcdClusterOptions) *EtcdCluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "cec") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	c := &EtcdCluster{Dir: dir, NS: NewNetNS(t), t: t, bin: filepath.Join(binDir, "calico"), opts: opts, dataDir: dir}
	if opts.DataIn != "" {
		if c.dataDir, err = os.MkdirTemp(opts.DataIn, "cec-data"); err != nil {
			os.RemoveAll(dir)
			t.Fatalf("etcd cluster data directory in %s: %v", opts.DataIn, err)
		}
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Kill()
		}
		os.RemoveAll(dir)
		os.RemoveAll(c.dataDir)
	})
	names := []string{"localhost"}
	var initial []string
	for i := 1; i <= n; i++ {
		m := &EtcdMember{Name: fmt.Sprintf("m%d", i), c: c, peerPort: 2380 + 10*i}
		m.Endpoint = "unixs://" + filepath.Join(dir, m.Name+".sock:0")
		c.Members = append(c.Members, m)
		names = append(names, m.Name+".sock", m.Name+".sock:0")
		initial = append(initial, m.Name+"="+m.peerURL())
	}
	certs, err := writeTestCertsFor(dir, names)
	if err != nil {
		t.Fatalf("etcd cluster certificates: %v", err)
	}
	c.CACertFile, c.CertFile, c.KeyFile = certs.ca, certs.clientCert, certs.clientKey
	// A new cluster serves only once a quorum has started: start all, then wait.
	for _, m := range c.Members {
		m.start(certs, strings.Join(initial, ","))
	}
	for _, m := range c.Members {
		m.wait()
	}
	return c
}

// Endpoints are the members' client URLs, all of them, for ETCD_ENDPOINTS.
func (c *EtcdCluster) Endpoints() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.Endpoint
	}
	return out
}

// Env is the datastore environment of a client of the whole cluster.
func (c *EtcdCluster) Env() []string {
	return []string{"DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS=" + strings.Join(c.Endpoints(), ","),
		"ETCD_CA_CERT_FILE=" + c.CACertFile, "ETCD_CERT_FILE=" + c.CertFile, "ETCD_KEY_FILE=" + c.KeyFile}
}

// Client is a raw etcd client of the given endpoints (all members when
// none), closed at test end: for what the product has no call for
// (member status, compaction).
func (c *EtcdCluster) Client(endpoints ...string) *clientv3.Client {
	c.t.Helper()
	if len(endpoints) == 0 {
		endpoints = c.Endpoints()
	}
	tlsCfg, err := transport.TLSInfo{CertFile: c.CertFile, KeyFile: c.KeyFile, TrustedCAFile: c.CACertFile}.ClientConfig()
	if err != nil {
		c.t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// Leader returns the member that leads, asking each running one.
func (c *EtcdCluster) Leader(ctx context.Context) (*EtcdMember, error) {
	cli := c.Client()
	var last error
	for _, m := range c.Members {
		if m.cmd == nil {
			continue
		}
		st, err := cli.Status(ctx, m.Endpoint)
		if err != nil {
			last = err
			continue
		}
		if st.Leader == st.Header.MemberId {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no member leads (last error: %v)", last)
}

// Compact compacts (physically) the cluster's history up to its current
// revision and returns that revision.
func (c *EtcdCluster) Compact(ctx context.Context) (int64, error) {
	cli := c.Client()
	r, err := cli.Get(ctx, "compact-probe")
	if err != nil {
		return 0, err
	}
	rev := r.Header.Revision
	_, err = cli.Compact(ctx, rev, clientv3.WithCompactPhysical())
	return rev, err
}

func (m *EtcdMember) peerURL() string { return fmt.Sprintf("https://127.0.0.1:%d", m.peerPort) }

func (m *EtcdMember) start(certs testCerts, initial string) {
	t := m.c.t
	t.Helper()
	client := "unixs://" + m.Name + ".sock:0" // relative to the cluster's directory
	args := []string{"netns", "exec", filepath.Base(m.c.NS), m.c.bin, "etcd", "--name", m.Name,
		"--data-dir", filepath.Join(m.c.dataDir, m.Name+".data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", m.peerURL(), "--initial-cluster", initial, "--initial-cluster-token", "calico-test",
		"--cert-file", certs.serverCert, "--key-file", certs.serverKey,
		"--trusted-ca-file", certs.ca, "--client-cert-auth",
		"--peer-cert-file", certs.peerCert, "--peer-key-file", certs.peerKey,
		"--peer-trusted-ca-file", certs.ca, "--peer-client-cert-auth", "--log-level", "warn"}
	if o := m.c.opts; o.HeartbeatMS > 0 || o.ElectionMS > 0 {
		args = append(args, "--heartbeat-interval", fmt.Sprint(cmp.Or(o.HeartbeatMS, 100)), "--election-timeout", fmt.Sprint(cmp.Or(o.ElectionMS, 1000)))
	}
	if m.c.opts.Pprof {
		args = append(args, "--enable-pprof")
	}
	m.cmd = exec.Command("ip", args...)
	m.cmd.Dir = m.c.Dir
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	m.stderr.reset()
	m.ready = make(chan struct{})
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	m.cmd.Stderr = pw
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start etcd member %s: %v", m.Name, err)
	}
	pw.Close()
	go m.readStderr(pr, m.ready)
}

// readStderr keeps the member's log and closes ready at its ready line.
func (m *EtcdMember) readStderr(r *os.File, ready chan struct{}) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m.stderr.write(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "calico etcd: ready") {
			close(ready)
		}
	}
}

func (m *EtcdMember) wait() {
	t := m.c.t
	t.Helper()
	select {
	case <-m.ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("etcd member %s not serving after 60s:\n%s", m.Name, m.stderr.String())
	}
}

// Running reports whether the member's process was started and not killed.
func (m *EtcdMember) Running() bool { return m.cmd != nil }

// Restart starts a killed member again on its data and waits until it serves.
func (m *EtcdMember) Restart() {
	m.c.t.Helper()
	d := m.c.Dir
	certs := testCerts{ca: m.c.CACertFile, serverCert: filepath.Join(d, "server.pem"), serverKey: filepath.Join(d, "server-key.pem"),
		peerCert: filepath.Join(d, "peer.pem"), peerKey: filepath.Join(d, "peer-key.pem")}
	m.start(certs, m.Name+"="+m.peerURL()) // the data directory decides membership now
	m.wait()
}

// Kill sends SIGKILL (kill -9) and waits for the process to go.
func (m *EtcdMember) Kill() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies only once running
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
	m.cmd = nil
}

// Pause stops the member (SIGSTOP): to its clients and peers a partition,
// connections stay open and nothing answers. Resume continues it.
func (m *EtcdMember) Pause() { m.signal(syscall.SIGSTOP) }

// Resume continues a paused member (SIGCONT).
func (m *EtcdMember) Resume() { m.signal(syscall.SIGCONT) }

func (m *EtcdMember) signal(s syscall.Signal) {
	m.c.t.Helper()
	if m.cmd == nil {
		m.c.t.Fatalf("etcd member %s is not running (signal %v)", m.Name, s)
	}
	if err := m.cmd.Process.Signal(s); err != nil {
		m.c.t.Fatalf("signal %v to etcd member %s: %v", s, m.Name, err)
	}
}

// Log is the member's stderr so far.
func (m *EtcdMember) Log() string { return m.stderr.String() }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) write(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedBuffer) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
