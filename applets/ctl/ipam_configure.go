package ctl

import (
	"context"
	"fmt"
	"strconv"
)

// runIPAMConfigure is `calicoctl ipam configure`: it changes the IPAM
// config (/calico/ipam/v2/config) with upstream's rules.
func runIPAMConfigure(ctx context.Context, e *Env, args []string) error {
	fs := e.newFlagSet("ipam configure", "calicoctl ipam configure [--strictaffinity=<true/false>] [--max-blocks-per-host=<number>] [--kubevirt-ip-persistence=<Enabled|Disabled>] [--ip-cooldown-seconds=<number>] [--config=<CONFIG>]")
	strict := fs.String("strictaffinity", "", "true forbids borrowing addresses from other hosts' blocks")
	maxBlocks := fs.String("max-blocks-per-host", "", "the maximum number of blocks a host may own (needs strict affinity)")
	persistence := fs.String("kubevirt-ip-persistence", "", "Enabled or Disabled")
	cooldown := fs.String("ip-cooldown-seconds", "", "how long a released address stays unused before it is handed out again (0 = at once)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("calicoctl ipam configure: unexpected argument %q", fs.Arg(0))
	}
	if *strict == "" && *maxBlocks == "" && *persistence == "" && *cooldown == "" {
		return usagef("calicoctl ipam configure: at least one configuration option must be specified")
	}
	var sa *bool
	if *strict != "" {
		v, err := strconv.ParseBool(*strict)
		if err != nil {
			return usagef("invalid value. Use true or false to set strictaffinity")
		}
		sa = &v
	}
	var mb *int
	if *maxBlocks != "" {
		v, err := strconv.ParseInt(*maxBlocks, 10, 32)
		if err != nil || v < 0 {
			return usagef("invalid value for max-blocks-per-host. Use a valid number (0 means no limit beyond the default of 20)")
		}
		n := int(v)
		mb = &n
	}
	var cd *int
	if *cooldown != "" {
		v, err := strconv.ParseInt(*cooldown, 10, 32)
		if err != nil || v < 0 {
			return usagef("invalid value for ip-cooldown-seconds. Use a number of seconds, 0 or more")
		}
		n := int(v)
		cd = &n
	}
	if *persistence != "" && *persistence != "Enabled" && *persistence != "Disabled" {
		return usagef("invalid value for --kubevirt-ip-persistence. Use Enabled or Disabled")
	}
	a, err := e.allocator()
	if err != nil {
		return err
	}
	c, err := a.GetConfig(ctx)
	if err != nil {
		return err
	}
	if sa != nil {
		c.StrictAffinity = *sa
	}
	if mb != nil {
		c.MaxBlocksPerHost = *mb
	}
	if *persistence != "" {
		c.KubeVirtVMAddressPersistence = *persistence
	}
	if cd != nil {
		c.IPCooldownSeconds = *cd
	}
	if err := a.SetConfig(ctx, c); err != nil {
		return err
	}
	if sa != nil {
		fmt.Fprintln(e.Stdout, "Successfully set StrictAffinity to:", *sa)
	}
	if mb != nil {
		fmt.Fprintln(e.Stdout, "Successfully set MaxBlocksPerHost to:", *mb)
	}
	if *persistence != "" {
		fmt.Fprintln(e.Stdout, "Successfully set KubeVirtVMAddressPersistence to:", *persistence)
	}
	if cd != nil {
		fmt.Fprintln(e.Stdout, "Successfully set IPCooldownSeconds to:", *cd)
	}
	return nil
}
