package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/version"
)

// runIPAMRelease is `calicoctl ipam release`: one address (--ip), or every
// leak of one or more check reports (--from-report). Reports are applied
// with their handles and sequence numbers, so an address re-allocated
// since the report was made is never released.
func runIPAMRelease(ctx context.Context, e *Env, args []string) error {
	fs := e.newFlagSet("ipam release", "calicoctl ipam release [--ip=<IP>] [--from-report=<REPORT>]... [--config=<CONFIG>] [--force]")
	ip := fs.String("ip", "", "IP address to release")
	reports := fs.StringArray("from-report", nil, "release the leaked addresses and handles of this report (repeat: only leaks found in every report)")
	force := fs.Bool("force", false, "release even if the datastore is not locked or the report is from another calicoctl version")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("calicoctl ipam release: unexpected argument %q", fs.Arg(0))
	}
	if *ip == "" && len(*reports) == 0 {
		return usagef("calicoctl ipam release: give --ip=<IP> or --from-report=<REPORT>")
	}
	var addr netip.Addr
	if *ip != "" {
		var err error
		if addr, err = netip.ParseAddr(*ip); err != nil {
			return usagef("calicoctl ipam release: invalid IP address %q", *ip)
		}
	}
	a, err := e.allocator()
	if err != nil {
		return err
	}
	if len(*reports) > 0 {
		if err := releaseFromReports(ctx, e, a, *reports, *force); err != nil {
			return err
		}
		fmt.Fprintln(e.Stdout, "You may now unlock the data store.")
		return nil
	}
	notAllocated, err := a.ReleaseIPs(ctx, []ipam.ReleaseOptions{{Address: addr}})
	if err != nil {
		return fmt.Errorf("release %s: %w", addr, err)
	}
	if len(notAllocated) != 0 {
		return fmt.Errorf("IP address %s is not assigned", addr)
	}
	fmt.Fprintf(e.Stdout, "Successfully released IP address %s\n", addr)
	return nil
}

func releaseFromReports(ctx context.Context, e *Env, a *ipam.Allocator, files []string, force bool) error {
	c, err := e.Client()
	if err != nil {
		return err
	}
	var guid, rev string
	locked := false
	ci, err := datastore.GetOf[*api.ClusterInformation](ctx, c, api.KindClusterInformation, "", "default")
	switch {
	case err == nil:
		guid, rev, locked = ci.Spec.ClusterGUID, ci.ResourceVersion, !ci.Ready()
	case errors.Is(err, kv.ErrNotFound):
	default:
		return err
	}
	var reports []*ipam.Report
	current := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		r := &ipam.Report{}
		if err := json.Unmarshal(b, r); err != nil {
			return fmt.Errorf("report %s: %v", f, err)
		}
		if r.ClusterGUID != guid {
			return fmt.Errorf("cluster does not match the provided report (%s): mismatched cluster GUID. Refusing to release", f)
		}
		if r.Version != version.Version {
			if !force {
				return fmt.Errorf("the provided report (%s) was produced using a different version (%s) of calicoctl. Refusing to release", f, r.Version)
			}
			fmt.Fprintln(e.Stdout, "WARNING: Report was produced using a different version of calicoctl. Ignoring due to --force option")
		}
		if r.ClusterInfoRevision == rev {
			current = true
		}
		reports = append(reports, r)
	}
	if !current {
		return errors.New("the provided reports are all stale - at least one should be up-to-date. Please generate a new report while the data store is locked and try again")
	}
	if !locked {
		if !force {
			return errors.New("data store is not locked. Either lock the data store, or re-run with --force")
		}
		fmt.Fprintln(e.Stdout, "WARNING: Data store is not locked. Ignoring due to --force option")
	}
	merged := mergeReports(reports)
	leaks := 0
	for _, als := range merged.Allocations {
		leaks += len(als)
	}
	if leaks > 0 {
		fmt.Fprintf(e.Stdout, "Releasing %d old IPs...\n", leaks)
	} else {
		fmt.Fprintln(e.Stdout, "Report didn't contain any leaked IPs to clean up.")
	}
	if len(merged.LeakedHandles) > 0 {
		fmt.Fprintf(e.Stdout, "Deleting %d handles...\n", len(merged.LeakedHandles))
	} else {
		fmt.Fprintln(e.Stdout, "Report didn't contain any handles to clean up.")
	}
	released, free, skipped, handles, err := a.ReleaseFromReport(ctx, merged)
	if leaks > 0 {
		fmt.Fprintf(e.Stdout, "Released %d IPs successfully\n", released)
		if free > 0 {
			fmt.Fprintf(e.Stdout, "%d addresses marked as leaked in the report had already been cleaned up.\n", free)
		}
		if skipped > 0 {
			fmt.Fprintf(e.Stdout, "%d addresses marked as leaked in the report were re-allocated since; they were left alone.\n", skipped)
		}
	}
	if len(merged.LeakedHandles) > 0 {
		fmt.Fprintf(e.Stdout, "Released %d handles; %d skipped; 0 errors.\n", handles, len(merged.LeakedHandles)-handles)
	}
	if err != nil {
		return fmt.Errorf("an error occurred while releasing: %w; problems are often caused by an out-of-date IPAM report, try regenerating it", err)
	}
	return nil
}

// mergeReports keeps only the leaks found in every report: addresses not
// in use in all of them (with the last report's handle and sequence
// number), and leaked handles whose revision did not change between them.
func mergeReports(reports []*ipam.Report) *ipam.Report {
	out := &ipam.Report{Allocations: map[string][]*ipam.Allocation{}}
	for i, r := range reports {
		ips := map[string][]*ipam.Allocation{}
		for ip, als := range r.Allocations {
			if _, ok := out.Allocations[ip]; i > 0 && !ok {
				continue
			}
			for _, al := range als {
				if !al.InUse {
					ips[ip] = append(ips[ip], al)
				}
			}
		}
		out.Allocations = ips
		var hs []ipam.HandleInfo
		for _, h := range r.LeakedHandles {
			if i == 0 {
				hs = append(hs, h)
				continue
			}
			for _, old := range out.LeakedHandles {
				if old.ID == h.ID && old.Revision == h.Revision {
					hs = append(hs, h)
				}
			}
		}
		out.LeakedHandles = hs
	}
	return out
}
