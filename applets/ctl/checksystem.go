package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/onecalico/calico/internal/dataplane/probe"
)

// runCheckSystem is `calicoctl node checksystem`: what this kernel can and
// cannot do for Calico, found by trying it in a throwaway network
// namespace. Exit 1 when something required is missing.
func runCheckSystem(_ context.Context, e *Env, args []string) error {
	fs := e.newFlagSet("node checksystem", "calicoctl node checksystem")
	fs.String("kernel-config", "", "accepted for compatibility (features are probed, not read from the kernel config)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("calicoctl node checksystem: unexpected argument %q", fs.Arg(0))
	}
	return printCheckSystem(e.Stdout, probe.KernelRelease(), probe.Run())
}

func printCheckSystem(w io.Writer, release string, features []probe.Feature) error {
	fmt.Fprintln(w, "Checking kernel version...")
	fmt.Fprintf(w, "\t\t%-20s\t\tOK\n", release)
	fmt.Fprintln(w, "Checking kernel features...")
	missing, unknown := 0, 0
	for _, f := range features {
		result := "OK"
		switch {
		case f.Unknown:
			result = "UNKNOWN"
		case !f.OK && f.Required:
			result = "FAIL"
		case !f.OK:
			result = "NOT AVAILABLE"
		}
		fmt.Fprintf(w, "\t\t%-20s\t\t%-13s  %s", f.Name, result, f.Use)
		if f.Detail != "" {
			fmt.Fprintf(w, ": %s", f.Detail)
		}
		fmt.Fprintln(w)
		switch {
		case f.Required && f.Unknown:
			unknown++
		case f.Required && !f.OK:
			missing++
		}
	}
	if missing == 0 && unknown > 0 {
		return errors.New("could not check every required feature: run as root to probe them in a throwaway network namespace")
	}
	if missing > 0 {
		return errors.New("system doesn't meet one or more minimum systems requirements to run Calico")
	}
	fmt.Fprintln(w, "System meets minimum system requirements to run Calico!")
	return nil
}
