package ctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/onecalico/calico/internal/api"
)

// runLabel sets, overwrites (--overwrite) or removes (--remove, or kubectl's
// "key-") one label of a stored resource, with a compare-and-swap on the
// revision it read.
func runLabel(ctx context.Context, e *Env, args []string) error {
	fs := e.newFlagSet("label", `calicoctl label (<KIND> <NAME>
                  ( <key>=<value> [--overwrite] |
                    <key> --remove )
                  [--config=<CONFIG>] [--namespace=<NS>] [--context=<context>]) [--allow-version-mismatch]`)
	var namespace string
	var overwrite, remove bool
	addNamespaceFlag(fs, &namespace)
	fs.BoolVar(&overwrite, "overwrite", false, "If true, overwrite the value when the key is already present in labels.\nOtherwise reports error when the labeled resource already have the key in its labels.\nCannot be used with --remove.")
	fs.BoolVar(&remove, "remove", false, "If true, remove the specified key in labels of the resource.\nReports error when specified key does not exist. Cannot be used with --overwrite.")
	addCompatFlags(fs)
	if err := parseVerb(fs, "label", args); err != nil {
		return err
	}
	if fs.NArg() != 3 || (overwrite && remove) {
		return badUsage("label", args)
	}
	kind, name, arg := fs.Arg(0), fs.Arg(1), fs.Arg(2)
	var key, value string
	switch {
	case remove:
		key = arg
	case strings.HasSuffix(arg, "-") && !strings.Contains(arg, "=") && !overwrite:
		remove, key = true, strings.TrimSuffix(arg, "-")
	default:
		kv := strings.Split(arg, "=")
		if len(kv) != 2 {
			return fmt.Errorf("invalid label %s", arg)
		}
		key, value = kv[0], kv[1]
	}

	k, ok := api.LookupKind(kind)
	if !ok {
		return fmt.Errorf("failed to get %s %s, error resource type '%s' is not supported", kind, name, kind)
	}
	ns, err := resolveNamespace(k, namespace, namespace, false)
	if err != nil {
		return fmt.Errorf("failed to get %s %s, error %v", kind, name, err)
	}
	c, err := e.Client()
	if err != nil {
		return fmt.Errorf("Failed to create Calico API client: %v", err)
	}
	r, err := c.Get(ctx, k.Kind, ns, name)
	switch {
	case isNotFound(err):
		return fmt.Errorf("%s %s not found", kind, name)
	case err != nil:
		return fmt.Errorf("failed to get %s %s, error %v", kind, name, oneLine(err))
	}
	m := r.GetObjectMeta()
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	updated := false
	if remove {
		if _, ok := m.Labels[key]; !ok {
			return fmt.Errorf("cannot remove label of %s %s, key %s does not exist", kind, name, key)
		}
		delete(m.Labels, key)
	} else {
		if old, ok := m.Labels[key]; ok {
			if !overwrite && old != value {
				return fmt.Errorf("failed to update label of %s %s, key %s is already present. please use '--overwrite' to set a new value.", kind, name, key)
			}
			updated = true
		}
		m.Labels[key] = value
	}
	if k.Kind == api.KindClusterInformation || (k.Kind == api.KindProfile && name == api.DefaultAllowProfile) {
		return fmt.Errorf("failed to update %s %s, label not changed: the resource is read-only", kind, name)
	}
	if _, err := c.Update(ctx, r); err != nil {
		return fmt.Errorf("failed to update %s %s, label not changed: %v", kind, name, oneLine(storeError(resourceID(k, ns, name), err)))
	}
	switch {
	case remove:
		fmt.Fprintf(e.Stdout, "Successfully removed label %s from %s %s\n", key, kind, name)
	case updated:
		fmt.Fprintf(e.Stdout, "Successfully updated label %s on %s %s\n", key, kind, name)
	default:
		fmt.Fprintf(e.Stdout, "Successfully set label %s on %s %s\n", key, kind, name)
	}
	return nil
}
