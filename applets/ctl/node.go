package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/onecalico/calico/internal/agent"
)

// runNode dispatches `calicoctl node <command>`.
func runNode(ctx context.Context, e *Env, args []string) error {
	const usage = "Usage:\n  calicoctl node status [--run-dir=<DIR>]\n  calicoctl node checksystem\n\nCommands:\n    status         Show the status of the calico-node daemon on this host.\n    checksystem    Verify what this kernel can do for Calico (VXLAN, IPIP, nftables, WireGuard)."
	if len(args) == 0 {
		return usagef("%s", usage)
	}
	switch args[0] {
	case "status":
		return runNodeStatus(ctx, e, args[1:])
	case "checksystem":
		return runCheckSystem(ctx, e, args[1:])
	case "-h", "--help":
		fmt.Fprintln(e.Stdout, usage)
		return nil
	}
	return usagef("Invalid node command: %q\n%s", args[0], usage)
}

// runNodeStatus asks the local daemon over its control socket. Like
// upstream it says whether the Calico process runs (exit 1 if not), then
// the daemon's state. BGP peers come with the BGP speaker; until then it
// says so.
func runNodeStatus(ctx context.Context, e *Env, args []string) error {
	fs := e.newFlagSet("node status", "calicoctl node status [--run-dir=<DIR>]")
	def := agent.DefaultRunDir
	if v := e.Getenv("CALICO_RUN_DIR"); v != "" {
		def = v
	}
	runDir := fs.String("run-dir", def, "run directory of calico-node (env CALICO_RUN_DIR)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path := filepath.Join(*runDir, agent.ControlSocketName)
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := agent.QueryStatus(qctx, path)
	if errors.Is(err, agent.ErrNotRunning) {
		fmt.Fprintln(e.Stdout, "Calico process is not running.")
		return fmt.Errorf("no calico-node answers on %s", path)
	}
	if err != nil {
		return err
	}
	printNodeStatus(e.Stdout, s)
	return nil
}

func printNodeStatus(w io.Writer, s agent.Status) {
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	fmt.Fprintln(w, "Calico process is running.")
	fmt.Fprintln(w)
	row := func(k, v string) { fmt.Fprintf(w, "%-18s%s\n", k+":", v) }
	row("Node", s.NodeName)
	if s.IPv4Address != "" {
		row("IPv4 address", s.IPv4Address)
	}
	if s.IPv6Address != "" {
		row("IPv6 address", s.IPv6Address)
	}
	row("Version", s.Version)
	row("Live", yesNo(s.Live))
	ready := yesNo(s.Ready)
	if !s.LastApply.IsZero() {
		ready += fmt.Sprintf(" (last dataplane apply %s)", s.LastApply.UTC().Format(time.RFC3339))
	}
	row("Ready", ready)
	if s.Datastore != "" {
		row("Datastore", s.Datastore)
	}
	row("Local endpoints", fmt.Sprint(s.LocalWorkloads))
	row("Routes", fmt.Sprint(s.Routes))
	row("VXLAN peers", fmt.Sprint(s.VTEPs))
	if s.IPv6Address != "" || s.RoutesV6 > 0 || s.VTEPsV6 > 0 {
		row("IPv6 routes", fmt.Sprintf("%d (of the %d)", s.RoutesV6, s.Routes))
		row("IPv6 VXLAN peers", fmt.Sprint(s.VTEPsV6))
	}
	if len(s.Degraded) == 0 {
		row("Degraded", "none")
	} else {
		row("Degraded", s.Degraded[0])
		for _, d := range s.Degraded[1:] {
			fmt.Fprintf(w, "%-18s%s\n", "", d)
		}
	}
	if len(s.Errors) > 0 {
		row("Errors", strings.Join(s.Errors, "; "))
	}
	fmt.Fprintln(w)
	printBGPStatus(w, s, time.Now())
}
