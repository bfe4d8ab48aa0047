package ctl

import "context"

// runApply creates each resource of a file, directory or stdin, or replaces
// it when it already exists.
func runApply(ctx context.Context, e *Env, args []string) error {
	fs := e.newFlagSet("apply", `calicoctl apply --filename=<FILENAME> [--recursive] [--skip-empty]
                  [--config=<CONFIG>] [--namespace=<NS>] [--context=<context>] [--allow-version-mismatch]`)
	o := crudOptions{act: actApply}
	addFileFlags(fs, &o, "apply")
	addNamespaceFlag(fs, &o.namespace)
	addCompatFlags(fs)
	if err := parseVerb(fs, "apply", args); err != nil {
		return err
	}
	if o.filename == "" || fs.NArg() > 0 {
		return badUsage("apply", args)
	}
	return runCRUD(ctx, e, o, nil)
}
