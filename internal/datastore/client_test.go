package datastore_test

import (
	"context"
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/testutil"
)

func newClient(t *testing.T) (*datastore.Client, kv.Store) {
	t.Helper()
	e := testutil.StartEtcd(t)
	s, err := etcd.New(etcd.Config{Endpoints: []string{e.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c := datastore.NewClient(s)
	c.Now = func() time.Time { return time.Date(2026, 11, 21, 13, 2, 53, 0, time.UTC) }
	return c, s
}

var uidRE = regexp.MustCompile(`"uid":"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"`)

// stored reads a raw value and replaces the random uid with a fixed one.
func stored(t *testing.T, s kv.Store, key string) string {
	t.Helper()
	item, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if !uidRE.Match(item.Value) {
		t.Fatalf("%s: no RFC 4122 v4 uid in %s", key, item.Value)
	}
	return uidRE.ReplaceAllString(string(item.Value), `"uid":"U"`)
}

// The same two resources upstream's dump was made from (calico-etcd-dump.txt
// section 1) are stored byte for byte as upstream stored them.
func TestCreateStoresUpstreamFormat(t *testing.T) {
	c, s := newClient(t)
	ctx := context.Background()
	if err := c.EnsureInitialized(ctx); err != nil {
		t.Fatal(err)
	}
	node := api.NewNode()
	node.Name = "node1"
	node.Spec.BGP = &api.NodeBGPSpec{IPv4Address: "192.0.2.10/24"}
	if _, err := c.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	pool := api.NewIPPool()
	pool.Name = "pool1"
	pool.Spec = api.IPPoolSpec{CIDR: "10.244.0.0/16", BlockSize: 26, IPIPMode: api.IPIPModeNever, NATOutgoing: true}
	created, err := c.Create(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/calico/resources/v3/projectcalico.org/nodes/node1":         `{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"node1","uid":"U","creationTimestamp":"2026-11-21T13:02:53Z"},"spec":{"bgp":{"ipv4Address":"192.0.2.10/24"}},"status":{}}`,
		"/calico/resources/v3/projectcalico.org/ippools/pool1":       `{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"pool1","uid":"U","creationTimestamp":"2026-11-21T13:02:53Z"},"spec":{"cidr":"10.244.0.0/16","vxlanMode":"Never","ipipMode":"Never","natOutgoing":true,"blockSize":26,"nodeSelector":"all()","allowedUses":["Workload","Tunnel"],"assignmentMode":"Automatic"}}`,
		"/calico/resources/v3/projectcalico.org/tiers/default":       `{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"default","uid":"U","creationTimestamp":"2026-11-21T13:02:53Z"},"spec":{"order":1000000,"defaultAction":"Deny"},"status":{}}`,
		"/calico/resources/v3/projectcalico.org/tiers/kube-admin":    `{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"kube-admin","uid":"U","creationTimestamp":"2026-11-21T13:02:53Z"},"spec":{"order":1000,"defaultAction":"Pass"},"status":{}}`,
		"/calico/resources/v3/projectcalico.org/tiers/kube-baseline": `{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"kube-baseline","uid":"U","creationTimestamp":"2026-11-21T13:02:53Z"},"spec":{"order":10000000,"defaultAction":"Pass"},"status":{}}`,
	}
	for key, w := range want {
		if got := stored(t, s, key); got != w {
			t.Errorf("%s\n got %s\nwant %s", key, got, w)
		}
	}
	ci := stored(t, s, "/calico/resources/v3/projectcalico.org/clusterinformations/default")
	if !regexp.MustCompile(`^\{"kind":"ClusterInformation","apiVersion":"projectcalico.org/v3","metadata":\{"name":"default","uid":"U","creationTimestamp":"2026-11-21T13:02:53Z"\},"spec":\{"clusterGUID":"[0-9a-f]{32}","datastoreReady":true\}\}$`).MatchString(ci) {
		t.Errorf("cluster information = %s", ci)
	}
	// resourceVersion is the mod revision, and is never stored.
	item, _ := s.Get(ctx, "/calico/resources/v3/projectcalico.org/ippools/pool1")
	if created.GetObjectMeta().ResourceVersion == "" || strings.Contains(string(item.Value), "resourceVersion") {
		t.Fatalf("resourceVersion %q, stored %s", created.GetObjectMeta().ResourceVersion, item.Value)
	}
	got, err := c.Get(ctx, "ippool", "", "pool1")
	if err != nil {
		t.Fatal(err)
	}
	if rv := got.GetObjectMeta().ResourceVersion; rv != created.GetObjectMeta().ResourceVersion {
		t.Fatalf("read resourceVersion %s, created %s", rv, created.GetObjectMeta().ResourceVersion)
	}
	// A second EnsureInitialized changes nothing.
	_, rev, _ := s.List(ctx, "/")
	if err := c.EnsureInitialized(ctx); err != nil {
		t.Fatal(err)
	}
	if _, rev2, _ := s.List(ctx, "/"); rev2 != rev {
		t.Fatalf("EnsureInitialized wrote again: revision %d -> %d", rev, rev2)
	}
}

func TestUpdateApplyDeleteSemantics(t *testing.T) {
	c, _ := newClient(t)
	ctx := context.Background()
	p := api.NewProfile()
	p.Name = "web"
	p.Spec.LabelsToApply = map[string]string{"web": ""}
	r, err := c.Create(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	uid, rv1 := r.GetObjectMeta().UID, r.GetObjectMeta().ResourceVersion
	if _, err := c.Create(ctx, p); !errors.Is(err, kv.ErrExists) {
		t.Fatalf("second create: %v", err)
	}

	// Update with the current revision works and keeps uid/creationTimestamp.
	u := api.NewProfile()
	u.Name, u.ResourceVersion = "web", rv1
	u.Spec.LabelsToApply = map[string]string{"web": "v2"}
	r2, err := c.Update(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if r2.GetObjectMeta().UID != uid || r2.GetObjectMeta().CreationTimestamp == "" {
		t.Fatalf("update lost uid/creationTimestamp: %+v", r2.GetObjectMeta())
	}
	// Update with the stale revision is a conflict.
	stale := api.NewProfile()
	stale.Name, stale.ResourceVersion = "web", rv1
	if _, err := c.Update(ctx, stale); !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	// Update of something that does not exist.
	missing := api.NewProfile()
	missing.Name = "nope"
	if _, err := c.Update(ctx, missing); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}
	// Apply updates in place, keeping the uid.
	a := api.NewProfile()
	a.Name = "web"
	r3, err := c.Apply(ctx, a)
	if err != nil || r3.GetObjectMeta().UID != uid {
		t.Fatalf("apply: %v uid %s want %s", err, r3.GetObjectMeta().UID, uid)
	}
	// List includes the synthetic default-allow profile, which cannot be deleted.
	ps, _, err := datastore.ListOf[*api.Profile](ctx, c, "profiles", "")
	if err != nil || len(ps) != 2 || ps[1].Name != api.DefaultAllowProfile {
		t.Fatalf("list profiles: %v %d", err, len(ps))
	}
	if _, err := c.Delete(ctx, "profile", "", api.DefaultAllowProfile, ""); err == nil {
		t.Fatal("deleted the built-in profile")
	}
	// Delete with a stale revision is a conflict; without one it deletes.
	if _, err := c.Delete(ctx, "profile", "", "web", rv1); !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("stale delete: %v", err)
	}
	old, err := c.Delete(ctx, "profile", "", "web", "")
	if err != nil || old.GetObjectMeta().UID != uid {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.Get(ctx, "profile", "", "web"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestNamespacedKeysAndLabels(t *testing.T) {
	c, s := newClient(t)
	ctx := context.Background()
	w := api.NewWorkloadEndpoint()
	w.Name = "node1-cni-abc-eth0"
	w.Spec = api.WorkloadEndpointSpec{Orchestrator: "cni", Node: "node1", ContainerID: "abc", Endpoint: "eth0",
		IPNetworks: []string{"10.244.166.128/32"}, Profiles: []string{"k8s-pod-network"}, InterfaceName: "caliabc", MAC: "be:c4:27:a2:07:ce"}
	if _, err := c.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	got := stored(t, s, "/calico/resources/v3/projectcalico.org/workloadendpoints/default/node1-cni-abc-eth0")
	want := `{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"node1-cni-abc-eth0","namespace":"default","uid":"U","creationTimestamp":"2026-11-21T13:02:53Z","labels":{"projectcalico.org/namespace":"default","projectcalico.org/orchestrator":"cni"}},"spec":{"orchestrator":"cni","node":"node1","containerID":"abc","endpoint":"eth0","ipNetworks":["10.244.166.128/32"],"profiles":["k8s-pod-network"],"interfaceName":"caliabc","mac":"be:c4:27:a2:07:ce"}}`
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
	other := api.NewWorkloadEndpoint()
	other.Name, other.Namespace = "x", "prod"
	if _, err := c.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	all, _, _ := c.List(ctx, "wep", "")
	def, _, _ := c.List(ctx, "wep", "default")
	if len(all) != 2 || len(def) != 1 {
		t.Fatalf("all namespaces %d, default %d", len(all), len(def))
	}
}

func TestPoolChecksAgainstTheStore(t *testing.T) {
	c, s := newClient(t)
	ctx := context.Background()
	mk := func(name, cidr string, bs int) *api.IPPool {
		p := api.NewIPPool()
		p.Name = name
		p.Spec.CIDR, p.Spec.BlockSize = cidr, bs
		return p
	}
	if _, err := c.Create(ctx, mk("a", "10.1.0.0/16", 0)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Create(ctx, mk("b", "10.1.128.0/17", 0))
	var fe *api.FieldError
	if !errors.As(err, &fe) || fe.Field != "spec.cidr" || !strings.Contains(err.Error(), `overlaps IPPool "a"`) {
		t.Fatalf("overlapping pool: %v", err)
	}
	// The CIDR and block size of an existing pool cannot change.
	up := mk("a", "10.2.0.0/16", 0)
	if _, err := c.Apply(ctx, up); err == nil || !strings.Contains(err.Error(), "cannot be changed") {
		t.Fatalf("changed CIDR: %v", err)
	}
	// A block of another size left behind refuses a pool that would cover it.
	if _, err := s.Create(ctx, api.BlockKey(mustPrefix("10.9.0.0/24")), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, mk("c", "10.9.0.0/16", 26)); err == nil || !strings.Contains(err.Error(), "existing block 10.9.0.0/24") {
		t.Fatalf("pool over a block of another size: %v", err)
	}
	if _, err := c.Create(ctx, mk("d", "10.9.0.0/16", 24)); err != nil {
		t.Fatalf("pool over a block of the same size: %v", err)
	}
	// Nothing was written by the refused creates.
	pools, _, _ := c.List(ctx, "ippools", "")
	if len(pools) != 2 {
		t.Fatalf("%d pools stored, want 2", len(pools))
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
