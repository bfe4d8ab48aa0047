package ctl

import "context"

// runCreate creates every resource of a file, directory or stdin; a resource
// that already exists is an error unless --skip-exists.
func runCreate(ctx context.Context, e *Env, args []string) error {
	fs := e.newFlagSet("create", `calicoctl create --filename=<FILENAME> [--recursive] [--skip-empty]
                   [--skip-exists] [--config=<CONFIG>] [--namespace=<NS>] [--context=<context>] [--allow-version-mismatch]`)
	o := crudOptions{act: actCreate}
	addFileFlags(fs, &o, "create")
	fs.BoolVar(&o.skipExists, "skip-exists", false, "Skip over and treat as successful any attempts to create an entry that already exists.")
	addNamespaceFlag(fs, &o.namespace)
	addCompatFlags(fs)
	if err := parseVerb(fs, "create", args); err != nil {
		return err
	}
	if o.filename == "" || fs.NArg() > 0 {
		return badUsage("create", args)
	}
	return runCRUD(ctx, e, o, nil)
}
