package ctl

import (
	"errors"
	"strings"

	"github.com/spf13/pflag"
)

// Flags the resource verbs share, named and worded as upstream's.

func addFileFlags(fs *pflag.FlagSet, o *crudOptions, what string) {
	fs.StringVarP(&o.filename, "filename", "f", "", "Filename to use to "+what+" the resource. If set to \"-\" loads from stdin.\nIf filename is a directory, every .json, .yaml and .yml file in it is used.")
	fs.BoolVarP(&o.recursive, "recursive", "R", false, "Process the filename specified in -f or --filename recursively.")
	fs.BoolVar(&o.skipEmpty, "skip-empty", false, "Do not error if any files or directory specified using -f or --filename contain no data.")
}

func addNamespaceFlag(fs *pflag.FlagSet, ns *string) {
	fs.StringVarP(ns, "namespace", "n", "", "Namespace of the resource. Only applicable to NetworkPolicy, NetworkSet and\nWorkloadEndpoint. Uses the default namespace if not specified.")
}

// addCompatFlags accepts upstream's options that mean nothing here.
func addCompatFlags(fs *pflag.FlagSet) {
	fs.String("context", "", "Accepted for compatibility (Kubernetes only).")
	fs.Bool("allow-version-mismatch", false, "Accepted for compatibility.")
}

// parseVerb parses a verb's flags; a mistake is a usage error worded as upstream's.
func parseVerb(fs *pflag.FlagSet, verb string, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usagef("%v (%v)", badUsage(verb, args), err)
	}
	return nil
}

// badUsage is upstream's message for a command line that does not parse.
func badUsage(verb string, args []string) error {
	line := strings.TrimSpace("calicoctl " + verb + " " + strings.Join(args, " "))
	if verb == "validate" {
		return usagef("invalid option: '%s'. Use flag '--help' to read about a specific subcommand", line)
	}
	return usagef("Invalid option: '%s'. Use flag '--help' to read about a specific subcommand.", line)
}
