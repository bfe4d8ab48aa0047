// Package ctl is the calicoctl applet: the admin CLI, compatible with
// upstream calicoctl's verbs, flags, outputs and exit codes. Each verb lives
// in its own file as a func(ctx, *Env, args) error; Main is the only place
// that turns errors into exit codes.
package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/onecalico/calico/internal/startup"
	"github.com/spf13/pflag"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// verb is one calicoctl command.
type verb struct {
	run     func(ctx context.Context, e *Env, args []string) error
	summary string
}

// verbs is the command table. Files add their verb here, one line each.
var verbs = map[string]verb{
	"apply":     {runApply, "Apply a resource by file, directory or stdin.  This creates a resource if it does not exist, and replaces a resource if it does exists."},
	"create":    {runCreate, "Create a resource by file, directory or stdin."},
	"datastore": {runDatastore, "Calico datastore management (migrate lock and unlock)."},
	"delete":    {runDelete, "Delete a resource identified by file, directory, stdin or resource type and name."},
	"get":       {runGet, "Get a resource identified by file, directory, stdin or resource type and name."},
	"ipam":      {runIPAM, "IP address management."},
	"label":     {runLabel, "Add or update labels of resources."},
	"node":      {runNode, "Calico node management."},
	"patch":     {runPatch, "Patch a preexisting resource in place."},
	"policy":    {runPolicy, "Explain which tier, policy and rule decide a flow."},
	"replace":   {runReplace, "Replace a resource by file, directory or stdin."},
	"validate":  {runValidate, "Validate a resource by file, directory or stdin without applying it."},
	"version":   {runVersion, "Display the version of this binary and of the cluster."},
}

// usageError marks a mistake in how the command was called (exit code 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

// usagef returns a usage error.
func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// Main runs calicoctl with the arguments after the program name.
func Main(args []string) int {
	startup.Restore()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	e := &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	defer e.Close()
	return run(ctx, e, args)
}

func run(ctx context.Context, e *Env, args []string) int {
	// Global options come before the command, as upstream's.
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch a := args[0]; {
		case a == "-h" || a == "--help":
			printUsage(e.Stdout)
			return exitOK
		case a == "--version" || a == "-v":
			args = append([]string{"version"}, args[1:]...)
		case a == "--allow-version-mismatch":
			args = args[1:]
		case a == "-l" || a == "--log-level" || a == "--context":
			if len(args) < 2 {
				fmt.Fprintf(e.Stderr, "option %s needs a value\n", a)
				return exitUsage
			}
			args = args[2:]
		case strings.HasPrefix(a, "--log-level=") || strings.HasPrefix(a, "--context=") || strings.HasPrefix(a, "-l"):
			args = args[1:]
		default:
			fmt.Fprintf(e.Stderr, "unknown option %s\n", a)
			printUsage(e.Stderr)
			return exitUsage
		}
	}
	if len(args) == 0 {
		printUsage(e.Stderr)
		return exitUsage
	}
	if args[0] == "help" && len(args) == 1 {
		printUsage(e.Stdout)
		return exitOK
	}
	v, ok := verbs[args[0]]
	if !ok {
		fmt.Fprintf(e.Stderr, "Invalid command: %q\n", args[0])
		printUsage(e.Stderr)
		return exitUsage
	}
	err := v.run(ctx, e, args[1:])
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, pflag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintln(e.Stderr, ue.msg)
		return exitUsage
	default:
		fmt.Fprintln(e.Stderr, err)
		return exitError
	}
}

func printUsage(w io.Writer) {
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "Usage:\n  calicoctl [options] <command> [<args>...]\n\nCommands:")
	for _, n := range names {
		fmt.Fprintf(w, "    %-12s %s\n", n, verbs[n].summary)
	}
	fmt.Fprintln(w, "\nOptions:\n  -h --help                    Show this screen.\n  -v --version                 Same as the version command.\n  -l --log-level=<level>       Accepted for compatibility.\n     --allow-version-mismatch  Accepted for compatibility.\n\nSee 'calicoctl <command> --help' to read about a specific subcommand.")
}

// newFlagSet makes a verb's flag set with the options every verb takes
// (-c/--config for the datastore).
func (e *Env) newFlagSet(name, usage string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("calicoctl "+name, pflag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	fs.StringVarP(&e.configPath, "config", "c", DefaultConfigPath, "path to the CalicoAPIConfig file for the datastore")
	fs.Usage = func() {
		fmt.Fprintf(e.Stderr, "Usage:\n  %s\n\nOptions:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and turns flag mistakes into usage errors.
func parseFlags(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	return nil
}
