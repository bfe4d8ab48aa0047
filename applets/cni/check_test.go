package cni

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/testutil"
)

// TestCheckFindsEachBreakage: CHECK passes on a healthy pod and fails, with
// a message naming the problem, on each kind of breakage: of the pod's
// interface, addresses and routes, of the host veth and its routes, of the
// endpoint record and of the IPAM allocation. (Upstream's CHECK prints OK
// whatever the state.) DEL still cleans up every broken pod.
func TestCheckFindsEachBreakage(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0", nil)
	ctx := context.Background()
	a := ipam.New(e.store, ipam.Options{})
	// editWEP changes the pod's endpoint record.
	editWEP := func(cid string, f func(*api.WorkloadEndpoint)) {
		w := e.getWEP("default", "node1-cni-"+cid+"-eth0")
		f(w)
		if _, err := e.c.Update(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range []struct {
		name    string
		breakIt func(p *pod, cid, addr string)
		code    uint
		want    string
	}{
		{"pod address removed", func(p *pod, cid, addr string) {
			testutil.RunIn(t, p.ns, "ip", "addr", "del", addr+"/32", "dev", "eth0")
		}, types.ErrInternal, "container interface eth0 is missing address ADDR/32"},
		{"pod default route removed", func(p *pod, cid, addr string) {
			testutil.RunIn(t, p.ns, "ip", "route", "del", "default")
		}, types.ErrInternal, "container is missing route default via 169.254.1.1 dev eth0"},
		{"pod gateway route removed", func(p *pod, cid, addr string) {
			testutil.RunIn(t, p.ns, "ip", "route", "del", "169.254.1.1/32", "dev", "eth0")
		}, types.ErrInternal, "container is missing route 169.254.1.1/32 dev eth0 scope link"},
		{"pod interface removed", func(p *pod, cid, addr string) {
			testutil.RunIn(t, p.ns, "ip", "link", "del", "eth0")
		}, types.ErrInternal, "container interface eth0 is missing; host interface caliCID is missing"},
		{"host route removed", func(p *pod, cid, addr string) {
			testutil.RunIn(t, e.node, "ip", "route", "del", addr+"/32")
		}, types.ErrInternal, "host route ADDR/32 dev caliCID is missing"},
		{"host veth MAC changed", func(p *pod, cid, addr string) {
			testutil.RunIn(t, e.node, "ip", "link", "set", "cali"+cid, "address", "ee:ee:ee:ee:ee:01")
		}, types.ErrInternal, "host interface caliCID has MAC ee:ee:ee:ee:ee:01, want ee:ee:ee:ee:ee:ee"},
		{"endpoint deleted", func(p *pod, cid, addr string) {
			if _, err := e.c.Delete(ctx, api.KindWorkloadEndpoint, "default", "node1-cni-"+cid+"-eth0", ""); err != nil {
				t.Fatal(err)
			}
		}, types.ErrUnknownContainer, "workload endpoint default/node1-cni-CID-eth0 does not exist"},
		{"endpoint address changed", func(p *pod, cid, addr string) {
			editWEP(cid, func(w *api.WorkloadEndpoint) { w.Spec.IPNetworks = []string{"10.244.99.99/32"} })
		}, types.ErrInternal, "workload endpoint default/node1-cni-CID-eth0 has addresses [10.244.99.99/32], prevResult [ADDR/32]"},
		{"endpoint MAC changed", func(p *pod, cid, addr string) {
			editWEP(cid, func(w *api.WorkloadEndpoint) { w.Spec.MAC = "02:00:00:00:00:01" })
		}, types.ErrInternal, `has mac "02:00:00:00:00:01", prevResult`},
		{"endpoint interface changed", func(p *pod, cid, addr string) {
			editWEP(cid, func(w *api.WorkloadEndpoint) { w.Spec.InterfaceName = "caliother" })
		}, types.ErrInternal, `has interfaceName "caliother", want "caliCID"`},
		{"IPAM handle released", func(p *pod, cid, addr string) {
			if err := a.ReleaseByHandle(ctx, netName+"."+cid); err != nil {
				t.Fatal(err)
			}
		}, types.ErrInternal, "IPAM handle k8s-pod-network.CID does not exist"},
		{"IPAM handle holds another address", func(p *pod, cid, addr string) {
			if _, err := a.AssignIP(ctx, ipam.AssignIPArgs{IP: mustAddr("10.244.77.7"), HandleID: netName + "." + cid, Hostname: nodeName}); err != nil {
				t.Fatal(err)
			}
		}, types.ErrInternal, "IPAM handle k8s-pod-network.CID also holds 10.244.77.7"},
	} {
		cid := fmt.Sprintf("chk%02d", i)
		p := e.newPod(cid)
		res, err := e.add(conf, p)
		if err != nil {
			t.Fatal(err)
		}
		addr := podAddr(t, res).String()
		if err := e.check(conf, p); err != nil {
			t.Fatalf("%s: CHECK of the healthy pod: %v", c.name, err)
		}
		c.breakIt(p, cid, addr)
		err = e.check(conf, p)
		want := strings.NewReplacer("ADDR", addr, "CID", cid).Replace(c.want)
		if err == nil {
			t.Errorf("%s: CHECK passed", c.name)
		} else if te := asCNIError(t, err); te.Code != c.code || !strings.Contains(te.Msg, want) {
			t.Errorf("%s: CHECK = code %d %q\nwant code %d and %q", c.name, te.Code, te.Msg, c.code, want)
		} else {
			t.Logf("%s: %s", c.name, te.Msg)
		}
		if err := e.del(conf, p); err != nil {
			t.Fatalf("%s: DEL of the broken pod: %v", c.name, err)
		}
		e.requireClean(t)
	}
	// prevResult that does not match the pod at all.
	p := e.newPod("chkprev")
	if _, err := e.add(conf, p); err != nil {
		t.Fatal(err)
	}
	prev := `{"cniVersion":"1.0.0","interfaces":[{"name":"caliwrong"},{"name":"eth0","mac":"02:00:00:00:00:02","sandbox":"` + p.ns + `"}],"ips":[{"address":"10.244.55.5/32","interface":1}]}`
	withPrev := e.conf("1.0.0", map[string]any{"prevResult": rawJSON(prev)})
	o := e.run("CHECK", "chkprev", p.ns, "", withPrev)
	te := cniError(t, o)
	for _, want := range []string{"prevResult does not list the host interface calichkprev", "container interface eth0 is missing address 10.244.55.5/32",
		"host route 10.244.55.5/32 dev calichkprev is missing", `has mac`, "IPAM handle k8s-pod-network.chkprev does not hold 10.244.55.5"} {
		if !strings.Contains(te.Msg, want) {
			t.Errorf("wrong prevResult: %q lacks %q", te.Msg, want)
		}
	}
	if o := e.run("CHECK", "chkprev", p.ns, "", conf); cniError(t, o).Code != types.ErrInvalidNetworkConfig {
		t.Errorf("CHECK without prevResult: %+v", o)
	}
	if err := e.del(conf, p); err != nil {
		t.Fatal(err)
	}
	e.requireClean(t)
}

type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }
