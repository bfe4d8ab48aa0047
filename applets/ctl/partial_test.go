package ctl

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/testutil"
)

// racingStore is the real etcd store, except that just before it creates
// key it lets another writer create the same key first: the change a second
// admin could make between calicoctl's checks and its writes.
type racingStore struct {
	kv.Store
	key string
}

func (s *racingStore) Create(ctx context.Context, key string, value []byte) (int64, error) {
	if key == s.key {
		if _, err := s.Store.Create(ctx, key, []byte(`{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"c"},"spec":{"cidr":"10.3.0.0/16"}}`)); err != nil {
			return 0, err
		}
	}
	return s.Store.Create(ctx, key, value)
}

// TestWriteFailureAfterChecksIsReported: when a write fails after every
// check passed, calicoctl says which resources it wrote (the first two) and
// which one failed, as upstream's "Partial success" lines do, and exits 1.
func TestWriteFailureAfterChecksIsReported(t *testing.T) {
	e := testutil.StartEtcd(t)
	real, err := etcd.New(etcd.Config{Endpoints: []string{e.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	store := &racingStore{Store: real, key: resPrefix + "ippools/c"}
	file := filepath.Join(t.TempDir(), "pools.yaml")
	var doc []string
	for i, n := range []string{"a", "b", "c"} {
		doc = append(doc, "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: "+n+"\nspec:\n  cidr: 10."+string(rune('0'+i))+".0.0/16\n")
	}
	if err := os.WriteFile(file, []byte(strings.Join(doc, "---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" },
		backend: store, client: datastore.NewClient(store)}
	defer env.Close()
	rc := run(context.Background(), env, []string{"create", "-f", file})
	if rc != 1 {
		t.Errorf("exit code %d, want 1", rc)
	}
	if got, want := stdout.String(), "Partial success: created the first 2 out of 3 'IPPool' resources:\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if got, want := stderr.String(), "Hit error: failed to create IPPool(c) ("+file+", document 3): resource already exists: IPPool(c)\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
	for _, n := range []string{"a", "b"} {
		if _, err := real.Get(context.Background(), resPrefix+"ippools/"+n); err != nil {
			t.Errorf("pool %s was reported written but is not stored: %v", n, err)
		}
	}
}

// TestDeleteSomeMissing: as upstream, deleting several resources of which
// some do not exist deletes the others, names each missing one and exits 1.
func TestDeleteSomeMissing(t *testing.T) {
	c := newCtlEnv(t)
	c.mustRun("apply", "-f", "testdata/resources/pools.json")
	c.mustRun("apply", "-f", "testdata/resources/cluster.yaml")
	r := c.run("delete", "ippool", "nope", "vxlan-pool", "nope2")
	if r.rc != 1 {
		t.Errorf("exit code %d, want 1", r.rc)
	}
	if want := "Partial success: deleted the first 1 out of 3 'IPPool' resources:\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if want := "Hit error: resource does not exist: IPPool(nope) with error: <nil>\n" +
		"Hit error: resource does not exist: IPPool(nope2) with error: <nil>\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	if r := c.run("get", "ippool", "vxlan-pool"); r.rc == 0 {
		t.Errorf("vxlan-pool was not deleted:\n%s", r)
	}
	// A missing resource next to one that fails its checks: nothing is deleted.
	before := c.snapshot()
	r = c.run("delete", "profile", "nope", "projectcalico-default-allow")
	if r.rc != 1 || !strings.Contains(r.stderr, "Profile(nope)") || !strings.Contains(r.stderr, "built-in profile cannot be deleted") {
		t.Errorf("delete with a refused resource:\n%s", r)
	}
	if c.snapshot().rev != before.rev {
		t.Errorf("a refused delete deleted something")
	}
}
