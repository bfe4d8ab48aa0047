package ctl

import (
	"context"
	"errors"
	"fmt"

	"github.com/onecalico/calico/internal/api"
)

// runDelete deletes resources named by a file, directory or stdin, or by
// kind and names. Every named resource must exist (unless
// --skip-not-exists) before anything is deleted. IPPools are disabled and
// their block affinities released before they are deleted; Nodes lose
// their endpoints, addresses, affinities and per-node configuration first
// (deleteNode).
func runDelete(ctx context.Context, e *Env, args []string) error {
	fs := e.newFlagSet("delete", `calicoctl delete ( (<KIND> [<NAME>...]) |
                   --filename=<FILE> [--recursive] [--skip-empty] )
                   [--skip-not-exists] [--config=<CONFIG>] [--namespace=<NS>] [--context=<context>] [--allow-version-mismatch]`)
	o := crudOptions{act: actDelete}
	addFileFlags(fs, &o, "delete")
	fs.BoolVarP(&o.skipNotExists, "skip-not-exists", "s", false, "Skip over and treat as successful, resources that don't exist.")
	addNamespaceFlag(fs, &o.namespace)
	addCompatFlags(fs)
	if err := parseVerb(fs, "delete", args); err != nil {
		return err
	}
	if (o.filename == "") == (fs.NArg() == 0) {
		return badUsage("delete", args)
	}
	if o.filename != "" {
		return runCRUD(ctx, e, o, nil)
	}
	items, err := itemsFromArgs(fs.Arg(0), fs.Args()[1:], o.namespace)
	if err != nil {
		return err
	}
	return runCRUD(ctx, e, o, items)
}

// itemsFromArgs makes the resources named on the command line: a kind (any
// name calicoctl accepts for it) and names.
func itemsFromArgs(kind string, names []string, namespace string) ([]*loaded, error) {
	k, ok := api.LookupKind(kind)
	if !ok {
		return nil, fmt.Errorf("resource type '%s' is not supported", kind)
	}
	if len(names) == 0 {
		return nil, errors.New("No resources specified")
	}
	items := make([]*loaded, 0, len(names))
	for _, n := range names {
		if n == "" {
			return nil, errors.New("resource name may not be empty")
		}
		r := k.New()
		r.GetObjectMeta().Name = n
		if k.Namespaced {
			r.GetObjectMeta().Namespace = namespace
		}
		items = append(items, &loaded{kind: k, res: r})
	}
	return items, nil
}
