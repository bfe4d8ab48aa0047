package ctl

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/bgp"
)

// printBGPStatus prints upstream's BGP tables (IPv4, then IPv6) from the
// daemon's status, then what upstream lacks: prefix counts per peer and
// configuration problems.
func printBGPStatus(w io.Writer, s agent.Status, now time.Time) {
	if s.BGP == "" || strings.HasPrefix(s.BGP, "not enabled") {
		fmt.Fprintln(w, "No BGP peers (BGP speaker not enabled)")
		return
	}
	if s.BGP != "running" {
		fmt.Fprintf(w, "The BGP backend process (embedded BGP speaker) is %s.\n", s.BGP)
		printBGPProblems(w, s)
		return
	}
	var v4, v6 []bgp.PeerStatus
	for _, p := range s.BGPPeers {
		if strings.Contains(p.Address, ":") && !strings.Contains(p.Address, ".") {
			v6 = append(v6, p)
		} else {
			v4 = append(v4, p)
		}
	}
	for _, fam := range []struct {
		name  string
		peers []bgp.PeerStatus
	}{{"IPv4", v4}, {"IPv6", v6}} {
		fmt.Fprintf(w, "%s BGP status\n", fam.name)
		if len(fam.peers) == 0 {
			fmt.Fprintf(w, "No %s peers found.\n\n", fam.name)
			continue
		}
		rows := [][]string{{"PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"}}
		for _, p := range fam.peers {
			rows = append(rows, []string{p.Address, string(p.Type), birdState(p), since(p.Since, now), p.State})
		}
		writeTable(w, rows)
		fmt.Fprintln(w)
	}
	if len(s.BGPPeers) > 0 {
		fmt.Fprintln(w, "Prefixes per peer (received / accepted / advertised, in the session's family):")
		for _, p := range s.BGPPeers {
			fmt.Fprintf(w, "  %-15s %d / %d / %d  flaps %d\n", p.Address, p.Received, p.Accepted, p.Advertised, p.Flaps)
		}
	}
	printBGPProblems(w, s)
}

func printBGPProblems(w io.Writer, s agent.Status) {
	for _, p := range s.BGPPeers {
		if p.Info != "" {
			fmt.Fprintf(w, "Peer %s is kept down: %s\n", p.Address, p.Info)
		}
	}
	for _, p := range s.BGPProblems {
		fmt.Fprintf(w, "BGP configuration problem: %s\n", p)
	}
}

// birdState is BIRD's protocol state column: up when Established, down
// when the session is disabled, start otherwise.
func birdState(p bgp.PeerStatus) string {
	switch {
	case p.State == "Established":
		return "up"
	case p.Info != "":
		return "down"
	}
	return "start"
}

// since is BIRD's time column: the time of day for today, else the date.
func since(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.Local()
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format("15:04:05")
	}
	return t.Format("2006-01-02")
}

// writeTable renders rows like upstream's table writer: a rule, the
// centred header, a rule, the left-aligned rows, a rule.
func writeTable(w io.Writer, rows [][]string) {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	rule := "+"
	for _, n := range width {
		rule += strings.Repeat("-", n+2) + "+"
	}
	line := func(r []string, centre bool) string {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range r {
			gap := width[i] - len(c)
			left := 0
			if centre {
				left = gap / 2
			}
			fmt.Fprintf(&b, " %s%s%s |", strings.Repeat(" ", left), c, strings.Repeat(" ", gap-left))
		}
		return b.String()
	}
	fmt.Fprintln(w, rule)
	fmt.Fprintln(w, line(rows[0], true))
	fmt.Fprintln(w, rule)
	for _, r := range rows[1:] {
		fmt.Fprintln(w, line(r, false))
	}
	fmt.Fprintln(w, rule)
}
