package netns_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/testutil"
)

func nsIno(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestPrivilegedSysctlInNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip")
	ns := testutil.NewNetNS(t)
	h := testutil.Handle(t, ns)
	la := netlink.NewLinkAttrs()
	la.Name = "vx.dot"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "peer.dot"}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	want := "1"
	if strings.TrimSpace(string(before)) == "1" {
		want = "0"
	}
	if err := netns.SetSysctls(ns,
		netns.Sysctl{Key: "net/ipv4/ip_forward", Value: want},
		netns.Sysctl{Key: netns.SysctlKey("net", "ipv4", "conf", "vx.dot", "proxy_arp"), Value: "1"},
	); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(testutil.RunIn(t, ns, "cat", "/proc/sys/net/ipv4/ip_forward")); got != want {
		t.Errorf("ip_forward in netns = %q, want %q", got, want)
	}
	if got := strings.TrimSpace(testutil.RunIn(t, ns, "cat", "/proc/sys/net/ipv4/conf/vx.dot/proxy_arp")); got != "1" {
		t.Errorf("proxy_arp of vx.dot = %q, want 1", got)
	}
	if got, err := netns.GetSysctl(ns, "net/ipv4/conf/vx.dot/proxy_arp"); err != nil || got != "1" {
		t.Errorf("GetSysctl = %q, %v", got, err)
	}
	after, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if string(after) != string(before) {
		t.Errorf("root namespace ip_forward changed from %q to %q", before, after)
	}
}

func TestSysctlKeyMustBeSlashPath(t *testing.T) {
	for _, k := range []string{"net.ipv4.ip_forward", "", "/net/ipv4/ip_forward", "net/../../etc/passwd", "net//x"} {
		if err := netns.SetSysctl("", k, "1"); !errors.Is(err, netns.ErrBadSysctlKey) {
			t.Errorf("SetSysctl(%q) = %v, want ErrBadSysctlKey", k, err)
		}
	}
}

func TestPrivilegedDoReturnsToOriginalNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	ns := testutil.NewNetNS(t)
	self := nsIno(t, "/proc/self/ns/net")
	target := nsIno(t, ns)
	for range 20 {
		var inside uint64
		err := netns.Do(ns, func() error {
			inside = nsIno(t, "/proc/thread-self/ns/net")
			return errors.New("boom")
		})
		if err == nil || err.Error() != "boom" {
			t.Fatalf("Do error = %v, want fn's error", err)
		}
		if inside != target {
			t.Fatalf("fn ran in netns %d, want %d", inside, target)
		}
		if got := nsIno(t, "/proc/thread-self/ns/net"); got != self {
			t.Fatalf("caller thread is in netns %d after Do, want %d", got, self)
		}
	}
	var cur uint64
	if err := netns.Do("", func() error { cur = nsIno(t, "/proc/thread-self/ns/net"); return nil }); err != nil || cur != self {
		t.Errorf(`Do("") ran in %d (%v), want the current netns %d`, cur, err, self)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := netns.Open("/nonexistent/netns"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want fs.ErrNotExist", err)
	}
	plain := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := netns.Open(plain); !errors.Is(err, netns.ErrNotNetNS) {
		t.Errorf("Open(plain file) = %v, want ErrNotNetNS", err)
	}
	if err := netns.Do(plain, func() error { t.Error("fn ran"); return nil }); !errors.Is(err, netns.ErrNotNetNS) {
		t.Errorf("Do(plain file) = %v, want ErrNotNetNS", err)
	}
}
