package cni

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/onecalico/calico/internal/testutil"
)

// TestAddDatastoreUnreachable runs CNI ADDs (the binary, as a runtime
// does) against a datastore that does not answer: once silent (a
// partition: connections open, nothing comes back) and once refusing
// connections. Every ADD fails with code 11 and one line naming the
// datastore, and leaves nothing behind: no link in the pod or on the node,
// no record. The durations are logged (the budget is
// cniipam.DatastoreBudget; a runtime allows 5 s), not asserted.
func TestAddDatastoreUnreachable(t *testing.T) {
	e := newEnv(t)
	// The plugin's path to etcd: a socket of the same name in another
	// directory, through a proxy the test can cut.
	target := strings.TrimPrefix(e.etcd.Endpoint, "unix://")
	if err := os.Mkdir(filepath.Join(e.dir, "p"), 0o700); err != nil {
		t.Fatal(err)
	}
	proxy := testutil.StartCutProxy(t, filepath.Join(e.dir, "p", filepath.Base(target)), target)
	silent := e.conf("1.0.0", map[string]any{"etcd_endpoints": "unix://" + proxy.Path})
	refused := e.conf("1.0.0", map[string]any{"etcd_endpoints": "unix://" + filepath.Join(e.dir, "nobody.sock") + ":0"})

	// The path through the proxy works while it is not cut.
	ok := e.newPod("reach")
	if o := e.run("ADD", "reach", ok.ns, "", silent); o.rc != 0 {
		t.Fatalf("ADD through the proxy: rc %d %s %s", o.rc, o.stdout, o.stderr)
	}
	links := testutil.RunIn(t, e.node, "ip", "-o", "link", "show")
	proxy.Cut()
	for _, c := range []struct {
		name string
		conf []byte
		runs int
	}{{"silent", silent, 10}, {"refused", refused, 5}} {
		runs := c.runs
		var took []time.Duration
		for i := range runs {
			p := e.newPod("down")
			start := time.Now()
			o := e.run("ADD", "down", p.ns, "", c.conf)
			took = append(took, time.Since(start))
			te := cniError(t, o)
			if te.Code != types.ErrTryAgainLater || !strings.Contains(te.Msg, "etcd did not answer") || strings.Contains(te.Msg, "\n") {
				t.Errorf("%s #%d: code %d %q; want 11 and one line naming etcd", c.name, i, te.Code, te.Msg)
			}
			if got := testutil.RunIn(t, p.ns, "ip", "-o", "link", "show"); strings.Count(got, "\n") != 1 || !strings.Contains(got, ": lo:") {
				t.Errorf("%s #%d: the failed ADD left links in the pod:\n%s", c.name, i, got)
			}
			if i == 0 {
				t.Logf("%s: %s", c.name, te.Msg)
			}
		}
		if got := testutil.RunIn(t, e.node, "ip", "-o", "link", "show"); got != links {
			t.Errorf("%s: the failed ADDs changed the node's links:\n%s\nbefore:\n%s", c.name, got, links)
		}
		slices.Sort(took)
		t.Logf("%s datastore: %d ADDs failed; min %v p50 %v max %v", c.name, runs,
			took[0].Round(time.Millisecond), took[runs/2].Round(time.Millisecond), took[runs-1].Round(time.Millisecond))
	}
	// Nothing of the failed ADDs reached the datastore (they never got
	// through); only the reachable pod's endpoint and handle exist.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kvs, _, err := e.store.List(ctx, "/calico/")
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs {
		if strings.Contains(kv.Key, "down") {
			t.Errorf("a failed ADD left %s", kv.Key)
		}
	}
}
