package datastore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/testutil"
)

func newEtcdClient(t *testing.T) *datastore.Client {
	t.Helper()
	e := testutil.StartEtcd(t)
	st, err := etcd.New(etcd.Config{Endpoints: []string{e.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := datastore.NewClient(st)
	c.Now = func() time.Time { return time.Date(2026, 11, 21, 13, 10, 0, 0, time.UTC) }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.EnsureInitialized(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestPolicyStorage checks the v3.30-v3.32 storage rules against a real etcd:
// default-tier policies under their plain name with the tier defaults and
// label, other tiers only as "<tier>.<name>", the tier must exist, and a
// v3.29-style "default.<name>" key is still found by its plain name.
func TestPolicyStorage(t *testing.T) {
	c := newEtcdClient(t)
	ctx := ctxT(t)

	np := api.NewNetworkPolicy()
	np.Name, np.UID, np.CreationTimestamp = "allow-dns", "0d9a3c4e-5f61-4b2a-9c1e-7a8b9c0d1e2f", "2026-11-21T13:10:00Z"
	np.Spec.Selector = "all()"
	np.Spec.Egress = []api.Rule{{Action: api.Allow}}
	if _, err := c.Create(ctx, np); err != nil {
		t.Fatal(err)
	}
	item, err := c.KV.Get(ctx, api.ResourcePrefix+"networkpolicies/default/allow-dns")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"allow-dns","namespace":"default","uid":"0d9a3c4e-5f61-4b2a-9c1e-7a8b9c0d1e2f","creationTimestamp":"2026-11-21T13:10:00Z","labels":{"projectcalico.org/tier":"default"}},"spec":{"tier":"default","egress":[{"action":"Allow","source":{},"destination":{}}],"selector":"all()","types":["Egress"]}}`
	if string(item.Value) != want {
		t.Errorf("stored\n got %s\nwant %s", item.Value, want)
	}

	// A tier that does not exist is refused and nothing is written.
	gnp := api.NewGlobalNetworkPolicy()
	gnp.Name = "security.deny-all"
	gnp.Spec.Tier = "security"
	_, err = c.Create(ctx, gnp)
	if err == nil || !strings.Contains(err.Error(), `tier "security" does not exist: create it first`) {
		t.Fatalf("create in a missing tier: got %v", err)
	}
	if _, err := c.KV.Get(ctx, api.ResourcePrefix+"globalnetworkpolicies/security.deny-all"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("refused policy was written: %v", err)
	}
	tier := api.NewTier()
	tier.Name = "security"
	order := 100.0
	tier.Spec.Order = &order
	if _, err := c.Create(ctx, tier); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, gnp); err != nil {
		t.Fatalf("create after the tier exists: %v", err)
	}

	// Outside the default tier the name must carry the tier prefix.
	bad := api.NewGlobalNetworkPolicy()
	bad.Name = "deny-all"
	bad.Spec.Tier = "security"
	_, err = c.Create(ctx, bad)
	var fe *api.FieldError
	if !errors.As(err, &fe) || fe.Field != "metadata.name" {
		t.Fatalf("unprefixed name in tier security: got %v", err)
	}

	// A key written by v3.29 and earlier ("default.<name>").
	legacy := `{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"default.old","uid":"5e0e3c4e-5f61-4b2a-9c1e-7a8b9c0d1e2f","creationTimestamp":"2024-01-01T00:00:00Z"},"spec":{"tier":"default","selector":"all()","types":["Ingress"]}}`
	if _, err := c.KV.Create(ctx, api.ResourcePrefix+"globalnetworkpolicies/default.old", []byte(legacy)); err != nil {
		t.Fatal(err)
	}
	got, err := datastore.GetOf[*api.GlobalNetworkPolicy](ctx, c, "gnp", "", "old")
	if err != nil {
		t.Fatalf("get legacy policy by its plain name: %v", err)
	}
	if got.Name != "default.old" || got.Labels[api.LabelTier] != "default" {
		t.Errorf("legacy policy read as %q labels %v", got.Name, got.Labels)
	}
	if err := api.Validate(got); err != nil {
		t.Errorf("legacy policy does not validate: %v", err)
	}
	if _, err := c.Delete(ctx, "gnp", "", "old", ""); err != nil {
		t.Fatalf("delete legacy policy by its plain name: %v", err)
	}
	if _, err := c.KV.Get(ctx, api.ResourcePrefix+"globalnetworkpolicies/default.old"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("legacy key still there after delete: %v", err)
	}
	if _, err := c.Get(ctx, "gnp", "", "old"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

// TestKindsStoreAndReadBack writes one object of each new kind through the
// client and reads it back unchanged.
func TestKindsStoreAndReadBack(t *testing.T) {
	c := newEtcdClient(t)
	ctx := ctxT(t)
	asn := api.ASNumber(64512)
	bc := api.NewBGPConfiguration()
	bc.Name = "default"
	bc.Spec.ASNumber = &asn
	peer := api.NewBGPPeer()
	peer.Name = "tor"
	peer.Spec.PeerIP = "192.0.2.1:1179"
	peer.Spec.ASNumber = 65001
	fc := api.NewFelixConfiguration()
	fc.Name = "node.node1"
	fc.Spec.DefaultEndpointToHostAction = "Return"
	for _, r := range []api.Resource{bc, peer, fc} {
		stored, err := c.Create(ctx, r)
		if err != nil {
			t.Fatalf("create %s: %v", r.GetTypeMeta().Kind, err)
		}
		want, _ := datastore.Encode(stored)
		got, err := c.Get(ctx, r.GetTypeMeta().Kind, "", r.GetObjectMeta().Name)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := datastore.Encode(got); string(b) != string(want) {
			t.Errorf("%s read back as\n%s\nwant\n%s", r.GetTypeMeta().Kind, b, want)
		}
	}
	// Per-node BGP configuration cannot carry the cluster-wide fields.
	nb := api.NewBGPConfiguration()
	nb.Name = "node.node1"
	nb.Spec.ASNumber = &asn
	var fe *api.FieldError
	if _, err := c.Create(ctx, nb); !errors.As(err, &fe) || fe.Field != "spec.asNumber" {
		t.Fatalf("asNumber on node.node1: got %v", err)
	}
}
