package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"time"

	"github.com/onecalico/calico/internal/ipam"
)

// ipamUsage is `calicoctl ipam --help`.
const ipamUsage = `Usage:
  calicoctl ipam <command> [<args>...]

    check        Check the integrity of the IPAM datastructures.
    release      Release a Calico assigned IP address.
    show         Show details of a Calico configuration,
                 assigned IP address, or of overall IP usage.
    configure    Configure IPAM
    split        Split an IP pool into smaller IP pools.

Options:
  -h --help      Show this screen.

Description:
  IP address management commands for Calico.

  See 'calicoctl ipam <command> --help' to read about a specific subcommand.
`

// runIPAM is the `ipam` verb: it dispatches to its subcommands.
func runIPAM(ctx context.Context, e *Env, args []string) error {
	if len(args) == 0 {
		return usagef("%s", ipamUsage)
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(e.Stdout, ipamUsage)
		return nil
	case "show":
		return runIPAMShow(ctx, e, args[1:])
	case "check":
		return runIPAMCheck(ctx, e, args[1:])
	case "release":
		return runIPAMRelease(ctx, e, args[1:])
	case "configure":
		return runIPAMConfigure(ctx, e, args[1:])
	case "split":
		return runIPAMSplit(ctx, e, args[1:])
	}
	return usagef("Invalid option: 'calicoctl ipam %s'.\n\n%s", args[0], ipamUsage)
}

// allocator connects to the datastore and returns an IPAM allocator on it.
func (e *Env) allocator() (*ipam.Allocator, error) {
	s, err := e.KV()
	if err != nil {
		return nil, err
	}
	return ipam.New(s, ipam.Options{}), nil
}

func runIPAMShow(ctx context.Context, e *Env, args []string) error {
	fs := e.newFlagSet("ipam show", "calicoctl ipam show [--ip=<IP> | --show-blocks | --show-borrowed | --show-configuration] [--config=<CONFIG>]")
	ip := fs.String("ip", "", "report whether this IP address is in use, and who holds it")
	showBlocks := fs.Bool("show-blocks", false, "show the blocks of each pool as well")
	showBorrowed := fs.Bool("show-borrowed", false, "show the addresses borrowed from other nodes' blocks")
	showConfig := fs.Bool("show-configuration", false, "show the IPAM configuration")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("calicoctl ipam show: unexpected argument %q", fs.Arg(0))
	}
	n := 0
	for _, set := range []bool{*ip != "", *showBlocks, *showBorrowed, *showConfig} {
		if set {
			n++
		}
	}
	if n > 1 {
		return usagef("calicoctl ipam show: --ip, --show-blocks, --show-borrowed and --show-configuration are mutually exclusive")
	}
	var addr netip.Addr
	if *ip != "" {
		var err error
		if addr, err = netip.ParseAddr(*ip); err != nil {
			return usagef("calicoctl ipam show: invalid IP address %q", *ip)
		}
	}
	a, err := e.allocator()
	if err != nil {
		return err
	}
	switch {
	case *ip != "":
		return showIP(ctx, e.Stdout, a, addr)
	case *showBorrowed:
		return showBorrowedIPs(ctx, e.Stdout, a)
	case *showConfig:
		return showIPAMConfig(ctx, e.Stdout, a)
	}
	return showUsage(ctx, e.Stdout, a, *showBlocks)
}

func showIP(ctx context.Context, w io.Writer, a *ipam.Allocator, addr netip.Addr) error {
	info, err := a.Lookup(ctx, addr)
	var cooling *ipam.CoolingError
	if errors.As(err, &cooling) {
		fmt.Fprintf(w, "%s is not assigned: released at %s, cooling down until %s (ipCooldownSeconds %d)\n", addr,
			cooling.ReleasedAt.UTC().Format(time.RFC3339), cooling.ReusableAt.UTC().Format(time.RFC3339), cooling.Seconds)
		return nil
	}
	if errors.Is(err, ipam.ErrNotAllocated) {
		fmt.Fprintf(w, "%s is not assigned\n", addr)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "IP %s is in use\n", addr)
	if info.HandleID != nil {
		fmt.Fprintf(w, "Handle ID: %s\n", *info.HandleID)
	} else {
		fmt.Fprintln(w, "Handle ID: <none>")
	}
	if len(info.Attrs) == 0 {
		fmt.Fprintln(w, "No Active Owner attributes defined")
		return nil
	}
	keys := make([]string, 0, len(info.Attrs))
	for k := range info.Attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(w, "Active Owner Attributes:")
	for _, k := range keys {
		fmt.Fprintf(w, "  %s: %s\n", k, info.Attrs[k])
	}
	return nil
}

// usageRow renders one row of the utilisation table as upstream does:
// counts with %.5g and rounded percentages. Cooling addresses (IP
// cooldown) are neither in use nor free.
func usageRow(kind, cidr string, capacity float64, inUse, cooling int) []string {
	pct := func(n float64) string {
		return fmt.Sprintf("%.5g (%.f%%)", n, 100*n/capacity)
	}
	return []string{kind, cidr, fmt.Sprintf("%.5g", capacity), pct(float64(inUse)), pct(capacity - float64(inUse) - float64(cooling))}
}

func showUsage(ctx context.Context, w io.Writer, a *ipam.Allocator, showBlocks bool) error {
	usage, err := a.Usage(ctx)
	if err != nil {
		return err
	}
	var rows [][]string
	cooling := 0
	for _, p := range usage {
		cooling += p.Cooling
		if p.CIDR.IsValid() {
			rows = append(rows, usageRow("IP Pool", p.CIDR.String(), p.Capacity, p.InUse, p.Cooling))
		}
		if showBlocks {
			for _, b := range p.Blocks {
				rows = append(rows, usageRow("Block", b.CIDR.String(), float64(b.Capacity), b.InUse, b.Cooling))
			}
		}
	}
	renderBoxTable(w, []string{"GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS FREE"}, rows)
	if cooling > 0 {
		fmt.Fprintf(w, "%d released IP(s) are cooling down (ipCooldownSeconds): neither in use nor free until the cooldown passes.\n", cooling)
	}
	return nil
}

func showBorrowedIPs(ctx context.Context, w io.Writer, a *ipam.Allocator) error {
	borrowed, unclassified, err := a.Borrowed(ctx)
	if err != nil {
		return err
	}
	rows := make([][]string, len(borrowed))
	for i, b := range borrowed {
		rows[i] = []string{b.Addr.String(), b.BorrowingNode, b.Block.String(), b.BlockOwner, b.Type, b.AllocatedTo}
	}
	renderBoxTable(w, []string{"IP", "BORROWING-NODE", "BLOCK", "BLOCK OWNER", "TYPE", "ALLOCATED-TO"}, rows)
	if unclassified != 0 {
		fmt.Fprintf(w, "\nNote: found %d IP allocations without an explicit node association. Unable to determine if they are borrowed.\n", unclassified)
	}
	return nil
}

func showIPAMConfig(ctx context.Context, w io.Writer, a *ipam.Allocator) error {
	c, err := a.GetConfig(ctx)
	if err != nil {
		return err
	}
	rows := [][]string{
		{"StrictAffinity", fmt.Sprint(c.StrictAffinity)},
		{"AutoAllocateBlocks", fmt.Sprint(c.AutoAllocateBlocks)},
		{"MaxBlocksPerHost", fmt.Sprint(c.MaxBlocksPerHost)},
		{"KubeVirtVMAddressPersistence", c.KubeVirtVMAddressPersistence},
	}
	if c.IPCooldownSeconds != 0 { // the row of upstream master; older releases have no cooldown
		rows = append(rows, []string{"IPCooldownSeconds", fmt.Sprint(c.IPCooldownSeconds)})
	}
	renderBoxTable(w, []string{"PROPERTY", "VALUE"}, rows)
	return nil
}
