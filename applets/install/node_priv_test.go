package install_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/netns"
	inst "github.com/onecalico/calico/internal/install"
	"github.com/onecalico/calico/internal/testutil"
)

// notifications collects the datagrams of a NOTIFY_SOCKET listener.
type notifications struct {
	mu   sync.Mutex
	msgs []string
}

func (n *notifications) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

// count returns how many messages after the first one containing after
// (all, if after is "") contain s.
func (n *notifications) count(after, s string) int {
	k, seen := 0, after == ""
	for _, m := range n.all() {
		if !seen {
			seen = strings.Contains(m, after)
			continue
		}
		if strings.Contains(m, s) {
			k++
		}
	}
	return k
}

// listenNotify opens an abstract unixgram socket in the namespace ns (an
// abstract name belongs to a network namespace) and collects what arrives.
func listenNotify(t *testing.T, ns string) (string, *notifications) {
	t.Helper()
	name := fmt.Sprintf("@calico-install-test-%d", time.Now().UnixNano())
	var l *net.UnixConn
	err := netns.Do(ns, func() error {
		var err error
		l, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifications{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			k, err := l.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return name, n
}

// unitCaps are the capabilities the unit's CapabilityBoundingSet keeps.
const unitCaps = "-all,+net_admin,+net_raw,+sys_admin,+net_bind_service"

// confined returns a program that execs bin as the unit would run it, as
// far as capabilities go: with the unit's bounding set (root then holds
// only those capabilities) and no new privileges. The exec chain keeps the
// PID. It fails the test if the unit has no such bounding set.
func confined(t *testing.T, bin string) string {
	t.Helper()
	testutil.RequireCmd(t, "setpriv")
	c := inst.Config{BinDir: "/usr/local/bin", ConfigDir: "/etc/calico", NodenameFile: "/var/lib/calico/nodename", MTUFile: "/var/lib/calico/mtu", RunDir: "/run/calico"}
	if !strings.Contains(string(c.Unit()), "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_ADMIN CAP_NET_BIND_SERVICE\n") ||
		!strings.Contains(string(c.Unit()), "NoNewPrivileges=yes\n") {
		t.Fatal("the unit's capabilities changed: update unitCaps")
	}
	w := filepath.Join(t.TempDir(), "calico-node-confined")
	script := fmt.Sprintf("#!/bin/sh\nexec setpriv --no-new-privs --bounding-set %s %s \"$@\"\n", unitCaps, bin)
	if err := os.WriteFile(w, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestPrivilegedInstalledNode installs the binary into a throwaway root
// with a lab node's settings, then runs what was installed as a service
// manager would: the installed calico-node (through its link) with the
// installed environment file and a NOTIFY_SOCKET, inside the node's
// namespace, with only the unit's capabilities. It checks the sd_notify conversation (STATUS, READY=1 once
// ready, WATCHDOG=1 repeating, STOPPING=1 on SIGTERM), calicoctl with the
// installed calicoctl.cfg, and a pod added through the installed CNI links
// and conflist that pings its node. --uninstall then leaves the root empty.
func TestPrivilegedInstalledNode(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip", "ping")
	e := testutil.StartEtcd(t)
	lab := labtest.New(t, testutil.NewNetNS, e.Endpoint)
	n1 := lab.AddNode("n1", 99, 11)
	lab.Pool("pool1", "10.244.0.0/16", api.VXLANModeAlways, api.IPIPModeNever, true)

	root := t.TempDir()
	stdout, stderr, code := calico(t, nil, "--root", root, "--etcd-endpoints", e.Endpoint,
		"--nodename", "n1", "--ip", n1.IP.String(), "--networking-backend", "vxlan", "--no-default-pools", "true",
		"--nodename-file", n1.NodenameFile(), "--mtu-file", n1.MTUFile(), "--run-dir", n1.RunDir(),
		"--ipam-lock-file", filepath.Join(n1.Dir, "ipam.lock"), "--portmap", "false", "--env", "FELIX_LOGSEVERITYSCREEN=Debug")
	if code != 0 {
		t.Fatalf("install: exit %d\n%s%s", code, stdout, stderr)
	}

	// The service manager's part: EnvironmentFile, NOTIFY_SOCKET, WATCHDOG_USEC.
	b, err := os.ReadFile(filepath.Join(root, "etc/calico", inst.EnvFileName))
	if err != nil {
		t.Fatal(err)
	}
	vars, err := inst.ParseEnvFile(b)
	if err != nil {
		t.Fatal(err)
	}
	sock, notes := listenNotify(t, n1.NS)
	env := []string{"PATH=" + os.Getenv("PATH"), "NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=300000"}
	for _, v := range vars {
		env = append(env, v.Name+"="+v.Value)
	}
	p := n1.StartProcess(confined(t, filepath.Join(root, "usr/local/bin/calico-node")), env)
	if _, err := p.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID)); err != nil || !strings.Contains(string(st), "CapEff:\t0000000000203400\n") {
		t.Errorf("calico-node does not run with only the unit's capabilities: %v\n%s", err, st)
	}
	// READY=1 comes with the first complete apply; the watchdog keeps
	// pinging (every 150 ms) while the daemon is live.
	err = testutil.Poll(20*time.Second, func() error {
		if notes.count("", "READY=1") != 1 || notes.count("READY=1", "WATCHDOG=1") < 3 {
			return fmt.Errorf("notifications so far: %q", notes.all())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, p.Stderr)
	}
	if msgs := notes.all(); !strings.HasPrefix(msgs[0], "STATUS=starting") {
		t.Errorf("first notification %q, want STATUS=starting...", msgs[0])
	}
	for _, m := range notes.all() {
		if strings.Contains(m, "READY=1") && !strings.Contains(m, "STATUS=ready: ") {
			t.Errorf("READY=1 without a ready STATUS: %q", m)
		}
	}

	// calicoctl with the installed config file (and no ETCD_* variables).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(root, "usr/local/bin/calicoctl"), "get", "nodes", "-c", filepath.Join(root, "etc/calico/calicoctl.cfg")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "n1") {
		t.Errorf("installed calicoctl with the installed calicoctl.cfg: %v\n%s", err, out)
	}

	// A pod through the installed CNI links and conflist.
	pod := addPod(t, ctx, n1, root)
	if err := labtest.Ping(pod.ns, n1.IP.Addr(), 2); err != nil {
		t.Errorf("pod -> node: %v", err)
	}
	if _, err := n1.CNI(ctx, filepath.Join(root, "opt/cni/bin"), "DEL", pod.cid, pod.ns, pod.netconf); err != nil {
		t.Errorf("CNI DEL: %v", err)
	}

	if code, err := p.Stop(20 * time.Second); err != nil || code != 0 {
		t.Errorf("calico-node stop: exit %d %v", code, err)
	}
	err = testutil.Poll(5*time.Second, func() error {
		if notes.count("", "STOPPING=1") != 1 {
			return fmt.Errorf("no STOPPING=1: %q", notes.all())
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}

	msgs := notes.all()
	t.Logf("%d notifications; the first ones: %q", len(msgs), msgs[:min(5, len(msgs))])

	stdout, stderr, code = calico(t, nil, "--root", root, "--uninstall")
	if code != 0 {
		t.Fatalf("uninstall: exit %d\n%s%s", code, stdout, stderr)
	}
	if got := listTree(t, root); len(got) != 0 {
		t.Errorf("after uninstall the root holds %v", got)
	}
}

type cniPod struct {
	ns, cid string
	netconf []byte
}

// addPod runs CNI ADD with the installed plugin links and the calico entry
// of the installed conflist (as libcni hands it to the plugin) in n's
// namespace.
func addPod(t *testing.T, ctx context.Context, n *labtest.Node, root string) cniPod {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc/cni/net.d/10-calico.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Name       string           `json:"name"`
		CNIVersion string           `json:"cniVersion"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	conf := list.Plugins[0]
	conf["name"], conf["cniVersion"] = list.Name, list.CNIVersion
	netconf, _ := json.Marshal(conf)
	p := cniPod{ns: testutil.NewNetNS(t), cid: "installed-pod1", netconf: netconf}
	out, err := n.CNI(ctx, filepath.Join(root, "opt/cni/bin"), "ADD", p.cid, p.ns, netconf)
	if err != nil {
		t.Fatalf("CNI ADD with the installed conflist: %v", err)
	}
	if !strings.Contains(string(out), "10.244.") {
		t.Fatalf("CNI ADD result: %s", out)
	}
	return p
}
