package ctl

import "context"

// runValidate decodes and checks every resource of a file, directory or
// stdin without writing anything. With a reachable datastore it also runs
// the datastore checks (immutable fields, overlapping pools); without one it
// checks fields only.
func runValidate(ctx context.Context, e *Env, args []string) error {
	fs := e.newFlagSet("validate", `calicoctl validate --filename=<FILENAME> [--recursive] [--skip-empty] [--allow-version-mismatch]`)
	o := crudOptions{act: actValidate}
	addFileFlags(fs, &o, "validate")
	addNamespaceFlag(fs, &o.namespace)
	addCompatFlags(fs)
	if err := parseVerb(fs, "validate", args); err != nil {
		return err
	}
	if o.filename == "" || fs.NArg() > 0 {
		return badUsage("validate", args)
	}
	return runCRUD(ctx, e, o, nil)
}
