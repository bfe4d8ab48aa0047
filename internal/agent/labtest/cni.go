package labtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/netns"
)

// NetworkName is the CNI network name of the lab's pods (upstream's
// default, so the profile and labels look like a real cluster's).
const NetworkName = "k8s-pod-network"

// CNIPod is a pod added through the real CNI exec path: the calico plugin
// binary run with CNI_COMMAND=ADD from inside its node's namespace, as a
// container runtime on that node would.
type CNIPod struct {
	Node        *Node
	Name        string
	ContainerID string
	NS          string     // the pod's netns path
	IP          netip.Addr // its IPv4 address
	IP6         netip.Addr // its IPv6 address (CNIAddDual), else invalid
	HostIf      string     // the host-side veth in the node
	WEPName     string     // its WorkloadEndpoint (namespace "default")
	Pools       []string   // ipam.ipv4_pools of its netconf
	Result      []byte     // the plugin's stdout
}

// Netconf is the node's CNI configuration for the calico plugin: network
// k8s-pod-network, the node's name, the lab's etcd, the node's MTU file
// (written by its calico-node) and IPAM lock file, and calico-ipam
// (restricted to pools, when given).
func (n *Node) Netconf(pools ...string) []byte {
	ipamConf := map[string]any{"type": "calico-ipam"}
	if len(pools) > 0 {
		ipamConf["ipv4_pools"] = pools
	}
	b, err := json.Marshal(map[string]any{
		"cniVersion":     "1.0.0",
		"name":           NetworkName,
		"type":           "calico",
		"etcd_endpoints": n.Lab.Endpoint,
		"nodename":       n.Name,
		"mtu_file":       n.MTUFile(),
		"ipam_lock_file": filepath.Join(n.Dir, "ipam.lock"),
		"ipam":           ipamConf,
	})
	if err != nil {
		panic(err) // only plain values above
	}
	return b
}

// ContainerID is the CNI container ID of pod name on n: "<node>-<name>".
// The host veth is "cali" plus its first 11 characters, so keep names
// short enough to be unique within them.
func (n *Node) ContainerID(name string) string { return n.Name + "-" + name }

// CNI runs the calico plugin from bin dir with command (ADD, DEL, CHECK)
// for container cid in podNS, inside n's namespace, with netconf on stdin.
// It returns stdout; a failure carries the plugin's stdout (the CNI error)
// and stderr.
func (n *Node) CNI(ctx context.Context, bin, command, cid, podNS string, netconf []byte) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	err := netns.Do(n.NS, func() error {
		// Started on this thread, which is in n's namespace: the plugin
		// inherits it, like a plugin exec'd by a runtime on that node.
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "calico"))
		cmd.Env = []string{
			"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + cid, "CNI_NETNS=" + podNS, "CNI_IFNAME=eth0",
			"CNI_PATH=" + bin, "PATH=" + os.Getenv("PATH"),
		}
		cmd.Stdin = bytes.NewReader(netconf)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		return cmd.Run()
	})
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("CNI %s of %s on %s: %w: stdout %s stderr %s", command, cid, n.Name, err,
			strings.TrimSpace(stdout.String()), strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// CNIAdd creates a pod namespace (removed at the lab's test end) and adds
// pod name to it through the calico plugin with IPAM restricted to pools
// (none: every pool the node may use). The plugin runs from BinDir.
func (n *Node) CNIAdd(ctx context.Context, name string, pools ...string) (*CNIPod, error) {
	l := n.Lab
	p := &CNIPod{Node: n, Name: name, ContainerID: n.ContainerID(name), NS: l.newNS(l.T), Pools: pools}
	out, err := n.CNI(ctx, BinDir(l.T), "ADD", p.ContainerID, p.NS, n.Netconf(pools...))
	if err != nil {
		return nil, err
	}
	p.Result = out
	if err := p.parseResult(); err != nil {
		return nil, err
	}
	p.WEPName, err = api.WorkloadEndpointName(api.WorkloadEndpointIdentifiers{Node: n.Name, Orchestrator: api.OrchestratorCNI, ContainerID: p.ContainerID, Endpoint: "eth0"})
	return p, err
}

// parseResult takes the address and host interface from the ADD result.
func (p *CNIPod) parseResult() error {
	var res types100.Result
	if err := json.Unmarshal(p.Result, &res); err != nil {
		return fmt.Errorf("decode CNI result of %s: %w: %s", p.ContainerID, err, p.Result)
	}
	for _, ip := range res.IPs {
		a, ok := netip.AddrFromSlice(ip.Address.IP)
		switch {
		case ok && a.Unmap().Is4() && !p.IP.IsValid():
			p.IP = a.Unmap()
		case ok && a.Is6() && !a.Is4In6() && !p.IP6.IsValid():
			p.IP6 = a
		}
	}
	for _, i := range res.Interfaces {
		if i.Sandbox == "" {
			p.HostIf = i.Name
			break
		}
	}
	if !p.IP.IsValid() || p.HostIf == "" {
		return fmt.Errorf("CNI result of %s lacks an IPv4 address or the host interface: %s", p.ContainerID, p.Result)
	}
	return nil
}

// AddCNIPod is CNIAdd that fails the lab's test on error.
func (n *Node) AddCNIPod(name string, pools ...string) *CNIPod {
	l := n.Lab
	l.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := n.CNIAdd(ctx, name, pools...)
	if err != nil {
		l.T.Fatal(err)
	}
	return p
}

// Del runs CNI DEL for the pod (its namespace stays until test end).
func (p *CNIPod) Del(ctx context.Context) error {
	n := p.Node
	_, err := n.CNI(ctx, BinDir(n.Lab.T), "DEL", p.ContainerID, p.NS, n.Netconf(p.Pools...))
	return err
}

// DelCNIPod runs CNI DEL for p and fails the lab's test on error. The
// pod's namespace stays until test end.
func (n *Node) DelCNIPod(p *CNIPod) {
	l := n.Lab
	l.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Del(ctx); err != nil {
		l.T.Fatal(err)
	}
}

// Calicoctl runs calicoctl from BinDir against the lab's etcd, with stdin
// (may be nil), and returns its combined output.
func (l *Lab) Calicoctl(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(BinDir(l.T), "calicoctl"), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS=" + l.Endpoint}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("calicoctl %s: exit %d: %s", strings.Join(args, " "), ee.ExitCode(), out)
		}
		return string(out), err
	}
	return string(out), nil
}
