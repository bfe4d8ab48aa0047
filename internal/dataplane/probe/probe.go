// Package probe finds out what this kernel can do for Calico (`calicoctl
// node checksystem`): it creates each kind of device and an nftables NAT
// table in a throwaway network namespace of its own, which disappears with
// the probing thread. Without the privilege to make a namespace it falls
// back to reading /proc and /sys (modules loaded or built in), which can
// only say "present", never "works".
//
// It imports only the standard library, netlink and nftables; it never
// touches the caller's namespace and never shells out.
package probe

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Feature is one kernel capability and what this project uses it for.
type Feature struct {
	Name     string
	Required bool   // Calico on this node cannot work without it
	Use      string // what needs it
	OK       bool
	Unknown  bool   // not probed, and no module found: it may still be built in
	Detail   string // why not, or how it was found
}

// features lists what is probed, in report order.
func features() []Feature {
	return []Feature{
		{Name: "veth", Required: true, Use: "workload interfaces"},
		{Name: "nftables", Required: true, Use: "NAT outgoing and policy"},
		{Name: "vxlan", Use: "VXLAN pools"},
		{Name: "ipip", Use: "IPIP pools"},
		{Name: "wireguard", Use: "WireGuard encryption (not implemented here)"},
	}
}

// Run probes every feature. It prefers a throwaway namespace; when that is
// not allowed, it reads /proc and /sys and says so in each Detail.
func Run() []Feature {
	fs := features()
	if err := inScratchNetNS(func() { probeAll(fs) }); err != nil {
		for i := range fs {
			fs[i].OK, fs[i].Detail = fromModules(fs[i].Name)
			fs[i].Unknown = !fs[i].OK
			fs[i].Detail += fmt.Sprintf(" (not probed: no namespace to test in: %v)", err)
		}
	}
	return fs
}

// inScratchNetNS runs f on a locked thread in a new, empty network
// namespace. The thread is never unlocked, so Go ends it when f returns and
// the namespace goes with it; the caller's threads never change namespace.
func inScratchNetNS(f func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		f()
		errc <- nil
	}()
	return <-errc
}

// probeAll runs on the scratch namespace's thread.
func probeAll(fs []Feature) {
	h, err := netlink.NewHandle()
	if err != nil {
		for i := range fs {
			fs[i].Detail = fmt.Sprintf("netlink: %v", err)
		}
		return
	}
	defer h.Close()
	la := func(name string) netlink.LinkAttrs { a := netlink.NewLinkAttrs(); a.Name = name; return a }
	links := map[string]netlink.Link{
		"veth":      &netlink.Veth{LinkAttrs: la("probe0"), PeerName: "probe1"},
		"vxlan":     &netlink.Vxlan{LinkAttrs: la("probe-vx"), VxlanId: 4096, Port: 4789},
		"ipip":      &netlink.Iptun{LinkAttrs: la("probe-ipip")},
		"wireguard": &netlink.Wireguard{LinkAttrs: la("probe-wg")},
	}
	for i := range fs {
		var err error
		if l, ok := links[fs[i].Name]; ok {
			err = h.LinkAdd(l)
		} else {
			err = nftNAT()
		}
		fs[i].OK = err == nil
		if err != nil {
			fs[i].Detail = describe(err)
		}
	}
}

// nftNAT builds what NAT outgoing needs in the current namespace: an inet
// table, a postrouting NAT chain and a masquerade rule.
func nftNAT() error {
	ns, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "probe"})
	ch := c.AddChain(&nftables.Chain{Name: "post", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{&expr.Masq{}}})
	return c.Flush()
}

// describe turns the kernel's answer into words.
func describe(err error) string {
	switch {
	case errors.Is(err, unix.EOPNOTSUPP):
		return "not supported by this kernel (module missing and cannot be loaded)"
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EAFNOSUPPORT):
		return "not available in this kernel"
	}
	return err.Error()
}

// fromModules says whether a feature's module is loaded or built in.
func fromModules(name string) (bool, string) {
	m := name // modules are named after the feature, but for nftables
	if name == "nftables" {
		m = "nf_tables"
	}
	if _, err := os.Stat("/sys/module/" + m); err == nil {
		return true, "module " + m + " present"
	}
	dir := "/lib/modules/" + KernelRelease() + "/"
	if listed(dir+"modules.builtin", m) || listed(dir+"modules.dep", m) {
		return true, "module " + m + " available"
	}
	return false, "module " + m + " not found"
}

// listed reports whether a modules.builtin or modules.dep file names m.ko.
func listed(path, m string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line, _, _ := strings.Cut(s.Text(), ":")
		if strings.HasSuffix(line, "/"+m+".ko") || strings.Contains(line, "/"+m+".ko.") {
			return true
		}
	}
	return false
}

// KernelRelease is uname -r.
func KernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
