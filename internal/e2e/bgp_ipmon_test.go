package e2e_test

import (
	"bufio"
	"context"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/testutil"
)

// ipMonitor records, per destination, when `ip -ts monitor route` in a
// namespace printed a protocol 12 route appearing and going: the method
// of the BIRD figure (reference/lab.md §4), beside the netlink
// subscription of routeEvents (which timestamps after a hop through the
// netlink library's goroutine).
type ipMonitor struct {
	mu      sync.Mutex
	added   map[netip.Prefix][]time.Time
	deleted map[netip.Prefix][]time.Time
}

func monitorRoutes(b *testing.B, ns string) *ipMonitor {
	b.Helper()
	testutil.RequireCmd(b, "ip")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", filepath.Base(ns), "ip", "-ts", "monitor", "route")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); _ = cmd.Wait() })
	m := &ipMonitor{added: map[netip.Prefix][]time.Time{}, deleted: map[netip.Prefix][]time.Time{}}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			m.record(sc.Text())
		}
	}()
	return m
}

// record parses "[2026-12-07T15:04:21.976123] [Deleted ]<dst> ... proto bird ...".
func (m *ipMonitor) record(line string) {
	if !strings.HasPrefix(line, "[") || !strings.Contains(line, " proto bird") {
		return
	}
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05.000000", line[1:end], time.Local)
	if err != nil {
		return
	}
	f := strings.Fields(line[end+1:])
	del := len(f) > 0 && f[0] == "Deleted"
	if del {
		f = f[1:]
	}
	if len(f) == 0 {
		return
	}
	p, err := netip.ParsePrefix(f[0])
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if del {
		m.deleted[p] = append(m.deleted[p], t)
	} else {
		m.added[p] = append(m.added[p], t)
	}
}

// after is the first time dst was added (or deleted) after t0, waiting
// up to a second for the line.
func (m *ipMonitor) after(dst netip.Prefix, deleted bool, t0 time.Time) (time.Time, bool) {
	var got time.Time
	err := testutil.Poll(time.Second, func() error {
		m.mu.Lock()
		defer m.mu.Unlock()
		ts := m.added[dst]
		if deleted {
			ts = m.deleted[dst]
		}
		for _, t := range ts {
			if t.After(t0) {
				got = t
				return nil
			}
		}
		return context.DeadlineExceeded
	})
	return got, err == nil
}
