package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/version"
)

// runIPAMCheck is `calicoctl ipam check`: it cross-checks blocks,
// affinities, handles, pools, nodes and workload endpoints, prints what it
// found in upstream's words, and with -o writes upstream's JSON report,
// which `ipam release --from-report` consumes.
func runIPAMCheck(ctx context.Context, e *Env, args []string) error {
	fs := e.newFlagSet("ipam check", "calicoctl ipam check [--config=<CONFIG>] [--show-all-ips] [--show-problem-ips] [-o <FILE>]")
	out := fs.StringP("output", "o", "", "path to write the report file to")
	showAll := fs.Bool("show-all-ips", false, "print every IP that is checked")
	showProblems := fs.Bool("show-problem-ips", false, "print every IP that is leaked or not allocated properly")
	fs.String("kubeconfig", "", "accepted for compatibility (not used: etcd mode needs no Kubernetes)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("calicoctl ipam check: unexpected argument %q", fs.Arg(0))
	}
	a, err := e.allocator()
	if err != nil {
		return err
	}
	r, err := a.Check(ctx, ipam.CheckOptions{Version: version.Version})
	if err != nil {
		return err
	}
	printCheck(e.Stdout, r, *showAll, *showAll || *showProblems)
	if *out != "" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

// printCheck prints the check's progress and findings with upstream's
// lines, followed by ours.
func printCheck(w io.Writer, r *ipam.Report, showAll, showProblems bool) {
	p := r.Problems
	if p == nil {
		p = &ipam.Problems{}
	}
	s := &r.Summary
	lines := func(ls []string) {
		if showProblems {
			for _, l := range ls {
				fmt.Fprintf(w, "  %s\n", l)
			}
		}
	}
	fmt.Fprint(w, "Checking IPAM for inconsistencies...\n\n")
	fmt.Fprintln(w, "Loading all IPAM blocks...")
	fmt.Fprintf(w, "Found %d IPAM blocks.\n", len(s.Blocks))
	for _, b := range s.Blocks {
		fmt.Fprintf(w, " IPAM block %s:\n", b)
	}
	if showAll {
		for _, ip := range sortedReportIPs(r) {
			for _, al := range r.Allocations[ip] {
				fmt.Fprintf(w, "  %s allocated; attrs %s\n", ip, al.Attrs)
			}
		}
	}
	fmt.Fprintf(w, "IPAM blocks record %d allocations.\n", s.NumAllocations)
	if s.Cooling > 0 {
		fmt.Fprintf(w, "%d released IPs are cooling down (ipCooldownSeconds): neither allocated nor leaked.\n", s.Cooling)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Loading all IPAM pools...")
	for _, c := range s.ActivePools {
		fmt.Fprintf(w, "  %s\n", c)
	}
	fmt.Fprintf(w, "Found %d active IP pools.\n\n", len(s.ActivePools))
	fmt.Fprintln(w, "Loading all nodes.")
	fmt.Fprintf(w, "Found %d node tunnel IPs.\n\n", s.NodeIPs)
	fmt.Fprintln(w, "Loading all workload endpoints.")
	fmt.Fprintf(w, "Found %d workload IPs.\n", s.WorkloadIPs)
	fmt.Fprintf(w, "Workloads and nodes are using %d IPs.\n\n", s.InUseIPs)

	const top = 20
	fmt.Fprintf(w, "Looking for top (up to %d) nodes by allocations...\n", top)
	nodes := make([]string, 0, len(s.NodeAllocations))
	for n := range s.NodeAllocations {
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool {
		a, b := s.NodeAllocations[nodes[i]], s.NodeAllocations[nodes[j]]
		return a > b || (a == b && nodes[i] < nodes[j])
	})
	for i, n := range nodes {
		if i >= top {
			break
		}
		fmt.Fprintf(w, "  %s has %d allocations\n", n, s.NodeAllocations[n])
	}
	if len(nodes) > 0 {
		fmt.Fprintf(w, "Node with most allocations has %d; median is %d\n", s.NodeAllocations[nodes[0]], s.NodeAllocations[nodes[len(nodes)/2]])
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "Scanning for IPs that are allocated but not actually in use...")
	lines(p.AllocatedNotInUse)
	fmt.Fprintf(w, "Found %d IPs that are allocated in IPAM but not actually in use.\n", len(p.AllocatedNotInUse))
	fmt.Fprintln(w, "Scanning for IPs that are in use by a workload or node but not allocated in IPAM...")
	lines(p.MultipleOwners)
	lines(p.InUseOutsidePools)
	lines(p.InUseNotAllocated)
	fmt.Fprintf(w, "Found %d in-use IPs that are not in active IP pools.\n", len(p.InUseOutsidePools))
	fmt.Fprintf(w, "Found %d in-use IPs that are in active IP pools but have no corresponding IPAM allocation.\n\n", len(p.InUseNotAllocated))

	fmt.Fprintln(w, "Scanning for IPAM handles with no matching IPs...")
	if showAll {
		for _, h := range r.LeakedHandles {
			fmt.Fprintf(w, "  %s doesn't have any active IPs.\n", h.ID)
		}
	}
	fmt.Fprintf(w, "Found %d handles with no matching IPs (and %d handles with matches).\n", len(r.LeakedHandles), s.GoodHandles)
	fmt.Fprintln(w, "Scanning for IPs with missing handle...")
	lines(p.MissingHandles)
	fmt.Fprintf(w, "Found %d handles mentioned in blocks with no matching handle resource.\n", len(p.MissingHandles))

	// Checks upstream does not make.
	fmt.Fprintln(w, "Scanning for IPs with multiple owners or allocations...")
	lines(p.DuplicateAllocations)
	fmt.Fprintf(w, "Found %d IPs with multiple owners and %d IPs allocated more than once.\n", len(p.MultipleOwners), len(p.DuplicateAllocations))
	fmt.Fprintln(w, "Scanning for allocations outside every IP pool...")
	lines(p.AllocatedOutsidePools)
	fmt.Fprintf(w, "Found %d allocated IPs that are in no IP pool.\n", len(p.AllocatedOutsidePools))
	fmt.Fprintln(w, "Scanning for handle counts that disagree with the blocks...")
	lines(p.HandleCounts)
	fmt.Fprintf(w, "Found %d handle counts that disagree with the blocks.\n", len(p.HandleCounts))
	fmt.Fprintln(w, "Scanning block affinities...")
	lines(p.Affinities)
	lines(p.BlocksOfMissingNodes)
	lines(p.InvalidBlocks)
	if showAll {
		for _, l := range s.PendingAffinities {
			fmt.Fprintf(w, "  %s (an unfinished claim; harmless)\n", l)
		}
	}
	fmt.Fprintf(w, "Found %d affinity inconsistencies, %d blocks affine to nodes that do not exist and %d invalid blocks.\n",
		len(p.Affinities), len(p.BlocksOfMissingNodes), len(p.InvalidBlocks))
	fmt.Fprintf(w, "Check complete; found %d problems.\n", r.Total())
}

func sortedReportIPs(r *ipam.Report) []string {
	out := make([]string, 0, len(r.Allocations))
	for ip := range r.Allocations {
		out = append(out, ip)
	}
	sort.Strings(out)
	return out
}
