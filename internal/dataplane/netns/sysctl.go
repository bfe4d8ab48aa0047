package netns

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Sysctl is one kernel parameter to write. Key is the path below /proc/sys
// with slashes, e.g. "net/ipv4/conf/vxlan.calico/forwarding": the slash form
// keeps interface names that contain dots unambiguous.
type Sysctl struct {
	Key   string
	Value string
}

// SysctlKey joins path elements into a Sysctl key, e.g.
// SysctlKey("net", "ipv4", "conf", "vxlan.calico", "forwarding").
func SysctlKey(elem ...string) string { return strings.Join(elem, "/") }

// SetSysctl writes value to /proc/sys/<key> inside the network namespace at
// nsPath ("" = the calling thread's). key uses slashes (see Sysctl).
func SetSysctl(nsPath, key, value string) error {
	return SetSysctls(nsPath, Sysctl{Key: key, Value: value})
}

// SetSysctls writes several parameters with a single namespace switch. It
// stops at the first failure.
func SetSysctls(nsPath string, settings ...Sysctl) error {
	for _, s := range settings {
		if err := checkKey(s.Key); err != nil {
			return err
		}
	}
	return Do(nsPath, func() error {
		for _, s := range settings {
			if err := writeSysctl(s.Key, s.Value); err != nil {
				return err
			}
		}
		return nil
	})
}

// GetSysctl reads /proc/sys/<key> inside the network namespace at nsPath,
// without the trailing newline.
func GetSysctl(nsPath, key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	var v string
	err := Do(nsPath, func() error {
		b, err := os.ReadFile("/proc/sys/" + key)
		if err != nil {
			return fmt.Errorf("read sysctl %s: %w", key, err)
		}
		v = strings.TrimRight(string(b), "\n")
		return nil
	})
	return v, err
}

// ErrBadSysctlKey is returned (wrapped) for keys that are not a plain
// relative slash path below /proc/sys.
var ErrBadSysctlKey = errors.New("bad sysctl key")

func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || !strings.Contains(key, "/") {
		return fmt.Errorf("sysctl key %q (want a slash path such as net/ipv4/ip_forward): %w", key, ErrBadSysctlKey)
	}
	for _, e := range strings.Split(key, "/") {
		if e == "" || e == "." || e == ".." {
			return fmt.Errorf("sysctl key %q: %w", key, ErrBadSysctlKey)
		}
	}
	return nil
}

func writeSysctl(key, value string) error {
	f, err := os.OpenFile("/proc/sys/"+key, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", key, value, err)
	}
	_, werr := f.WriteString(value)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", key, value, err)
	}
	return nil
}
