package install_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	inst "github.com/onecalico/calico/internal/install"
	"github.com/onecalico/calico/internal/testutil"
)

// ctrNamespace is the containerd namespace of the test's containers, and
// so the name of their parent cgroup: unique per test process.
func ctrNamespace() string { return fmt.Sprintf("calicotest%d", os.Getpid()) }

// removeCgroups removes the (empty) parent cgroups runc created for the
// test's containerd namespace.
func removeCgroups(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", ctrNamespace()))
	more, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", ctrNamespace()))
	for _, d := range append(dirs, more...) {
		if err := syscall.Rmdir(d); err != nil {
			t.Errorf("remove cgroup %s: %v", d, err)
		}
	}
}

// runtimeNode is one lab node with everything installed by calico install
// into its own root, its calico-node, and a containerd that sees that root.
type runtimeNode struct {
	t    *testing.T
	node *labtest.Node
	root string // calico install --root
	dir  string // containerd's files
	sock string
	cmd  *exec.Cmd
	done chan struct{}
	log  *labtest.SyncBuffer
}

// containerdConfig: own root, state and socket; no CRI plugin (ctr run
// --cni drives CNI itself); cgroupfs.
const containerdConfig = `version = 2
root = "%[1]s/lib"
state = "%[1]s/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "%[1]s/containerd.sock"
[ttrpc]
  address = "%[1]s/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
`

// mountScript runs in a private mount namespace inside the node's network
// namespace: it overlays the installed root on /etc, /opt, /usr/local and
// /var/lib (ctr's CNI library reads only /etc/cni/net.d and /opt/cni/bin),
// gives /run (shim sockets, runc state) and /var/lib (the CNI cache) a
// private writable layer, and execs containerd. The host's directories are
// only lower layers: nothing is written to them.
const mountScript = `set -e
for d in etc opt usr/local var/lib run; do
  lower=/$d
  if [ -d "$ROOT/$d" ]; then lower="$ROOT/$d:/$d"; fi
  mkdir -p "$DIR/ov/$d/up" "$DIR/ov/$d/work"
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$DIR/ov/$d/up,workdir=$DIR/ov/$d/work" "/$d"
done
exec containerd --config "$DIR/containerd.toml"
`

// startContainerd starts containerd for n and waits until it answers. It
// skips the test, with the reason, when containerd cannot start here.
func (r *runtimeNode) startContainerd() {
	t := r.t
	t.Helper()
	r.dir = filepath.Join(r.node.Dir, "containerd")
	r.sock = filepath.Join(r.dir, "containerd.sock")
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.dir, "containerd.toml"), []byte(fmt.Sprintf(containerdConfig, r.dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	r.log = &labtest.SyncBuffer{}
	// nsenter, not `ip netns exec`: that remounts /sys, which hides the
	// cgroup mounts runc needs.
	r.cmd = exec.Command("nsenter", "--net="+r.node.NS, "unshare", "-m", "--propagation", "private", "sh", "-c", mountScript)
	r.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "ROOT=" + r.root, "DIR=" + r.dir}
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := r.cmd.Start(); err != nil {
		testutil.Unavailable(t, "containerd cannot start here: %v", err)
	}
	r.done = make(chan struct{})
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(r.stop)
	err := testutil.Poll(30*time.Second, func() error {
		select {
		case <-r.done:
			return fmt.Errorf("containerd exited: %s", r.log)
		default:
		}
		_, err := r.ctr(context.Background(), "version")
		return err
	})
	if err != nil {
		testutil.Unavailable(t, "containerd cannot start here: %v\n%s", err, r.log)
	}
}

// ctr runs ctr in containerd's mount and network namespace.
func (r *runtimeNode) ctr(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	full := append([]string{"-t", strconv.Itoa(r.cmd.Process.Pid), "-m", "-n", "ctr", "-a", r.sock, "-n", ctrNamespace()}, args...)
	out, err := exec.CommandContext(ctx, "nsenter", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s on %s: %w: %s", strings.Join(args, " "), r.node.Name, err, out)
	}
	return string(out), nil
}

// stop removes every task and container, stops containerd, and kills any
// shim of this containerd that outlived it (found by its socket address).
func (r *runtimeNode) stop() {
	ctx := context.Background()
	if out, err := r.ctr(ctx, "container", "list", "-q"); err == nil {
		for _, id := range strings.Fields(out) {
			r.ctr(ctx, "task", "kill", "-s", "SIGKILL", id)
			testutil.Poll(10*time.Second, func() error {
				_, err := r.ctr(ctx, "task", "delete", id)
				if err != nil && strings.Contains(err.Error(), "not found") {
					return nil
				}
				return err
			})
			r.ctr(ctx, "container", "delete", id)
		}
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
	for _, pid := range shimPIDs(r.sock) {
		r.t.Logf("killing leftover shim %d of %s", pid, r.node.Name)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// shimPIDs are the processes whose command line names sock (the shims of
// one containerd).
func shimPIDs(sock string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte("containerd-shim")) && bytes.Contains(b, []byte(sock)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// rootfs makes a container root file system of Debian's static busybox.
func rootfs(t *testing.T, dir string) string {
	t.Helper()
	fs := filepath.Join(dir, "bin")
	if err := os.MkdirAll(fs, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fs, "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"sh", "sleep", "ping", "ip", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(fs, app)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var inetRE = regexp.MustCompile(`inet (\d+\.\d+\.\d+\.\d+)/`)

// containerIP reads eth0's IPv4 address inside a running container.
func (r *runtimeNode) containerIP(ctx context.Context, id string) netip.Addr {
	r.t.Helper()
	// Polled: on a loaded machine an exec's output has come back empty
	// once (the address was there, as the ping afterwards showed).
	var m []string
	err := testutil.Poll(10*time.Second, func() error {
		out, err := r.ctr(ctx, "task", "exec", "--exec-id", fmt.Sprintf("ip-%s-%d", id, time.Now().UnixNano()), id, "/bin/ip", "-o", "-4", "addr", "show", "dev", "eth0")
		if err != nil {
			return err
		}
		if m = inetRE.FindStringSubmatch(out); m == nil {
			return fmt.Errorf("no IPv4 address on eth0 of %s: %q", id, out)
		}
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return netip.MustParseAddr(m[1])
}

// installNode runs calico install for n into its own root (the node's
// paths, Debian's portmap linked in) and starts the installed calico-node
// with the installed environment file.
func installNode(t *testing.T, lab *labtest.Lab, n *labtest.Node) *runtimeNode {
	t.Helper()
	r := &runtimeNode{t: t, node: n, root: filepath.Join(n.Dir, "root")}
	// Debian's plugin directory, as seen from inside the root, so that
	// --portmap auto finds portmap and links it into the CNI bin dir.
	if err := os.MkdirAll(filepath.Join(r.root, "usr/lib/cni"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/lib/cni/portmap", filepath.Join(r.root, "usr/lib/cni/portmap")); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := calico(t, nil, "--root", r.root, "--etcd-endpoints", lab.Endpoint,
		"--nodename", n.Name, "--ip", n.IP.String(), "--networking-backend", "vxlan", "--no-default-pools", "true",
		"--nodename-file", n.NodenameFile(), "--mtu-file", n.MTUFile(), "--run-dir", n.RunDir(),
		"--ipam-lock-file", filepath.Join(n.Dir, "ipam.lock"))
	if code != 0 || !strings.Contains(stdout, "created   /opt/cni/bin/portmap") {
		t.Fatalf("install on %s: exit %d\n%s%s", n.Name, code, stdout, stderr)
	}
	b, err := os.ReadFile(filepath.Join(r.root, "etc/calico", inst.EnvFileName))
	if err != nil {
		t.Fatal(err)
	}
	vars, err := inst.ParseEnvFile(b)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, v := range vars {
		env = append(env, v.Name+"="+v.Value)
	}
	p := n.StartProcess(confined(t, filepath.Join(r.root, "usr/local/bin/calico-node")), env)
	if _, err := p.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPrivilegedContainerd: two lab nodes, each set up only by calico
// install (into its own root) and running the installed calico-node; each
// runs its own containerd whose CNI configuration is the installed
// conflist. Containers started with `ctr run --cni` ping each other across
// the nodes (VXLAN) and the external host (NAT outgoing); a container run
// with --rm releases its address when it ends.
func TestPrivilegedContainerd(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip", "containerd", "ctr", "runc", "nsenter", "unshare", "iptables")
	if _, err := os.Stat("/usr/bin/busybox"); err != nil {
		testutil.Unavailable(t, "needs Debian's busybox-static for the container file system: %v", err)
	}
	if _, err := os.Stat("/usr/lib/cni/portmap"); err != nil {
		testutil.Unavailable(t, "needs Debian's portmap plugin (containernetworking-plugins): %v", err)
	}
	t.Cleanup(func() { removeCgroups(t) }) // runs after every containerd stopped
	e := testutil.StartEtcd(t)
	lab := labtest.New(t, testutil.NewNetNS, e.Endpoint)
	n1, n2 := lab.AddNode("n1", 99, 11), lab.AddNode("n2", 98, 12)
	lab.AddExternal()
	lab.Pool("pool1", "10.244.0.0/16", api.VXLANModeAlways, api.IPIPModeNever, true)
	r1, r2 := installNode(t, lab, n1), installNode(t, lab, n2)
	r1.startContainerd()
	r2.startContainerd()

	ctx := context.Background()
	if _, err := r1.ctr(ctx, "run", "--rootfs", "--cni", "-d", rootfs(t, filepath.Join(r1.dir, "c1")), "c1", "/bin/sleep", "600"); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.ctr(ctx, "run", "--rootfs", "--cni", "-d", rootfs(t, filepath.Join(r2.dir, "c2")), "c2", "/bin/sleep", "600"); err != nil {
		t.Fatal(err)
	}
	ip1, ip2 := r1.containerIP(ctx, "c1"), r2.containerIP(ctx, "c2")
	t.Logf("c1 on n1: %s, c2 on n2: %s", ip1, ip2)
	ping := func(r *runtimeNode, id string, dst netip.Addr) {
		t.Helper()
		err := testutil.Poll(20*time.Second, func() error {
			_, err := r.ctr(ctx, "task", "exec", "--exec-id", fmt.Sprintf("ping-%d", time.Now().UnixNano()), id, "/bin/ping", "-c", "2", "-W", "1", dst.String())
			return err
		})
		if err != nil {
			t.Errorf("%s on %s cannot ping %s: %v", id, r.node.Name, dst, err)
		}
	}
	ping(r1, "c1", ip2)
	ping(r2, "c2", ip1)
	ping(r1, "c1", labtest.ExternalIP)

	// A container run in the foreground with --rm: containerd calls CNI
	// DEL when it ends, which releases its address.
	out, err := r2.ctr(ctx, "run", "--rm", "--rootfs", "--cni", rootfs(t, filepath.Join(r2.dir, "c3")), "c3",
		"/bin/sh", "-c", "ip -o -4 addr show dev eth0 && ping -c 2 -W 1 "+ip1.String())
	if err != nil {
		t.Fatalf("c3: %v", err)
	}
	m := inetRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("c3 printed no address: %s", out)
	}
	err = testutil.Poll(10*time.Second, func() error {
		out, err := lab.Calicoctl(ctx, nil, "ipam", "show", "--ip", m[1])
		if err != nil || !strings.Contains(out, "is not assigned") {
			return fmt.Errorf("after c3 ended, %s: %v %s", m[1], err, out)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}
