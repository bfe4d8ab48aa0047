package cni

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

var specVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// TestSpecVersions: through libcni as a runtime drives it, ADD, CHECK
// (from 0.4.0, the first spec with CHECK) and DEL work for every spec
// version, with a single-plugin netconf and with a conflist; the result
// comes back in the requested version; DEL leaves nothing behind.
func TestSpecVersions(t *testing.T) {
	e := newEnv(t)
	for _, v := range specVersions {
		for _, form := range []string{"conf", "list"} {
			p := e.newPod("v" + strings.ReplaceAll(v, ".", "") + form)
			var err error
			switch form {
			case "conf":
				conf := e.conf(v, nil)
				res, aerr := e.add(conf, p)
				if aerr != nil {
					t.Fatalf("%s %s ADD: %v", v, form, aerr)
				}
				if res.Version() != v {
					t.Errorf("%s %s: result version %s", v, form, res.Version())
				}
				ping(t, e.node, podAddr(t, res).String())
				if v >= "0.4.0" {
					if err := e.check(conf, p); err != nil {
						t.Errorf("%s %s CHECK: %v", v, form, err)
					}
				}
				err = e.del(conf, p)
			case "list":
				list := e.list(v)
				res, aerr := e.addList(list, p)
				if aerr != nil {
					t.Fatalf("%s %s ADD: %v", v, form, aerr)
				}
				if res.Version() != v {
					t.Errorf("%s %s: result version %s", v, form, res.Version())
				}
				if v >= "0.4.0" {
					if err := e.checkList(list, p); err != nil {
						t.Errorf("%s %s CHECK: %v", v, form, err)
					}
				}
				err = e.delList(list, p)
			}
			if err != nil {
				t.Fatalf("%s %s DEL: %v", v, form, err)
			}
			e.requireClean(t)
		}
	}
}

// TestCNIVersionsNegotiation: a conflist that offers cniVersions (spec
// 1.1) and no cniVersion is run at the highest version libcni and the
// plugin share, 1.1.0, including STATUS and GC.
func TestCNIVersionsNegotiation(t *testing.T) {
	e := newEnv(t)
	list := mustJSON(t, map[string]any{"cniVersions": []string{"0.4.0", "1.0.0", "1.1.0"}, "name": netName, "plugins": []any{e.plugin(nil)}})
	p := e.newPod("negotiated")
	res, err := e.addList(list, p)
	if err != nil {
		t.Fatal(err)
	}
	if res.Version() != "1.1.0" || !strings.Contains(e.rec.last("calico", "ADD").stdout, `"cniVersion": "1.1.0"`) {
		t.Fatalf("negotiated version %s, stdout %s", res.Version(), e.rec.last("calico", "ADD").stdout)
	}
	if err := e.checkList(list, p); err != nil {
		t.Fatal(err)
	}
	err = e.inNode(func() error {
		l, err := libcni.ConfListFromBytes(list)
		if err != nil {
			return err
		}
		ctx, cancel := e.ctx()
		defer cancel()
		if err := e.cni.GetStatusNetworkList(ctx, l); err != nil {
			return err
		}
		// The pod is still valid: GC keeps it.
		return e.cni.GCNetworkList(ctx, l, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: "negotiated", IfName: "eth0"}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := e.rec.last("calico", "STATUS"); c.err != nil || c.command != "STATUS" {
		t.Fatalf("STATUS was not run: %+v", c)
	}
	if c := e.rec.last("calico", "GC"); c.command != "GC" || c.err != nil {
		t.Fatalf("GC was not run: %+v", c)
	}
	if keys := e.wepKeys(); len(keys) != 1 {
		t.Fatalf("GC removed a valid attachment: endpoints %v", keys)
	}
	if err := e.delList(list, p); err != nil {
		t.Fatal(err)
	}
	e.requireClean(t)
}

// TestVersionCommand: VERSION lists the spec versions the plugin speaks.
func TestVersionCommand(t *testing.T) {
	e := newEnv(t)
	o := e.run("VERSION", "", "", "", nil)
	var v struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	if o.rc != 0 || json.Unmarshal([]byte(o.stdout), &v) != nil || strings.Join(v.SupportedVersions, ",") != strings.Join(specVersions, ",") {
		t.Fatalf("VERSION: %+v", o)
	}
	err := e.inNode(func() error {
		info, err := e.cni.GetVersionInfo(context.Background(), "calico")
		if err != nil {
			return err
		}
		if strings.Join(info.SupportedVersions(), ",") != strings.Join(specVersions, ",") {
			t.Errorf("libcni sees versions %v", info.SupportedVersions())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
