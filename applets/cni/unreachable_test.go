package cni

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/onecalico/calico/internal/testutil"
)

// unreachableEnv is newEnv with the two ways the plugin's datastore stops
// answering: "silent" reaches etcd through a proxy the test can cut (a
// partition: connections open, nothing comes back), "refused" names a
// socket nobody listens on.
type unreachableEnv struct {
	*env
	proxy *testutil.CutProxy
	via   map[string]string // mode -> etcd_endpoints
}

func newUnreachableEnv(t *testing.T) *unreachableEnv {
	e := newEnv(t)
	// The proxy's socket has the etcd socket's name, in another directory.
	target := strings.TrimPrefix(e.etcd.Endpoint, "unix://")
	if err := os.Mkdir(filepath.Join(e.dir, "p"), 0o700); err != nil {
		t.Fatal(err)
	}
	proxy := testutil.StartCutProxy(t, filepath.Join(e.dir, "p", filepath.Base(target)), target)
	return &unreachableEnv{env: e, proxy: proxy, via: map[string]string{
		"silent":  "unix://" + proxy.Path,
		"refused": "unix://" + filepath.Join(e.dir, "nobody.sock") + ":0",
	}}
}

// confVia is a netconf whose datastore is reached the given way.
func (u *unreachableEnv) confVia(mode string, extra map[string]any) []byte {
	m := map[string]any{"etcd_endpoints": u.via[mode]}
	maps.Copy(m, extra)
	return u.conf("1.0.0", m)
}

// wantTryAgain fails the test unless o is CNI error 11 (try again later)
// with one line naming etcd, and returns the message.
func wantTryAgain(t *testing.T, o outcome, what string) string {
	t.Helper()
	te := cniError(t, o)
	if te.Code != types.ErrTryAgainLater || !strings.Contains(te.Msg, "etcd did not answer") || strings.Contains(te.Msg, "\n") {
		t.Errorf("%s: code %d %q; want 11 and one line naming etcd", what, te.Code, te.Msg)
	}
	return te.Msg
}

// TestAddDatastoreUnreachable runs CNI ADDs (the binary, as a runtime
// does) against a datastore that does not answer: once silent and once
// refusing connections. Every ADD fails with code 11 and one line naming
// the datastore, and leaves nothing behind: no link in the pod or on the
// node, no record. The durations are logged (the budget is
// cniipam.DatastoreBudget; a runtime allows 5 s), not asserted.
func TestAddDatastoreUnreachable(t *testing.T) {
	u := newUnreachableEnv(t)
	e := u.env
	// The path through the proxy works while it is not cut.
	ok := e.newPod("reach")
	if o := e.run("ADD", "reach", ok.ns, "", u.confVia("silent", nil)); o.rc != 0 {
		t.Fatalf("ADD through the proxy: rc %d %s %s", o.rc, o.stdout, o.stderr)
	}
	links := testutil.RunIn(t, e.node, "ip", "-o", "link", "show")
	u.proxy.Cut()
	for _, c := range []struct {
		mode string
		runs int
	}{{"silent", 10}, {"refused", 5}} {
		var took []time.Duration
		for i := range c.runs {
			p := e.newPod("down")
			start := time.Now()
			o := e.run("ADD", "down", p.ns, "", u.confVia(c.mode, nil))
			took = append(took, time.Since(start))
			msg := wantTryAgain(t, o, fmt.Sprintf("%s #%d", c.mode, i))
			if got := testutil.RunIn(t, p.ns, "ip", "-o", "link", "show"); strings.Count(got, "\n") != 1 || !strings.Contains(got, ": lo:") {
				t.Errorf("%s #%d: the failed ADD left links in the pod:\n%s", c.mode, i, got)
			}
			if i == 0 {
				t.Logf("%s: %s", c.mode, msg)
			}
		}
		if got := testutil.RunIn(t, e.node, "ip", "-o", "link", "show"); got != links {
			t.Errorf("%s: the failed ADDs changed the node's links:\n%s\nbefore:\n%s", c.mode, got, links)
		}
		logSpread(t, c.mode+" datastore: ADD failed", took)
	}
	// Nothing of the failed ADDs reached the datastore (they never got
	// through); only the reachable pod's endpoint and handle exist.
	for _, r := range e.records() {
		if strings.Contains(r, "down") {
			t.Errorf("a failed ADD left %s", r)
		}
	}
}

// TestDelCheckDatastoreUnreachable runs CNI CHECK and DEL (the binary) on
// pods added while the datastore answered, once it has gone silent and
// once connections are refused. Each fails with code 11 and one line
// naming etcd; no record, handle or allocation changes. DEL still takes
// the pod's interface down (the runtime is removing the pod) but releases
// nothing, and a DEL once the datastore is back cleans up the rest. The
// durations are logged (the budget is cniipam.DatastoreBudget, as for
// ADD), not asserted.
func TestDelCheckDatastoreUnreachable(t *testing.T) {
	u := newUnreachableEnv(t)
	e := u.env
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
		o := e.run("ADD", cid, a.p.ns, "", u.confVia("silent", nil))
		if o.rc != 0 {
			t.Fatalf("ADD %s through the proxy: rc %d %s %s", cid, o.rc, o.stdout, o.stderr)
		}
		a.prev = o.stdout
		pods = append(pods, a)
	}
	records := e.records()
	u.proxy.Cut()
	for k, mode := range []string{"silent", "refused"} {
		var tCheck, tDel []time.Duration
		for i, a := range pods[k*runs : (k+1)*runs] {
			conf := u.confVia(mode, map[string]any{"prevResult": rawJSON(a.prev)})
			for _, cmd := range []string{"CHECK", "DEL"} {
				start := time.Now()
				o := e.run(cmd, a.cid, a.p.ns, "", conf)
				took := time.Since(start)
				if cmd == "CHECK" {
					tCheck = append(tCheck, took)
				} else {
					tDel = append(tDel, took)
				}
				msg := wantTryAgain(t, o, fmt.Sprintf("%s %s #%d", mode, cmd, i))
				if i == 0 {
					t.Logf("%s %s: %s", mode, cmd, msg)
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
	u.proxy.Restore()
	for _, a := range pods {
		if o := e.run("DEL", a.cid, a.p.ns, "", u.confVia("silent", nil)); o.rc != 0 {
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
