package cni

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/testutil"
)

// TestPortmapChain: a conflist of calico and Debian's portmap, run by
// libcni exactly as a runtime runs it (portMappings capability), works at
// 1.0.0 and 0.4.0: ADD plumbs the pod and installs the port mapping, CHECK
// passes for both plugins, the pod reaches its node, DEL removes both.
//
// Debian's portmap 1.1.1 fails its own CHECK whenever ip6tables works on
// the host: it checks its IPv4 rules in the ip6tables nat table too ("could
// not check ipv6 dnat"; it does the same after the bridge plugin; later
// releases fixed it). So the runtime's PATH here has iptables but not
// ip6tables, as on an IPv4-only host; a last case with ip6tables shows that
// only portmap's CHECK fails then, never calico's.
func TestPortmapChain(t *testing.T) {
	testutil.RequireCmd(t, "iptables", "ip6tables")
	if _, err := os.Stat(filepath.Join(debianPlugins, "portmap")); err != nil {
		testutil.Unavailable(t, "Debian's portmap plugin is not installed (apt-get install containernetworking-plugins): %v", err)
	}
	e := newEnv(t)
	v4only := filepath.Join(e.dir, "v4only-bin")
	if err := os.Mkdir(v4only, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"iptables", "iptables-save", "iptables-restore"} {
		if err := os.Symlink(filepath.Join("/usr/sbin", tool), filepath.Join(v4only, tool)); err != nil {
			t.Fatal(err)
		}
	}
	portmap := map[string]any{"type": "portmap", "snat": true, "capabilities": map[string]any{"portMappings": true}}
	for _, c := range []struct {
		version string
		path    string
	}{{"1.0.0", v4only + ":/usr/bin:/bin"}, {"0.4.0", v4only + ":/usr/bin:/bin"}, {"1.0.0", "/usr/sbin:/usr/bin:/sbin:/bin"}} {
		v := c.version
		t.Setenv("PATH", c.path)
		list := e.list(v, portmap)
		p := e.newPod(fmt.Sprintf("pm%s%d", strings.ReplaceAll(v, ".", ""), len(c.path)))
		p.rt.CapabilityArgs = map[string]any{"portMappings": []map[string]any{{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}}}
		res, err := e.addList(list, p)
		if err != nil {
			t.Fatalf("%s ADD: %v", v, err)
		}
		if c := e.rec.last("portmap", "ADD"); c.err != nil || c.command != "ADD" {
			t.Fatalf("%s: portmap did not run: %+v", v, c)
		}
		addr := podAddr(t, res).String()
		if nat := testutil.RunIn(t, e.node, "iptables", "-t", "nat", "-S"); !strings.Contains(nat, "--dport 8080") || !strings.Contains(nat, addr+":80") {
			t.Fatalf("%s: no port mapping to %s:80 in the node:\n%s", v, addr, nat)
		}
		err = e.checkList(list, p)
		if calico := e.rec.last("calico", "CHECK"); calico.command != "CHECK" || calico.err != nil {
			t.Fatalf("%s: calico CHECK: %+v", v, calico)
		}
		if c.path != "/usr/sbin:/usr/bin:/sbin:/bin" {
			if err != nil {
				t.Fatalf("%s CHECK: %v", v, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), "could not check ipv6 dnat") {
			t.Errorf("with ip6tables, portmap's CHECK = %v; if Debian's portmap is fixed, drop the PATH workaround above", err)
		}
		ping(t, p.ns, nodeIP)
		ping(t, e.node, addr)
		if err := e.delList(list, p); err != nil {
			t.Fatalf("%s DEL: %v", v, err)
		}
		if nat := testutil.RunIn(t, e.node, "iptables", "-t", "nat", "-S"); strings.Contains(nat, addr+":80") {
			t.Errorf("%s: port mapping left after DEL:\n%s", v, nat)
		}
		e.requireClean(t)
	}
}

// TestDelegatedIPAM: with an IPAM plugin other than calico-ipam (Debian's
// host-local), the plugin executes it from CNI_PATH for ADD, CHECK and DEL,
// as the spec says: the pod gets host-local's address as a /32 with the
// usual plumbing, host-local's routes are passed on, its CHECK is run, and
// DEL releases its reservation.
func TestDelegatedIPAM(t *testing.T) {
	if _, err := os.Stat(filepath.Join(debianPlugins, "host-local")); err != nil {
		testutil.Unavailable(t, "Debian's host-local plugin is not installed: %v", err)
	}
	e := newEnv(t)
	dataDir := filepath.Join(e.dir, "host-local")
	hl := map[string]any{"type": "host-local", "subnet": "10.247.0.0/24", "dataDir": dataDir, "routes": []map[string]string{{"dst": "0.0.0.0/0"}}}
	for _, v := range []string{"1.0.0", "0.3.1"} {
		conf := e.conf(v, map[string]any{"ipam": hl})
		p := e.newPod("hl" + strings.ReplaceAll(v, ".", ""))
		res, err := e.add(conf, p)
		if err != nil {
			t.Fatalf("%s ADD: %v", v, err)
		}
		r := result100(t, res)
		addr := podAddr(t, res).String()
		if len(r.IPs) != 1 || !strings.HasPrefix(addr, "10.247.0.") || r.IPs[0].Address.String() != addr+"/32" || r.IPs[0].Gateway != nil ||
			len(r.Routes) != 1 || r.Routes[0].Dst.String() != "0.0.0.0/0" {
			t.Fatalf("%s: result %s", v, e.rec.last("calico", "ADD").stdout)
		}
		if w := e.getWEP("default", "node1-cni-"+p.rt.ContainerID+"-eth0"); strings.Join(w.Spec.IPNetworks, ",") != addr+"/32" {
			t.Fatalf("endpoint addresses %v", w.Spec.IPNetworks)
		}
		reservation := filepath.Join(dataDir, netName, addr)
		if _, err := os.Stat(reservation); err != nil {
			t.Fatalf("host-local reservation: %v", err)
		}
		ping(t, e.node, addr)
		if v == "1.0.0" {
			if err := e.check(conf, p); err != nil {
				t.Fatalf("CHECK: %v", err)
			}
			// host-local's own CHECK fails once its reservation is gone.
			data, _ := os.ReadFile(reservation)
			os.Remove(reservation)
			if err := e.check(conf, p); err == nil || !strings.Contains(err.Error(), "IPAM plugin host-local CHECK") {
				t.Fatalf("CHECK without host-local's reservation: %v", err)
			}
			if err := os.WriteFile(reservation, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.del(conf, p); err != nil {
			t.Fatalf("%s DEL: %v", v, err)
		}
		if _, err := os.Stat(reservation); !os.IsNotExist(err) {
			t.Fatalf("host-local reservation left after DEL: %v", err)
		}
		e.requireClean(t)
	}
	// A failed ADD gives the address back to host-local.
	p := e.newPod("hlfail")
	testutil.RunIn(t, p.ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0")
	if _, err := e.add(e.conf("1.0.0", map[string]any{"ipam": hl}), p); err == nil {
		t.Fatal("ADD into a pod with an eth0 succeeded")
	}
	if entries, _ := os.ReadDir(filepath.Join(dataDir, netName)); len(entries) > 2 { // last_reserved_ip.0 and the lock
		t.Fatalf("host-local still holds an address after the failed ADD: %v", entries)
	}
	e.requireClean(t)
}

// TestMTUAndForwarding: the pod MTU comes from the netconf's mtu, else
// from the MTU file the node daemon writes, else the kernel default;
// container_settings.allow_ip_forwarding turns forwarding on in the pod.
func TestMTUAndForwarding(t *testing.T) {
	e := newEnv(t)
	if err := os.WriteFile(filepath.Join(e.dir, "mtu"), []byte("1410\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mtuOf := func(ns, dev string) string {
		out := testutil.RunIn(t, ns, "cat", "/sys/class/net/"+dev+"/mtu")
		return strings.TrimSpace(out)
	}
	p := e.newPod("mtufile")
	if _, err := e.add(e.conf("1.0.0", map[string]any{"container_settings": map[string]any{"allow_ip_forwarding": true}}), p); err != nil {
		t.Fatal(err)
	}
	if mtuOf(p.ns, "eth0") != "1410" || mtuOf(e.node, "calimtufile") != "1410" {
		t.Errorf("MTU from the file: pod %s host %s", mtuOf(p.ns, "eth0"), mtuOf(e.node, "calimtufile"))
	}
	if out := e.rec.last("calico", "ADD").stdout; strings.Contains(out, `"mtu"`) {
		t.Errorf("result names an MTU the netconf did not set (upstream reports only the netconf's):\n%s", out)
	}
	if fw := strings.TrimSpace(testutil.RunIn(t, p.ns, "sysctl", "-n", "net.ipv4.ip_forward")); fw != "1" {
		t.Errorf("pod ip_forward = %s with allow_ip_forwarding", fw)
	}
	q := e.newPod("mtuconf")
	conf := e.conf("1.0.0", map[string]any{"mtu": 1400})
	if _, err := e.add(conf, q); err != nil {
		t.Fatal(err)
	}
	if mtuOf(q.ns, "eth0") != "1400" || !strings.Contains(e.rec.last("calico", "ADD").stdout, `"mtu": 1400`) {
		t.Errorf("MTU from the netconf: pod %s, result %s", mtuOf(q.ns, "eth0"), e.rec.last("calico", "ADD").stdout)
	}
	if err := e.check(conf, q); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*pod{p, q} {
		if err := e.del(e.conf("1.0.0", nil), x); err != nil {
			t.Fatal(err)
		}
	}
	e.requireClean(t)
}

// TestDualStack: with assign_ipv6 the pod gets a /32 and a /128, an IPv6
// default route via the host veth's link-local address, and is reachable
// over both families; CHECK and DEL cover both.
func TestDualStack(t *testing.T) {
	e := newEnv(t)
	e.pool("pool6", "fd00:10::/120", 122)
	conf := e.conf("1.0.0", map[string]any{"ipam": map[string]any{"type": "calico-ipam", "assign_ipv6": "true"}})
	p := e.newPod("dual")
	res, err := e.add(conf, p)
	if err != nil {
		t.Fatal(err)
	}
	r := result100(t, res)
	if len(r.IPs) != 2 || !strings.HasSuffix(r.IPs[1].Address.String(), "/128") || len(r.Routes) != 2 || !strings.HasSuffix(r.Routes[1].Dst.String(), "/122") {
		t.Fatalf("dual-stack result %s", e.rec.last("calico", "ADD").stdout)
	}
	if out := testutil.RunIn(t, p.ns, "ip", "-6", "route", "show", "default"); !strings.Contains(out, "via fe80::ecee:eeff:feee:eeee dev eth0") {
		t.Errorf("pod IPv6 default route: %q", out)
	}
	v6 := r.IPs[1].Address.IP.String()
	ping(t, e.node, v6)
	if err := e.check(conf, p); err != nil {
		t.Fatal(err)
	}
	if err := e.del(conf, p); err != nil {
		t.Fatal(err)
	}
	e.requireClean(t)
}
