package etcd_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/testutil"
)

// TestPrivilegedProbeMinority: the probe (a local read that requires a
// leader) fails on a member cut off from the other two, as the
// linearizable read it replaced did, and passes again once they are back.
// Once with the client on a follower, once on the leader (which must step
// down). The other two are stopped (SIGSTOP: connections open, nothing
// answers). The detection times of both reads are logged.
func TestPrivilegedProbeMinority(t *testing.T) {
	testutil.RequireRoot(t)
	bin := os.Getenv("CALICO_BIN")
	if bin == "" {
		testutil.Unavailable(t, "needs the make-built binary with the embedded etcd server: run `make test` (CALICO_BIN unset)")
	}
	cl := testutil.StartEtcdCluster(t, bin, 3)
	for _, role := range []string{"follower", "leader"} {
		t.Run(role, func(t *testing.T) {
			ctx := context.Background()
			leader, err := waitLeader(cl)
			if err != nil {
				t.Fatal(err)
			}
			m := leader
			if role == "follower" {
				m = cl.Members[0]
				if m == leader {
					m = cl.Members[1]
				}
			}
			st, err := etcd.New(etcd.Config{Endpoints: []string{m.Endpoint}, CACertFile: cl.CACertFile, CertFile: cl.CertFile, KeyFile: cl.KeyFile})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			probe := func() error {
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				return st.Probe(pctx, "/calico/resources/v3/projectcalico.org/nodes/n1")
			}
			linearizable := func() error {
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				_, err := st.Client().Get(pctx, "/calico/resources/v3/projectcalico.org/nodes/n1")
				return err
			}
			if err := testutil.Poll(10*time.Second, probe); err != nil {
				t.Fatalf("probe on a healthy cluster: %v", err)
			}
			var others []*testutil.EtcdMember
			for _, o := range cl.Members {
				if o != m {
					others = append(others, o)
				}
			}
			for _, o := range others {
				o.Pause()
			}
			cut := time.Now()
			// Both reads as the daemon probes: every second, 2 s deadline.
			detect := map[string]chan string{"probe": make(chan string, 1), "linearizable read": make(chan string, 1)}
			for name, read := range map[string]func() error{"probe": probe, "linearizable read": linearizable} {
				go func() {
					for time.Since(cut) < 30*time.Second {
						next := time.Now().Add(time.Second)
						if err := read(); err != nil {
							detect[name] <- fmt.Sprintf("%s after the cut: %v", time.Since(cut).Round(100*time.Millisecond), err)
							return
						}
						time.Sleep(time.Until(next))
					}
					detect[name] <- ""
				}()
			}
			for _, name := range []string{"probe", "linearizable read"} {
				got := <-detect[name]
				if got == "" {
					t.Fatalf("%s on a %s cut off from the others still answers after 30 s", name, role)
				}
				t.Logf("%s on the %s fails %s", name, role, got)
			}
			for _, o := range others {
				o.Resume()
			}
			if err := testutil.Poll(20*time.Second, probe); err != nil {
				t.Fatalf("probe once the others are back: %v", err)
			}
		})
	}
}

func waitLeader(cl *testutil.EtcdCluster) (*testutil.EtcdMember, error) {
	var leader *testutil.EtcdMember
	err := testutil.Poll(20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		leader, err = cl.Leader(ctx)
		return err
	})
	return leader, err
}
