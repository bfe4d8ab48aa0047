package cni

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/testutil"
)

// TestGCReclaimsCooledAddresses: with an IP cooldown, DEL leaves the
// address marked releasedAt; a GC after the cooldown puts it back on the
// block's free list.
func TestGCReclaimsCooledAddresses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := ipam.New(e.store, ipam.Options{})
	cfg, err := a.GetConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg.IPCooldownSeconds = 1
	if err := a.SetConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	conf := e.conf("1.1.0", nil)
	p := e.newPod("cool")
	if _, err := e.add(conf, p); err != nil {
		t.Fatal(err)
	}
	if err := e.del(conf, p); err != nil {
		t.Fatal(err)
	}
	cooling := func() int {
		r, err := a.Check(ctx, ipam.CheckOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Summary.Cooling
	}
	if n := cooling(); n != 1 {
		t.Fatalf("%d cooling addresses after DEL, want 1", n)
	}
	gc := e.conf("1.1.0", map[string]any{"cni.dev/valid-attachments": []map[string]string{}})
	testutil.Eventually(t, 10*time.Second, func() error {
		if o := e.run("GC", "", "", "", gc); o.rc != 0 {
			return fmt.Errorf("GC: %+v", o)
		}
		if n := cooling(); n != 0 {
			return fmt.Errorf("%d still cooling", n)
		}
		return nil
	})
	items, _, err := e.store.List(ctx, api.IPAMBlockPrefix)
	if err != nil || len(items) == 0 {
		t.Fatalf("blocks: %d, %v", len(items), err)
	}
	for _, kv := range items {
		if strings.Contains(string(kv.Value), "releasedAt") {
			t.Fatalf("releasedAt left after GC: %s", kv.Value)
		}
	}
}
