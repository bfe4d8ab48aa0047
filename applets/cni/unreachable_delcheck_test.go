package cni

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/onecalico/calico/internal/testutil"
)

// TestDelCheckDatastoreUnreachable runs CNI CHECK and DEL (the binary) on
// pods added while the datastore answered, once it has gone silent (a
// partition) and once connections are refused. Each fails with code 11
// and one line naming etcd; no record, handle or allocation changes. DEL
// still takes the pod's interface down (the runtime is removing the pod)
// but releases nothing, and a DEL once the datastore is back cleans up the
// rest. The durations are logged (the budget is cniipam.DatastoreBudget,
// as for ADD), not asserted.
func TestDelCheckDatastoreUnreachable(t *testing.T) {
	e := newEnv(t)
	target := strings.TrimPrefix(e.etcd.Endpoint, "unix://")
	if err := os.Mkdir(filepath.Join(e.dir, "p"), 0o700); err != nil {
		t.Fatal(err)
	}
	proxy := testutil.StartCutProxy(t, filepath.Join(e.dir, "p", filepath.Base(target)), target)
	via := map[string]string{
		"silent":  "unix://" + proxy.Path,
		"refused": "unix://" + filepath.Join(e.dir, "nobody.sock") + ":0",
	}
	const runs = 5
	type added struct {
		cid  string
		p    *pod
		prev string // the ADD result, CHECK's prevResult
	}
	var pods []added
	for i := range 2 * runs {
		cid := fmt.Sprintf("gone%d", i)
		a := added{cid: cid, p: e.newPod(cid)}
		o := e.run("ADD", cid, a.p.ns, "", e.conf("1.0.0", map[string]any{"etcd_endpoints": via["silent"]}))
		if o.rc != 0 {
			t.Fatalf("ADD %s through the proxy: rc %d %s %s", cid, o.rc, o.stdout, o.stderr)
		}
		a.prev = o.stdout
		pods = append(pods, a)
	}
	records := e.records()
	proxy.Cut()
	for k, mode := range []string{"silent", "refused"} {
		var tCheck, tDel []time.Duration
		for i, a := range pods[k*runs : (k+1)*runs] {
			conf := e.conf("1.0.0", map[string]any{"etcd_endpoints": via[mode], "prevResult": rawJSON(a.prev)})
			for _, cmd := range []string{"CHECK", "DEL"} {
				start := time.Now()
				o := e.run(cmd, a.cid, a.p.ns, "", conf)
				took := time.Since(start)
				if cmd == "CHECK" {
					tCheck = append(tCheck, took)
				} else {
					tDel = append(tDel, took)
				}
				te := cniError(t, o)
				if te.Code != types.ErrTryAgainLater || !strings.Contains(te.Msg, "etcd did not answer") || strings.Contains(te.Msg, "\n") {
					t.Errorf("%s %s #%d: code %d %q; want 11 and one line naming etcd", mode, cmd, i, te.Code, te.Msg)
				}
				if i == 0 {
					t.Logf("%s %s: %s", mode, cmd, te.Msg)
				}
			}
			if slices.Contains(e.nodeState(), "link cali"+a.cid) {
				t.Errorf("%s DEL #%d: the host interface cali%s is still there", mode, i, a.cid)
			}
		}
		logSpread(t, mode+" datastore: CHECK failed", tCheck)
		logSpread(t, mode+" datastore: DEL failed", tDel)
	}
	if got := e.records(); !slices.Equal(got, records) {
		t.Errorf("the failed DELs and CHECKs changed the datastore:\n%s\nbefore:\n%s", strings.Join(got, "\n"), strings.Join(records, "\n"))
	}
	// Back: a DEL releases what the failed ones left.
	proxy.Restore()
	for _, a := range pods {
		if o := e.run("DEL", a.cid, a.p.ns, "", e.conf("1.0.0", map[string]any{"etcd_endpoints": via["silent"]})); o.rc != 0 {
			t.Fatalf("DEL %s after the datastore came back: rc %d %s %s", a.cid, o.rc, o.stdout, o.stderr)
		}
	}
	e.requireClean(t)
}

// records lists every key and revision under /calico/ (sorted).
func (e *env) records() []string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kvs, _, err := e.store.List(ctx, "/calico/")
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, fmt.Sprintf("%s@%d", kv.Key, kv.Revision))
	}
	slices.Sort(out)
	return out
}

func logSpread(t *testing.T, what string, took []time.Duration) {
	t.Helper()
	slices.Sort(took)
	n := len(took)
	t.Logf("%s %d times; min %v p50 %v max %v", what, n,
		took[0].Round(time.Millisecond), took[n/2].Round(time.Millisecond), took[n-1].Round(time.Millisecond))
}
