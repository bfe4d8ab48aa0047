package ctl

import "context"

// runReplace replaces each resource of a file, directory or stdin; every one
// must exist. A resourceVersion in the input must be the stored one.
func runReplace(ctx context.Context, e *Env, args []string) error {
	fs := e.newFlagSet("replace", `calicoctl replace --filename=<FILENAME> [--recursive] [--skip-empty]
                    [--config=<CONFIG>] [--namespace=<NS>] [--context=<context>] [--allow-version-mismatch]`)
	o := crudOptions{act: actReplace}
	addFileFlags(fs, &o, "replace")
	addNamespaceFlag(fs, &o.namespace)
	addCompatFlags(fs)
	if err := parseVerb(fs, "replace", args); err != nil {
		return err
	}
	if o.filename == "" || fs.NArg() > 0 {
		return badUsage("replace", args)
	}
	return runCRUD(ctx, e, o, nil)
}
